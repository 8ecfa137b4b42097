package bosh

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/boshd/boshd/internal/wait"
)

// upgrade is the two processes of a live upgrade, each a testEnv with
// its handoff socket served: old handed over to new.
type upgrade struct {
	old, new *testEnv
}

// serveHandoff serves e's HandoffHandler on a Unix socket of the test's
// and returns its path.
func serveHandoff(t *testing.T, e *testEnv) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bosh.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: e.h.HandoffHandler()}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return path
}

func newUpgrade(t *testing.T) *upgrade {
	t.Helper()
	u := &upgrade{old: newLoggedEnv(t, slog.LevelDebug, nil), new: newLoggedEnv(t, slog.LevelDebug, nil)}
	u.new.h.SetPredecessor(serveHandoff(t, u.old))
	u.old.h.SetSuccessor(serveHandoff(t, u.new))
	return u
}

// TestHandoffToOld checks that the new process serves, through the old
// one, the requests of a session the old one holds: a payload reaches the
// old one's upstream, a held request is held there and answered with
// what its server sends, a terminate ends the session there.
func TestHandoffToOld(t *testing.T) {
	t.Parallel()
	u := newUpgrade(t)
	sid := u.old.create(100, 5)
	first := u.new.postAsync(`<body xmlns='http://jabber.org/protocol/httpbind' rid='101' sid='` + sid + `'><message xmlns='jabber:client' to='a@example.org'><body>via the new process</body></message></body>`)
	u.old.up.WaitGot(t, "via the new process")
	held := u.new.postAsync(emptyBody(sid, 102))
	if resp := receive(t, first); attrs(resp)["type"] == "terminate" {
		t.Fatalf("forwarded request answered %s", resp)
	}
	waitHeld(t, u.old.h, 1)
	u.old.up.Push(t, "<message xmlns='jabber:client'><body>to the client</body></message>")
	if got := receive(t, held); !strings.Contains(got, "to the client") {
		t.Fatalf("held forwarded request answered %s", got)
	}
	_, _, resp := u.new.post(`<body xmlns='http://jabber.org/protocol/httpbind' rid='103' sid='` + sid + `' type='terminate'/>`)
	if a := attrs(resp); a["type"] != "terminate" || a["condition"] != "" {
		t.Fatalf("terminate answered %s", resp)
	}
	wait.Until(t, func() bool { return u.old.h.sessions.Stats().Live == 0 }, "the session ended in the old process")
	want := `boshd_forwarded_requests_total{outcome="ok",peer="predecessor"} 3` + "\n"
	wait.Until(t, func() bool { return strings.Contains(scrape(t, u.new.h), want) }, "the new process counted %q", want)
	if u.new.h.Sessions() != 0 {
		t.Errorf("the new process holds %d sessions", u.new.h.Sessions())
	}
}

// TestHandoffToNew checks that a request reaching the old process, on a
// connection opened to it before, for a session the new one made, is
// served by the new one.
func TestHandoffToNew(t *testing.T) {
	t.Parallel()
	u := newUpgrade(t)
	sid := u.new.create(100, 5)
	_, _, resp := u.old.post(`<body xmlns='http://jabber.org/protocol/httpbind' rid='101' sid='` + sid + `'><message xmlns='jabber:client' to='a@example.org'><body>via the old process</body></message></body>`)
	if a := attrs(resp); a["type"] == "terminate" {
		t.Fatalf("forwarded request answered %s", resp)
	}
	u.new.up.WaitGot(t, "via the old process")
	want := `boshd_forwarded_requests_total{outcome="ok",peer="successor"} 1` + "\n"
	wait.Until(t, func() bool { return strings.Contains(scrape(t, u.old.h), want) }, "the old process counted %q", want)
}

// TestHandoffNowhere checks that a request for a session neither process
// holds is answered item-not-found, at once, on either: it goes along the
// line of processes and back, never round.
func TestHandoffNowhere(t *testing.T) {
	t.Parallel()
	u := newUpgrade(t)
	for name, e := range map[string]*testEnv{"old": u.old, "new": u.new} {
		start := time.Now()
		status, _, resp := e.post(emptyBody("AAAAAAAAAAAAAAAAAAAAAAAA", 7))
		if a := attrs(resp); status != http.StatusOK || a["type"] != "terminate" || a["condition"] != "item-not-found" {
			t.Errorf("%s process answered %d %s, want item-not-found", name, status, resp)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s process answered after %v, want at once", name, d)
		}
	}
	// The new process had none: asked first, it asked the old one,
	// which sent nothing back. The old one asked the new one, which
	// sent it back once.
	for _, tc := range []struct {
		e    *testEnv
		want string
	}{
		{u.new, `boshd_forwarded_requests_total{outcome="ok",peer="predecessor"} 2`},
		{u.old, `boshd_forwarded_requests_total{outcome="ok",peer="successor"} 1`},
	} {
		if out := scrape(t, tc.e.h); !strings.Contains(out, tc.want+"\n") {
			t.Errorf("metrics lack %q", tc.want)
		}
	}
}

