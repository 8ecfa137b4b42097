package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/boshd/boshd/admin"
	"github.com/boshd/boshd/bosh"
	"github.com/boshd/boshd/config"
	"github.com/boshd/boshd/gateway"
	"github.com/boshd/boshd/internal/wait"
	"github.com/boshd/boshd/internal/xmpptest"
	"github.com/boshd/boshd/wsbind"
)

// testNode is one server as cmd/boshd wires it: a gateway shared by a BOSH
// and a WebSocket handler, served over HTTP in front of a fake upstream,
// and its admin endpoints.
type testNode struct {
	g     *gateway.Gateway
	h     *bosh.Handler
	wsh   *wsbind.Handler
	srv   *httptest.Server // BOSH at /http-bind, WebSocket at /ws
	admin http.Handler
	logs  *lockedBuffer
}

func newServer(t *testing.T) *testNode {
	t.Helper()
	up := xmpptest.NewRelay(t, xmpptest.NoFeatures)
	cfg := config.Default()
	cfg.Upstreams = map[string]string{xmpptest.Domain: up.Addr()}
	cfg.UpstreamTLS = "plaintext"
	logs := &lockedBuffer{}
	g, err := gateway.New(cfg, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	h := bosh.NewHandlerWith(g)
	wsh := wsbind.NewHandler(g)
	mux := http.NewServeMux()
	mux.Handle("/http-bind", h)
	mux.Handle("/ws", wsh)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.Shutdown(ctx)
		wsh.Shutdown(ctx)
		srv.Close()
		g.Close()
	})
	return &testNode{g: g, h: h, wsh: wsh, srv: srv, logs: logs,
		admin: admin.NewHandler(h, admin.Options{WebSocket: wsh, ReadyCache: time.Hour})}
}

// post sends body to the BOSH endpoint and returns the status and body.
func (c *testNode) post(t *testing.T, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(c.srv.URL+"/http-bind", "text/xml; charset=utf-8", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

// createBOSH opens a BOSH session and returns its sid.
func (c *testNode) createBOSH(t *testing.T, rid int) string {
	t.Helper()
	_, body := c.post(t, `<body xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' rid='`+strconv.Itoa(rid)+`' to='`+xmpptest.Domain+`' wait='5' hold='1' ver='1.11' xmpp:version='1.0'/>`)
	i := strings.Index(body, "sid='")
	if i < 0 {
		t.Fatalf("no session: %s", body)
	}
	return body[i+5 : i+5+strings.Index(body[i+5:], "'")]
}

// openWebSocket opens a WebSocket session and returns its connection.
func (c *testNode) openWebSocket(t *testing.T) net.Conn {
	t.Helper()
	d := ws.Dialer{Protocols: []string{"xmpp"}, Timeout: 5 * time.Second}
	conn, _, _, err := d.Dial(context.Background(), "ws"+strings.TrimPrefix(c.srv.URL, "http")+"/ws")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := wsutil.WriteClientText(conn, []byte(`<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="`+xmpptest.Domain+`" version="1.0"/>`)); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(wait.Deadline))
	if msg, err := wsutil.ReadServerText(conn); err != nil || !strings.Contains(string(msg), "<open") {
		t.Fatalf("the session did not open: %q %v", msg, err)
	}
	return conn
}

// drainRequest sends method /drain to c's admin endpoints with the given
// Origin (none if empty) and returns the status and the state answered.
func (c *testNode) drainRequest(t *testing.T, method, origin string) (int, map[string]any) {
	t.Helper()
	r := httptest.NewRequest(method, "/drain", nil)
	if origin != "" {
		r.Header.Set("Origin", origin)
	}
	w := httptest.NewRecorder()
	c.admin.ServeHTTP(w, r)
	var st map[string]any
	if w.Code == http.StatusOK {
		if ct := w.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s /drain: Content-Type %q", method, ct)
		}
		if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil {
			t.Fatalf("%s /drain: %v: %q", method, err, w.Body.String())
		}
	}
	return w.Code, st
}

