//go:build !linux

package netpoll

import (
	"errors"
	"syscall"
)

// Events is what a Watch waits for.
type Events uint32

// HangUp and Readable are as on Linux; no other system is supported.
const (
	HangUp Events = 1 << iota
	Readable
)

// ErrClosed is returned by Watch once the Poller is closed.
var ErrClosed = errors.New("netpoll: poller closed")

// Poller is not available on this system: New fails, and callers fall
// back to waiting with a goroutine, or not at all.
type Poller struct{}

// Watch is one socket waited on.
type Watch struct{}

// New reports that there is no poller on this system.
func New() (*Poller, error) { return nil, errors.New("netpoll: not supported on this system") }

// Watch is not reached: New fails.
func (p *Poller) Watch(syscall.RawConn, Events, func()) (*Watch, error) {
	return nil, ErrClosed
}

// WatchReadable is not reached: New fails.
func (p *Poller) WatchReadable(syscall.RawConn, func()) (func() bool, error) {
	return nil, ErrClosed
}

// Stop is not reached: New fails.
func (w *Watch) Stop() bool { return true }

// AwaitReadable is not available on this system.
func AwaitReadable(syscall.RawConn) error {
	return errors.New("netpoll: not supported on this system")
}

// Close is not reached: New fails.
func (p *Poller) Close() error { return ErrClosed }
