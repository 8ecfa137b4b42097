package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/boshd/boshd/admin"
	"github.com/boshd/boshd/bosh"
	"github.com/boshd/boshd/internal/handoff"
	"github.com/boshd/boshd/internal/wait"
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

// TestReceiveEndedMidRecord: the move socket ends after a record with
// neither done nor abort. If the old process has exited, the session is
// this process's; if it lives (it gave up waiting for the answer, kept
// the session and could not say abort), it is given back, so that no
// session is served by both.
func TestReceiveEndedMidRecord(t *testing.T) {
	for _, tc := range []struct {
		name   string
		exited bool
	}{
		{"old process lives", false},
		{"old process exited", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var oldLogs, newLogs bytes.Buffer
			old := newUpgrader(t, "/bin/false", nil, &oldLogs)
			next := newUpgrader(t, "/bin/false", nil, &newLogs)
			next.old, next.oldOK, next.oldMoving = admin.OldProcess{PID: 1}, true, true
			next.settled, next.oldGone = make(chan struct{}), make(chan struct{})
			if tc.exited {
				close(next.oldGone)
			}

			// A session of the old process, quiet: created, nothing held.
			hs := httptest.NewServer(old.h)
			defer hs.Close()
			resp, err := http.Post(hs.URL, "text/xml; charset=utf-8", strings.NewReader(`<body xmlns='http://jabber.org/protocol/httpbind' rid='1000' to='example.org' wait='10' hold='1' ver='1.6'/>`))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if old.h.Stats().Live != 1 {
				t.Fatalf("the old process holds %d sessions, want 1", old.h.Stats().Live)
			}

			// The new process's move socket.
			sock, err := handoff.ListenSocket(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer sock.Close()
			mln, err := sock.ListenMoves()
			if err != nil {
				t.Fatal(err)
			}
			defer mln.Close()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			bln := bosh.NewListener(ln)
			defer bln.Close()
			go next.receiveMoves(mln, bln)

			// The old process sends its session, reads the answer, and
			// then takes it for lost (as when it came too late): it keeps
			// the session and closes the socket with no abort.
			ch, err := handoff.DialMoves(handoff.MoveSocket(sock.Path()))
			if err != nil {
				t.Fatal(err)
			}
			res := old.h.MoveSessions(context.Background(), func(data []byte, fds []int) error {
				if err := ch.Send(data, fds); err != nil {
					return err
				}
				answer, afds, err := ch.Receive()
				handoff.CloseFDs(afds)
				if err != nil || string(answer) != answerMoved {
					t.Errorf("the new process answered %q, %v", answer, err)
				}
				return errors.New("the answer came too late")
			}, nil, 5*time.Second)
			if res.Moved != 0 || old.h.Stats().Live != 1 {
				t.Fatalf("MoveSessions %+v, the old process holds %d: want the session kept", res, old.h.Stats().Live)
			}
			ch.Close()

			moved := func() int {
				next.mu.Lock()
				defer next.mu.Unlock()
				return next.old.Moved
			}
			if tc.exited {
				wait.Until(t, func() bool { return moved() == 1 }, "the session put in service")
				if n := next.h.Stats().Live; n != 1 {
					t.Errorf("the new process holds %d sessions, want 1", n)
				}
				return
			}
			wait.Until(t, func() bool { return next.h.Stats().Live == 0 }, "the session given back")
			if n := moved(); n != 0 {
				t.Errorf("the new process counted %d sessions moved, want 0", n)
			}
		})
	}
}
