package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/boshd/boshd/bosh"
	"github.com/boshd/boshd/wsbind"
)

// TestRestoreDispatch checks where the new process sends a record: one
// with wsbind's prefix to the WebSocket handler (refused when there is
// none), any other to the BOSH one; a record refused leaves none of its
// descriptors open.
func TestRestoreDispatch(t *testing.T) {
	// A WebSocket record's start, as wsbind.IsMoveRecord tells it.
	wsRecord := []byte("\x00boshd-websocket-session\nnot gob")
	if !wsbind.IsMoveRecord(wsRecord) {
		t.Fatal("the test's WebSocket record is not one")
	}
	for _, tc := range []struct {
		name    string
		data    []byte
		ws      bool // the process serves WebSocket
		wantErr string
	}{
		{"websocket, none here", wsRecord, false, "no websocket_path"},
		{"websocket", wsRecord, true, "wsbind: a moved session"},
		{"bosh", []byte("not gob either"), true, "bosh: a moved record"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			u := newUpgrader(t, "/bin/false", nil, &logs)
			if tc.ws {
				wsh := wsbind.NewHandler(u.h.Gateway())
				t.Cleanup(func() { wsh.Shutdown(context.Background()) })
				u.wsh = wsh
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			bln := bosh.NewListener(ln)
			defer bln.Close()
			fd, peer := unixPair(t)
			if _, err := u.restore(tc.data, []int{fd}, bln); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("restore: %v, want an error with %q", err, tc.wantErr)
			}
			peer.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := peer.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
				t.Errorf("the record's descriptor: its peer reads %v, want EOF: not closed", err)
			}
		})
	}
}

// unixPair returns one end of a Unix socket pair as a descriptor, the
// only one of its socket, and the other end.
func unixPair(t *testing.T) (int, net.Conn) {
	t.Helper()
	p, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(p[1]), "peer")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return p[0], c
}
