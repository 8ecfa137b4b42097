package bosh

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/boshd/boshd/config"
	"github.com/boshd/boshd/internal/wait"
	"github.com/boshd/boshd/session"
)

// mustEncode returns rec as a record's bytes.
func mustEncode(t *testing.T, rec moveRecord) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(&rec); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// successor is a second Handler on the same upstream, served through a
// Listener of its own: the new process of a live upgrade, in the test's
// process.
type successor struct {
	h  *Handler
	ln *Listener
	hs *httptest.Server
}

func newSuccessor(t *testing.T, env *testEnv) *successor {
	t.Helper()
	_, h := newHandler(t, env.up, func(cfg *config.Config) { cfg.ParkHeld, cfg.ParkAfter = true, 0 }, nil)
	hs := httptest.NewUnstartedServer(h)
	ln := NewListener(hs.Listener)
	hs.Listener = ln
	hs.Config.ConnContext = ln.ConnContext
	hs.Start()
	t.Cleanup(hs.Close)
	return &successor{h: h, ln: ln, hs: hs}
}

// sendTo is a MoveSender handing records to s as another process would
// get them: with descriptors of its own.
func (s *successor) sendTo(t *testing.T) MoveSender {
	return func(data []byte, fds []int) error {
		dups := make([]int, len(fds))
		for i, fd := range fds {
			d, err := syscall.Dup(fd)
			if err != nil {
				t.Fatal(err)
			}
			dups[i] = d
		}
		r, err := s.h.RestoreMoved(data, dups, s.ln)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrMoveRefused, err)
		}
		// The old process lets it go once answered.
		r.Commit()
		return nil
	}
}

// TestMoveSession moves a session with a parked request: the new
// handler holds it, answers the parked request on the same client
// connection with what the same upstream connection brings, and serves
// the next request on that connection; the old one holds nothing.
func TestMoveSession(t *testing.T) {
	t.Parallel()
	env := newParkEnv(t, nil)
	c, sid := parkOne(t, env, 100)
	next := newSuccessor(t, env)
	var res MoveResult
	if !wait.For(wait.Deadline, func() bool {
		res = env.h.MoveSessions(context.Background(), next.sendTo(t), nil, time.Second)
		return res.Moved == 1
	}) {
		t.Fatalf("MoveSessions: %+v, want 1 moved", res)
	}
	if env.h.sessions.Get(sid) != nil || env.h.sessions.Stats() != (session.Stats{}) {
		t.Errorf("the old handler still holds the session: %+v", env.h.sessions.Stats())
	}
	if got := next.h.sessions.Get(sid); got == nil {
		t.Fatal("the new handler does not hold the session")
	}
	waitParked(t, env.h, 0)
	waitParked(t, next.h, 1)

	msg := "<message from='a@example.org' to='b@example.org'><body>moved</body></message>"
	env.up.Push(t, msg)
	resp, body := c.receive()
	if resp.StatusCode != 200 || !strings.Contains(body, "<body>moved</body>") || resp.Close {
		t.Fatalf("the moved request answered %d %s (close %v), want 200 with the message, kept alive", resp.StatusCode, body, resp.Close)
	}
	c.send(fmt.Sprintf("<body xmlns='http://jabber.org/protocol/httpbind' sid='%s' rid='102'><message to='a@example.org'><body>up</body></message></body>", sid))
	env.up.WaitGot(t, "<body>up</body>")
	waitParked(t, next.h, 1)
}

// TestMoveRefused: a session the new process does not take stays: its
// parked request is watched and answered as before.
func TestMoveRefused(t *testing.T) {
	t.Parallel()
	env := newParkEnv(t, nil)
	c, sid := parkOne(t, env, 100)
	refuse := func([]byte, []int) error { return fmt.Errorf("%w: test", ErrMoveRefused) }
	res := env.h.MoveSessions(context.Background(), refuse, nil, time.Second)
	if res.Moved != 0 || res.Failed+res.Kept != 1 {
		t.Fatalf("MoveSessions %+v, want the session failed or kept", res)
	}
	if env.h.sessions.Get(sid) == nil {
		t.Fatal("a session not taken is forgotten")
	}
	env.up.Push(t, "<message><body>still here</body></message>")
	if _, body := c.receive(); !strings.Contains(body, "still here") {
		t.Fatalf("the parked request answered %s", body)
	}
	c.send(emptyBody(sid, 102))
	waitParked(t, env.h, 1)
	// Its client going away is still noticed.
	c.conn.Close()
	waitParked(t, env.h, 0)
}

