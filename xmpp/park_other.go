//go:build !linux

package xmpp

import (
	"net"
	"syscall"
)

// parkable returns nil: waiting for readability without a buffer is
// implemented (and tested) on Linux only, so other platforms keep each
// Conn's read buffer.
func parkable(net.Conn) syscall.RawConn { return nil }
