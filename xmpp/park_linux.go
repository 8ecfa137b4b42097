package xmpp

import (
	"net"
	"syscall"
)

// parkable returns the raw connection to wait on for readability if nc is
// a plain TCP connection, nil otherwise.
func parkable(nc net.Conn) syscall.RawConn {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// park blocks until rc has something to read: data, the end of the stream
// or an error (which the following read then reports). It returns early
// with an error if the connection is closed or its read deadline passes.
//
// The runtime poller waits for readiness whenever the function passed to
// RawConn.Read returns false. Readiness is edge-triggered and may have been
// consumed already, so the function looks at the socket itself with a
// non-blocking MSG_PEEK rather than trusting an earlier wakeup.
func park(rc syscall.RawConn) error {
	var one [1]byte
	return rc.Read(func(fd uintptr) bool {
		for {
			_, _, err := syscall.Recvfrom(int(fd), one[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			switch err {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false
			}
			return true
		}
	})
}
