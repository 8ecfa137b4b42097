package bosh

import (
	"crypto/tls"
	"net"
	"syscall"
)

// rawConnOf returns the socket under c, plain or under TLS, to watch for
// readability; nil if c does not expose one (syscall.Conn).
func rawConnOf(c net.Conn) syscall.RawConn {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// awaitClient blocks until the client's socket is readable, without
// reading from it, and reports whether the client closed it (end of file
// or an error) rather than sending more. It returns an error when the
// connection's read deadline passes or the connection is closed.
//
// The runtime poller waits whenever the function given to RawConn.Read
// returns false; readiness is edge-triggered, so the function peeks at the
// socket itself rather than trusting an earlier wakeup.
func awaitClient(rc syscall.RawConn) (closed bool, err error) {
	var one [1]byte
	err = rc.Read(func(fd uintptr) bool {
		for {
			n, _, errno := syscall.Recvfrom(int(fd), one[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			switch errno {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false
			case nil:
				closed = n == 0
			default:
				closed = true
			}
			return true
		}
	})
	return closed, err
}
