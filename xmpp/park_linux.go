package xmpp

import (
	"net"
	"syscall"
)

// parkable returns the raw connection to wait on for readability if nc is
// a TCP connection (the one under TLS, for a secured stream), nil
// otherwise.
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