// TestMoveBroken: a broken way to the new process stops the moves; what
// was not taken stays.
func TestMoveBroken(t *testing.T) {
	t.Parallel()
	env := newParkEnv(t, nil)
	_, sid := parkOne(t, env, 100)
	broken := func([]byte, []int) error { return errors.New("broken pipe") }
	res := env.h.MoveSessions(context.Background(), broken, nil, time.Second)
	if res.Moved != 0 || res.Failed != 1 {
		t.Fatalf("MoveSessions %+v, want 1 failed", res)
	}
	if s := env.h.sessions.Get(sid); s == nil || s.MovedAway() {
		t.Fatal("a session not taken is forgotten")
	}
}

// TestRestoreMovedRefuses: a record that cannot be restored is an error,
// and its descriptors are closed. Not parallel, and each descriptor is
// checked itself: other tests open and close descriptors of this process
// while they run, which a count of them all once caught.
func TestRestoreMovedRefuses(t *testing.T) {
	env := newParkEnv(t, nil)
	next := newSuccessor(t, env)
	for name, data := range map[string][]byte{
		"not gob":  []byte("garbage"),
		"empty":    nil,
		"too many": mustEncode(t, moveRecord{Version: moveVersion}),
	} {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		fds := []int{}
		for range 2 {
			d, err := syscall.Dup(int(r.Fd()))
			if err != nil {
				t.Fatal(err)
			}
			fds = append(fds, d)
		}
		if _, err := next.h.RestoreMoved(data, fds, next.ln); err == nil {
			t.Errorf("%s: restored", name)
		}
		for _, fd := range fds {
			if _, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0); errno != syscall.EBADF {
				t.Errorf("%s: descriptor %d left open (fcntl: %v)", name, fd, errno)
				syscall.Close(fd)
			}
		}
		r.Close()
		w.Close()
	}
}

// TestMoveResting: a connection resting between requests moves after
// the sessions, and its next request is served by the new handler.
func TestMoveResting(t *testing.T) {
	t.Parallel()
	env := newParkEnv(t, nil)
	c, sid := parkOne(t, env, 100)
	env.up.Push(t, "<message><body>before</body></message>")
	if _, body := c.receive(); !strings.Contains(body, "before") {
		t.Fatalf("the parked request answered %s", body)
	}
	waitParked(t, env.h, 0)
	ln := env.hs.Listener.(*Listener)
	if !wait.For(wait.Deadline, func() bool {
		ln.mu.Lock()
		defer ln.mu.Unlock()
		return len(ln.resting) == 1
	}) {
		t.Fatal("the connection does not rest")
	}
	next := newSuccessor(t, env)
	var res MoveResult
	if !wait.For(wait.Deadline, func() bool {
		res = env.h.MoveSessions(context.Background(), next.sendTo(t), ln, time.Second)
		return res.Moved == 1
	}) {
		t.Fatalf("MoveSessions: %+v, want 1 moved", res)
	}
	if res.Conns != 1 {
		t.Fatalf("MoveSessions moved %d resting connections, want 1", res.Conns)
	}
	c.send(emptyBody(sid, 102))
	waitParked(t, next.h, 1)
	env.up.Push(t, "<message><body>after</body></message>")
	if _, body := c.receive(); !strings.Contains(body, "after") {
		t.Fatalf("the request on the moved connection answered %s", body)
	}
}

// TestRestoredAborted: a session restored but given back (the old process
// kept it) is forgotten by the new handler without a word, and served by
// the old one on its upstream and client connections.
func TestRestoredAborted(t *testing.T) {
	t.Parallel()
	env := newParkEnv(t, nil)
	c, sid := parkOne(t, env, 100)
	next := newSuccessor(t, env)
	var restored *Restored
	keep := func(data []byte, fds []int) error {
		dups := make([]int, len(fds))
		for i, fd := range fds {
			dups[i], _ = syscall.Dup(fd)
		}
		r, err := next.h.RestoreMoved(data, dups, next.ln)
		if err != nil {
			t.Fatal(err)
		}
		if next.h.sessions.Get(sid) == nil {
			t.Error("a restored session is not registered")
		}
		restored = r
		// The answer lost: the old process keeps the session.
		return errors.New("no answer")
	}
	if res := env.h.MoveSessions(context.Background(), keep, nil, time.Second); res.Moved != 0 {
		t.Fatalf("MoveSessions %+v, want nothing moved", res)
	}
	if restored == nil {
		t.Fatal("nothing restored")
	}
	restored.Abort()
	if next.h.sessions.Get(sid) != nil || next.h.sessions.Stats() != (session.Stats{}) {
		t.Errorf("the new handler holds the session given back: %+v", next.h.sessions.Stats())
	}
	waitParked(t, next.h, 0)
	if n, _ := next.h.g.Sessions(""); n != 0 {
		t.Errorf("the new handler counts %d sessions against its limits", n)
	}
	env.up.Push(t, "<message><body>kept</body></message>")
	if _, body := c.receive(); !strings.Contains(body, "kept") {
		t.Fatalf("the parked request answered %s", body)
	}
	if env.up.Received("</stream:stream>") {
		t.Error("the upstream stream was closed")
	}
}
