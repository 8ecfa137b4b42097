package wsbind

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/boshd/boshd/config"
	"github.com/boshd/boshd/gateway"
	"github.com/boshd/boshd/internal/handoff"
	"github.com/boshd/boshd/internal/wait"
	"github.com/boshd/boshd/internal/xmpptest"
)

// mover is a test's way between two Handlers: a MoveSender restoring
// each record in to, as cmd/boshd's move socket does, with the answer
// the test chooses.
type mover struct {
	t  *testing.T
	to *Handler
	// answer, if not nil, is what the sender returns once to has
	// restored the session, after Abort; nil: Restored kept for Commit.
	answer  error
	fail    error // returned before restoring anything: the way is broken
	pending []*Restored
	sent    int
}

func (m *mover) send(data []byte, fds []int) error {
	m.sent++
	if m.fail != nil {
		return m.fail
	}
	// The descriptors stay the sender's: the receiver gets its own, as
	// over SCM_RIGHTS.
	var dups []int
	for _, fd := range fds {
		d, err := syscall.Dup(fd)
		if err != nil {
			m.t.Fatal(err)
		}
		dups = append(dups, d)
	}
	r, err := m.to.RestoreMoved(data, dups, nil)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMoveRefused, err)
	}
	if m.answer != nil {
		r.Abort()
		return m.answer
	}
	m.pending = append(m.pending, r)
	return nil
}

// commit puts what moved in service, as the move socket's "done" does.
func (m *mover) commit() {
	for _, r := range m.pending {
		r.Commit()
	}
	m.pending = nil
}

// openParked dials ts, opens a stream and exchanges a message each way,
// then waits until the session's client socket is parked.
func openParked(t *testing.T, ts *testServer, up *xmpptest.Server) *wsClient {
	t.Helper()
	c := ts.dial(t)
	c.open()
	c.send(message)
	up.WaitGot(t, message)
	up.Push(t, `<message from='bob@example.org/x' type='chat'><body>before</body></message>`)
	c.expect(`<body>before</body>`)
	if !wait.For(wait.Deadline, func() bool { return ts.h.Stats().Parked == 1 }) {
		t.Fatalf("%d sessions parked, want 1", ts.h.Stats().Parked)
	}
	return c
}

// chat checks that messages go both ways between c and the server's
// connection peer, n of each, numbered from tag.
func chat(t *testing.T, c *wsClient, up *xmpptest.Server, peer int, tag string, n int) {
	t.Helper()
	for i := range n {
		out := fmt.Sprintf(`<message to='bob@example.org' type='chat'><body>%s-out-%d</body></message>`, tag, i)
		c.send(out)
		up.WaitGot(t, out)
		if err := up.Peer(t, peer).Send(fmt.Sprintf(`<message from='bob@example.org/x' type='chat'><body>%s-in-%d</body></message>`, tag, i)); err != nil {
			t.Fatal(err)
		}
		c.expect(fmt.Sprintf(`<body>%s-in-%d</body>`, tag, i))
	}
}

