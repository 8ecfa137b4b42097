package netpoll

import (
	"crypto/tls"
	"net"
	"syscall"
)

// RawConnOf returns the socket under c to watch, plain or under TLS (the
// connection tls.Conn reads from); nil if c exposes none (syscall.Conn),
// as a net.Pipe does.
func RawConnOf(c net.Conn) syscall.RawConn {
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
