package handoff

import (
	"fmt"
	"syscall"
)

// Dup returns a duplicate of c's descriptor (a socket, or a listening
// one), close-on-exec, for handing to another process. It never goes
// through os.File.Fd, which would put the socket, whose open file
// description the duplicate shares, in blocking mode. ForkExec clears the
// flag of the descriptors it hands over.
func Dup(c syscall.Conn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, fmt.Errorf("handoff: %w", err)
	}
	fd := -1
	var derr error
	err = rc.Control(func(s uintptr) {
		// As os/exec does: no fork between the dup and the flag.
		syscall.ForkLock.RLock()
		defer syscall.ForkLock.RUnlock()
		if fd, derr = syscall.Dup(int(s)); derr == nil {
			syscall.CloseOnExec(fd)
		}
	})
	if err == nil {
		err = derr
	}
	if err != nil {
		return -1, fmt.Errorf("handoff: dup: %w", err)
	}
	return fd, nil
}