// metricSum returns the sum of the series of the metric name in g's
// metrics whose labels include labels.
func metricSum(t *testing.T, g *gateway.Gateway, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := g.Metrics().Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			have := make(map[string]string)
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue series
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// TestMoveSessions moves a session between two Handlers: afterwards it
// relays both ways on the same client connection and the same upstream
// connection, from the new Handler only, the old one having forgotten
// it (no slot, no session), and the new one having adopted its slot.
func TestMoveSessions(t *testing.T) {
	for _, parkAfter := range []time.Duration{0, time.Second} {
		t.Run(parkAfter.String(), func(t *testing.T) {
			up := xmpptest.NewRelay(t, features)
			edit := func(c *config.Config) { c.ParkAfter = parkAfter }
			old := newTestServer(t, up, edit)
			next := newTestServer(t, up, edit)
			c := openParked(t, old, up)
			// Traffic just now: with park_after, the sockets wait before
			// parking unless the door is closed.
			chat(t, c, up, 0, "warm", 1)

			m := &mover{t: t, to: next.h}
			res := old.h.MoveSessions(context.Background(), m.send, 5*time.Second)
			if res.Moved != 1 || res.Failed != 0 || res.Kept != 0 {
				t.Fatalf("MoveSessions: %+v, want 1 moved", res)
			}
			m.commit()
			if st := old.h.Stats(); st.Live != 0 || st.Parked != 0 {
				t.Errorf("old handler after the move: %+v, want nothing", st)
			}
			if n := metricSum(t, old.g, "boshd_upgrade_websocket_sessions_moved_total", map[string]string{"outcome": "moved"}); n != 1 {
				t.Errorf("old handler counted %v sessions moved, want 1", n)
			}
			if n := metricSum(t, old.g, "boshd_websocket_sessions_ended_total", nil); n != 0 {
				t.Errorf("old handler counted %v sessions ended, want none: the session moved", n)
			}
			if n := metricSum(t, next.g, "boshd_upgrade_websocket_sessions_received_total", nil); n != 1 {
				t.Errorf("new handler counted %v sessions received, want 1", n)
			}
			if total, _ := old.g.Sessions("127.0.0.1"); total != 0 {
				t.Errorf("old gateway counts %d sessions, want 0", total)
			}
			if total, forIP := next.g.Sessions("127.0.0.1"); total != 1 || forIP != 1 {
				t.Errorf("new gateway counts %d sessions, %d for the client, want 1 and 1", total, forIP)
			}
			if !wait.For(wait.Deadline, func() bool { return next.h.Stats().Parked == 1 }) {
				t.Errorf("new handler: %+v, want the session parked", next.h.Stats())
			}
			chat(t, c, up, 0, "after", 5)
			if n := up.Accepts(); n != 1 {
				t.Errorf("the server accepted %d connections, want 1: the upstream moved", n)
			}
			if st := next.h.Stats(); st.Live != 1 {
				t.Errorf("new handler: %+v, want one session", st)
			}
			// It ends as any session there does.
			c.send(`<close xmlns="urn:ietf:params:xml:ns:xmpp-framing"/>`)
			c.expect(`<close xmlns="urn:ietf:params:xml:ns:xmpp-framing"`)
			if !wait.For(wait.Deadline, func() bool { return next.h.Stats().Live == 0 }) {
				t.Errorf("new handler after <close/>: %+v", next.h.Stats())
			}
		})
	}
}

// TestMoveSessionsKept checks the sessions that do not move: busy ones
// tried again until the bound, then kept; TLS ones at once; a record the
// new process refuses, a broken way to it, and a session the new process
// restored but the old one kept (no answer: Abort). Each goes on in the
// old handler, and the new one holds nothing.
func TestMoveSessionsKept(t *testing.T) {
	broken := errors.New("the way to the new process broke")
	for _, tc := range []struct {
		name   string
		tls    bool
		noOpen bool // the stream is never opened: always busy
		refuse bool // the new handler refuses every record
		// fail is the sender's error before anything is restored;
		// answer its error once the new handler restored and aborted.
		fail, answer error
		failed, kept int
	}{
		{name: "busy", noOpen: true, kept: 1},
		{name: "tls", tls: true, kept: 1},
		{name: "refused", refuse: true, failed: 1},
		{name: "broken", fail: broken, failed: 1},
		{name: "aborted", answer: fmt.Errorf("no answer: %w", broken), failed: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := xmpptest.NewRelay(t, features)
			old := newTestServer(t, up, nil)
			next := newTestServer(t, up, nil)
			if tc.tls {
				old.serveTLS(t)
			}
			var c *wsClient
			if tc.noOpen {
				c = old.dial(t)
				if !wait.For(wait.Deadline, func() bool { return old.h.Stats().Live == 1 }) {
					t.Fatal("no session")
				}
			} else {
				c = openParked(t, old, up)
			}
			if tc.refuse {
				next.h.Shutdown(context.Background())
			}
			m := &mover{t: t, to: next.h, fail: tc.fail, answer: tc.answer}
			start := time.Now()
			res := old.h.MoveSessions(context.Background(), m.send, 300*time.Millisecond)
			took := time.Since(start)
			if res.Moved != 0 || res.Failed != tc.failed || res.Kept != tc.kept {
				t.Fatalf("MoveSessions: %+v, want %d failed and %d kept", res, tc.failed, tc.kept)
			}
			switch {
			case tc.noOpen && took < 300*time.Millisecond-handoff.MoveRetry:
				t.Errorf("a busy session kept after %v, before the bound", took)
			case tc.tls && m.sent != 0:
				t.Errorf("a TLS session sent %d times", m.sent)
			case (tc.refuse || tc.fail != nil || tc.answer != nil) && m.sent != 1:
				t.Errorf("a session sent %d times, want once", m.sent)
			}
			if st := next.h.Stats(); st.Live != 0 {
				t.Errorf("new handler holds %+v", st)
			}
			for outcome, want := range map[string]int{"moved": 0, "failed": tc.failed, "kept": tc.kept} {
				if n := metricSum(t, old.g, "boshd_upgrade_websocket_sessions_moved_total", map[string]string{"outcome": outcome}); n != float64(want) {
					t.Errorf("old handler counted %v sessions %s, want %d", n, outcome, want)
				}
			}
			if n := metricSum(t, next.g, "boshd_upgrade_websocket_sessions_received_total", nil); n != 0 {
				t.Errorf("new handler counted %v sessions received, want none", n)
			}
			if total, _ := next.g.Sessions("127.0.0.1"); total != 0 {
				t.Errorf("new gateway counts %d sessions, want 0", total)
			}
			if tc.noOpen {
				c.open()
			}
			chat(t, c, up, 0, "kept", 3)
			if st := old.h.Stats(); st.Live != 1 {
				t.Errorf("old handler: %+v, want its session", st)
			}
			if !wait.For(wait.Deadline, func() bool { return old.h.Stats().Parked == 1 }) {
				t.Errorf("old handler: %+v, want the session parked again", old.h.Stats())
			}
		})
	}
}