// TestDrainEndpoint walks /drain through its states with BOSH and
// WebSocket sessions open, checking each answer, readiness and the
// refusal of new sessions, and the counts going to zero as the sessions
// end.
func TestDrainEndpoint(t *testing.T) {
	t.Parallel()
	c := newServer(t)
	sid := c.createBOSH(t, 100)
	c.createBOSH(t, 200)
	conn := c.openWebSocket(t)
	wait.Until(t, func() bool { return c.wsh.Stats().Live == 1 }, "the WebSocket session registered")

	state := func(draining bool, sessions, websocket float64) map[string]any {
		return map[string]any{"draining": draining, "sessions": sessions, "websocket": websocket}
	}
	for _, step := range []struct {
		method, origin string
		status         int
		want           map[string]any // nil: no state answered
		ready          bool
	}{
		{method: "GET", status: 200, want: state(false, 2, 1), ready: true},
		{method: "POST", origin: "https://evil.example", status: 403, ready: true},
		{method: "GET", status: 200, want: state(false, 2, 1), ready: true},
		{method: "POST", status: 200, want: state(true, 2, 1)},
		{method: "POST", status: 200, want: state(true, 2, 1)},
		{method: "GET", status: 200, want: state(true, 2, 1)},
		{method: "DELETE", origin: "https://evil.example", status: 403},
		{method: "DELETE", status: 200, want: state(false, 2, 1), ready: true},
		{method: "PUT", status: 405, ready: true},
		{method: "POST", status: 200, want: state(true, 2, 1)},
	} {
		name := step.method + " /drain"
		if step.origin != "" {
			name += " from a page"
		}
		status, st := c.drainRequest(t, step.method, step.origin)
		if status != step.status {
			t.Fatalf("%s: status %d, want %d", name, status, step.status)
		}
		if step.want != nil && !equalState(st, step.want) {
			t.Errorf("%s: %v, want %v", name, st, step.want)
		}
		code, body := get(t, c.admin, "/readyz")
		if ready := code == 200; ready != step.ready {
			t.Errorf("after %s: readyz %d %q, want ready %v", name, code, body, step.ready)
		}
		if !step.ready && !strings.Contains(body, "draining") {
			t.Errorf("after %s: readyz %q does not say draining", name, body)
		}
	}
	if _, body := get(t, c.admin, "/"); !strings.Contains(body, "<th>draining</th>") {
		t.Errorf("the status page does not show draining: %q", body)
	}
	if logs := c.logs.String(); !strings.Contains(logs, `msg="draining: new sessions refused, open ones go on" by="admin POST /drain from `) ||
		!strings.Contains(logs, `msg="draining undone: new sessions admitted"`) {
		t.Errorf("drain not logged:\n%s", logs)
	}

	// New sessions are refused; the open ones end and the counts follow.
	if status, body := c.post(t, `<body xmlns='http://jabber.org/protocol/httpbind' rid='9' to='`+xmpptest.Domain+`' wait='5' hold='1' ver='1.11'/>`); status != 503 {
		t.Errorf("creation while draining: %d %s", status, body)
	}
	if status, body := c.post(t, `<body xmlns='http://jabber.org/protocol/httpbind' sid='`+sid+`' rid='101' type='terminate'/>`); status != 200 {
		t.Errorf("terminate while draining: %d %s", status, body)
	}
	wsutil.WriteClientText(conn, []byte(`<close xmlns="urn:ietf:params:xml:ns:xmpp-framing"/>`))
	wait.Until(t, func() bool {
		_, st := c.drainRequest(t, "GET", "")
		return equalState(st, state(true, 1, 0))
	}, "/drain to report 1 BOSH session and no WebSocket session")
}

// equalState compares two decoded /drain answers.
func equalState(a, b map[string]any) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range b {
		if a[k] != v {
			return false
		}
	}
	return true
}

// TestAgent checks the agent's answer in each state, over TCP, as
// HAProxy's agent-check reads it, and that Serve returns when its
// context ends.
func TestAgent(t *testing.T) {
	t.Parallel()
	c := newServer(t)
	listening := true
	var mu sync.Mutex
	agent := admin.NewAgent(c.h, admin.Options{Listening: func() bool {
		mu.Lock()
		defer mu.Unlock()
		return listening
	}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- agent.Serve(ctx, ln) }()

	setListening := func(v bool) {
		mu.Lock()
		defer mu.Unlock()
		listening = v
	}
	for _, step := range []struct {
		name string
		do   func()
		want string
	}{
		{"up", func() {}, "up ready\n"},
		{"draining", func() { c.g.Drain() }, "drain\n"},
		{"undrained", func() { c.g.Undrain() }, "up ready\n"},
		{"listener down", func() { setListening(false) }, "down\n"},
		{"listener up", func() { setListening(true) }, "up ready\n"},
		{"draining and stopping", func() { c.g.Drain(); c.g.Stop() }, "down\n"},
	} {
		step.do()
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		conn.SetReadDeadline(time.Now().Add(wait.Deadline))
		got, err := io.ReadAll(conn) // until the agent closes
		conn.Close()
		if err != nil || string(got) != step.want {
			t.Errorf("%s: the agent answered %q (%v), want %q and the connection closed", step.name, got, err, step.want)
		}
		if s := agent.State(); s != step.want {
			t.Errorf("%s: State() = %q, want %q", step.name, s, step.want)
		}
	}
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve after its context ended: %v", err)
		}
	case <-time.After(wait.Deadline):
		t.Fatal("Serve did not return when its context ended")
	}
	if conn, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		conn.Close()
		t.Error("the agent's listener still accepts after Serve returned")
	}
}

// lockedBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