// TestHandoffSocketRefusesClients checks that the handoff socket serves
// only forwarded requests: one without a relative's hop is refused.
func TestHandoffSocketRefusesClients(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	sock := serveHandoff(t, e)
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return new(net.Dialer).DialContext(ctx, "unix", sock)
	}}}
	for _, tc := range []struct {
		name   string
		header map[string]string
	}{
		{"no hop", nil},
		{"a cluster node's name", map[string]string{hopFrom: "n1", hopFor: "192.0.2.1", hopProto: "http"}},
		{"no client address", map[string]string{hopFrom: asSuccessor, hopProto: "http"}},
	} {
		resp, _ := do(t, hc, http.MethodPost, "http://boshd-handoff/http-bind", tc.header, []byte(sprintf(creationBody, 100, 5)))
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", tc.name, resp.StatusCode)
		}
	}
	if e.h.Sessions() != 0 {
		t.Errorf("%d sessions made through the handoff socket", e.h.Sessions())
	}
}

// TestStopAccepting checks that a Listener that stopped accepting goes
// on serving a connection it has, closing it after its next answer, and
// that its socket takes no new connection.
func TestStopAccepting(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	conn, err := net.Dial("tcp", e.hs.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	roundTrip := func(body string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, e.hs.URL, strings.NewReader(body))
		if err := req.Write(conn); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			t.Fatal(err)
		}
		io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp
	}
	resp := roundTrip(sprintf(creationBody, 100, 5))
	if resp.Close {
		t.Fatal("a connection closed before the hand-over")
	}
	e.hs.Listener.(*Listener).StopAccepting()
	resp = roundTrip(emptyBody("AAAAAAAAAAAAAAAAAAAAAAAA", 7))
	if !resp.Close {
		t.Error("the answer after the hand-over does not say Connection: close")
	}
	if c, err := net.DialTimeout("tcp", e.hs.Listener.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Error("the socket took a new connection after StopAccepting")
	}
}

// listenerCopy returns a second listener on l's socket, as cmd/boshd
// keeps one across a hand-over.
func listenerCopy(t *testing.T, l net.Listener) net.Listener {
	t.Helper()
	f, err := l.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := net.FileListener(f)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestResume checks that a Listener that stopped accepting accepts again
// from a copy of its socket, kept while another process accepted on it:
// a connection the kernel queued meanwhile is served, and answers no
// longer say Connection: close. Resume refuses a Listener that accepts
// and one that is closed, closing the socket it was given.
func TestResume(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	l := e.hs.Listener.(*Listener)
	if err := l.Resume(listenerCopy(t, l.inner)); err == nil {
		t.Error("Resume of a Listener that accepts succeeded")
	}
	spare := listenerCopy(t, l.inner)
	l.StopAccepting()

	// A client connecting now is queued on the socket, which the copy
	// keeps open, until something accepts it.
	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req, _ := http.NewRequest(http.MethodPost, e.hs.URL, strings.NewReader(sprintf(creationBody, 100, 5)))
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	if err := l.Resume(spare); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		t.Fatalf("the connection queued while the Listener did not accept: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "sid=") {
		t.Fatalf("the creation on the queued connection answered %d %s", resp.StatusCode, body)
	}
	if resp.Close {
		t.Error("an answer after Resume says Connection: close")
	}
	if code, _, _ := e.post(sprintf(creationBody, 200, 5)); code != http.StatusOK {
		t.Errorf("a new connection after Resume answered %d", code)
	}

	// Stopped and resumed again, then closed: Resume refuses.
	spare = listenerCopy(t, l.inner)
	l.StopAccepting()
	l.Close()
	if err := l.Resume(spare); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Resume of a closed Listener: %v, want net.ErrClosed", err)
	}
	if _, err := spare.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Resume refused left the socket it was given open (Accept: %v)", err)
	}
}