// TestRestoreMovedMalformed gives RestoreMoved records it cannot take:
// each is an error, and every descriptor that came with it is closed.
func TestRestoreMovedMalformed(t *testing.T) {
	up := xmpptest.NewRelay(t, features)
	ts := newTestServer(t, up, nil)
	good := func(t *testing.T) []byte {
		old := newTestServer(t, up, nil)
		openParked(t, old, up)
		var data []byte
		res := old.h.MoveSessions(context.Background(), func(d []byte, fds []int) error {
			data = append([]byte(nil), d...)
			return ErrMoveRefused
		}, time.Second)
		if res.Failed != 1 || data == nil {
			t.Fatalf("no record: %+v", res)
		}
		return data
	}(t)
	for _, tc := range []struct {
		name string
		data []byte
		fds  int
	}{
		{"empty", nil, 2},
		{"too short", []byte("x"), 2},
		{"prefix only", []byte(movePrefix), 2},
		{"garbage", append([]byte(movePrefix), "not gob at all"...), 2},
		{"cut short", good[:len(good)-8], 2},
		{"one descriptor", good, 1},
		{"three descriptors", good, 3},
		{"not sockets", good, -2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var fds []int
			var peers []net.Conn
			for range max(tc.fds, -tc.fds) {
				fd, peer := socketPair(t, tc.fds < 0)
				fds = append(fds, fd)
				peers = append(peers, peer)
			}
			if _, err := ts.h.RestoreMoved(tc.data, fds, nil); err == nil {
				t.Fatal("restored")
			}
			// Each descriptor was the last of its socket: closed, its
			// peer reads the end.
			for i, p := range peers {
				p.SetReadDeadline(time.Now().Add(wait.Deadline))
				if _, err := p.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
					t.Errorf("descriptor %d: its peer reads %v, want EOF: not closed", i, err)
				}
			}
			if st := ts.h.Stats(); st.Live != 0 {
				t.Errorf("handler holds %+v", st)
			}
			if total, _ := ts.g.Sessions("127.0.0.1"); total != 0 {
				t.Errorf("gateway counts %d sessions", total)
			}
		})
	}
}

