package handoff

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
)

// A Socket is a process's handoff socket: a Unix stream socket in a
// directory of its own that only the process's user may enter (0700), on
// which it serves the requests its predecessor or successor forwards to
// it. Being able to connect is the proof of being one of them: no other
// user can reach it.
type Socket struct {
	net.Listener
	dir string
}

// ListenSocket makes a private directory under dir (os.TempDir when "")
// and listens on a socket in it.
func ListenSocket(dir string) (*Socket, error) {
	d, err := os.MkdirTemp(dir, "boshd-handoff-")
	if err != nil {
		return nil, fmt.Errorf("handoff: %w", err)
	}
	if err := os.Chmod(d, 0o700); err != nil {
		os.RemoveAll(d)
		return nil, fmt.Errorf("handoff: %w", err)
	}
	ln, err := net.Listen("unix", filepath.Join(d, "bosh.sock"))
	if err != nil {
		os.RemoveAll(d)
		return nil, fmt.Errorf("handoff: %w", err)
	}
	return &Socket{Listener: ln, dir: d}, nil
}

// Path returns the socket's path.
func (s *Socket) Path() string { return s.Addr().String() }

// Close stops listening and removes the directory.
func (s *Socket) Close() error {
	err := s.Listener.Close()
	os.RemoveAll(s.dir)
	return err
}
