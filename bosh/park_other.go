//go:build !linux

package bosh

import (
	"errors"
	"net"
	"syscall"
)

// rawConnOf returns nil: requests are parked on Linux only, where a
// socket can be watched for readability without reading from it.
func rawConnOf(net.Conn) syscall.RawConn { return nil }

// awaitClient is not used where rawConnOf returns nil.
func awaitClient(syscall.RawConn) (bool, error) {
	return true, errors.New("bosh: parking not supported")
}