// socketPair returns the descriptor of one end of a connected pair of
// sockets, TCP on loopback or, if unix, a Unix one, and the other end.
// The descriptor is the only one of its socket.
func socketPair(t *testing.T, unix bool) (int, net.Conn) {
	t.Helper()
	var a, b net.Conn
	if unix {
		p, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		f := os.NewFile(uintptr(p[1]), "peer")
		b, err = net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return p[0], b
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if a, err = net.Dial("tcp", ln.Addr().String()); err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if b, err = ln.Accept(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	fd, err := handoff.Dup(a.(*net.TCPConn))
	if err != nil {
		t.Fatal(err)
	}
	return fd, b
}

// TestMoveSessionsShutdownMeanwhile stops the old handler while a
// session's sockets are on their way: its end waits. If the session
// moves, it is not ended (no close frame; it relays from the new
// handler); if it stays, it is ended then, as Shutdown ends it
// (system-shutdown, <close/>, 1012).
func TestMoveSessionsShutdownMeanwhile(t *testing.T) {
	for _, moves := range []bool{true, false} {
		t.Run(map[bool]string{true: "moved", false: "kept"}[moves], func(t *testing.T) {
			up := xmpptest.NewRelay(t, features)
			old := newTestServer(t, up, nil)
			next := newTestServer(t, up, nil)
			c := openParked(t, old, up)
			var s *session
			old.h.mu.Lock()
			for s = range old.h.sessions {
			}
			old.h.mu.Unlock()
			stopped := make(chan error, 1)
			m := &mover{t: t, to: next.h}
			if !moves {
				m.fail = errors.New("the way to the new process broke")
			}
			send := func(data []byte, fds []int) error {
				go func() {
					ctx, cancel := context.WithTimeout(context.Background(), wait.Deadline)
					defer cancel()
					stopped <- old.h.Shutdown(ctx)
				}()
				if !wait.For(wait.Deadline, func() bool {
					s.mu.Lock()
					defer s.mu.Unlock()
					return s.pendingEnd != nil
				}) {
					t.Error("Shutdown did not ask the session to end")
				}
				return m.send(data, fds)
			}
			res := old.h.MoveSessions(context.Background(), send, time.Second)
			if err := <-stopped; err != nil {
				t.Errorf("Shutdown: %v", err)
			}
			if !moves {
				if res.Failed != 1 {
					t.Fatalf("MoveSessions: %+v, want 1 failed", res)
				}
				c.expect(`<system-shutdown`)
				c.expect(`<close xmlns="urn:ietf:params:xml:ns:xmpp-framing"`)
				c.expectClose(1012)
				return
			}
			if res.Moved != 1 {
				t.Fatalf("MoveSessions: %+v, want 1 moved", res)
			}
			m.commit()
			if n := metricSum(t, old.g, "boshd_websocket_sessions_ended_total", nil); n != 0 {
				t.Errorf("old handler counted %v sessions ended, want none", n)
			}
			chat(t, c, up, 0, "after", 3)
		})
	}
}

// TestMoveCommitAfterShutdown: a session restored in a handler that shuts
// down before the old process lets it go ends on Commit as Shutdown ends
// sessions (system-shutdown, <close/>, close code 1012), its slot given
// back; and Shutdown, which may be waiting already, is not held up by it.
func TestMoveCommitAfterShutdown(t *testing.T) {
	up := xmpptest.NewRelay(t, features)
	old := newTestServer(t, up, nil)
	next := newTestServer(t, up, nil)
	c := openParked(t, old, up)
	m := &mover{t: t, to: next.h}
	if res := old.h.MoveSessions(context.Background(), m.send, 5*time.Second); res.Moved != 1 {
		t.Fatalf("MoveSessions: %+v, want 1 moved", res)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := next.h.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	m.commit()
	c.expect(`<stream:error`, `<system-shutdown`)
	c.expect(`<close xmlns="urn:ietf:params:xml:ns:xmpp-framing"`)
	c.expectClose(1012)
	if total, _ := next.g.Sessions("127.0.0.1"); total != 0 {
		t.Errorf("new gateway counts %d sessions after the session ended, want 0", total)
	}
	if st := next.h.Stats(); st.Live != 0 {
		t.Errorf("new handler: %+v, want nothing", st)
	}
	if n := metricSum(t, next.g, "boshd_websocket_sessions_ended_total", map[string]string{"reason": "shutdown"}); n != 1 {
		t.Errorf("new handler counted %v sessions ended by shutdown, want 1", n)
	}
}
