package bosh

import (
	"bufio"
	"context"
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
