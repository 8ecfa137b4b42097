package handoff

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
)

// Spares are copies of the listening sockets a parent handed over, kept
// so that it can accept again if its child dies before it exits: the
// kernel keeps a socket listening, and queues its connections, while any
// process holds it open. The copies are raw descriptors, never net
// listeners, until Take: a net listener would be registered with the
// runtime's poller, and turning a descriptor into one briefly puts the
// socket, shared with the child's listener, in blocking mode.
type Spares struct {
	fds []spareFD // owned by the caller's goroutine
}

type spareFD struct {
	key, addr string
	fd        int
}

// Keep returns copies of ls, to be kept while a child accepts on them.
func Keep(ls []Listener) (*Spares, error) {
	s := &Spares{}
	for _, l := range ls {
		fd, err := dupListener(l.L)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("handoff: keeping a copy of %s: %w", l.Key, err)
		}
		s.fds = append(s.fds, spareFD{key: l.Key, addr: l.Addr, fd: fd})
	}
	return s, nil
}

// Take returns the copies as listeners, by key, once the child that
// accepted on them is gone (no other process accepting on them, the
// moment a descriptor spends in blocking mode as it becomes a listener
// is harmless). The copies are the caller's from then on; s is empty. A
// copy that cannot become a listener is closed, and the error names it.
func (s *Spares) Take() ([]Listener, error) {
	var ls []Listener
	var errs []error
	for _, sp := range s.fds {
		f := os.NewFile(uintptr(sp.fd), sp.key)
		l, err := net.FileListener(f)
		f.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("handoff: %s: %w", sp.key, err))
			continue
		}
		ls = append(ls, Listener{Key: sp.key, Addr: sp.addr, L: l})
	}
	s.fds = nil
	return ls, errors.Join(errs...)
}

// Close closes the copies not taken.
func (s *Spares) Close() {
	if s == nil {
		return
	}
	for _, sp := range s.fds {
		syscall.Close(sp.fd)
	}
	s.fds = nil
}
