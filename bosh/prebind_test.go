package bosh

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/boshd/boshd/config"
	"github.com/boshd/boshd/internal/wait"
	"github.com/boshd/boshd/internal/xmpptest"
)

const (
	prebindUser     = "alice"
	prebindPassword = "pa55-w0rd-secret"
	prebindToken    = "backend-token-0123456789"
)

// prebindEnv is a Handler in front of a fake server that logs alice in
// (xmpptest.LoginRelay), its BOSH endpoint and its /prebind endpoint,
// and the logs of both at debug level.
type prebindEnv struct {
	*client
	up      *xmpptest.Server
	h       *Handler
	prebind *httptest.Server
	logs    *syncBuffer
	token   atomic.Pointer[[]byte]
}

func newPrebindEnv(t *testing.T, mutate func(*config.Config)) *prebindEnv {
	t.Helper()
	e := &prebindEnv{logs: &syncBuffer{}}
	e.up = xmpptest.NewServer(t, xmpptest.LoginRelay(prebindUser, prebindPassword))
	logger := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	_, e.h = newHandler(t, e.up, mutate, logger)
	e.client = newClient(t, serve(t, e.h).URL)
	tok := []byte(prebindToken)
	e.token.Store(&tok)
	e.prebind = httptest.NewServer(e.h.PrebindHandler(func() []byte { return *e.token.Load() }))
	t.Cleanup(e.prebind.Close)
	t.Cleanup(func() {
		for _, secret := range []string{prebindPassword, prebindToken, "wrong-" + prebindPassword} {
			if strings.Contains(e.logs.String(), secret) {
				t.Errorf("a password or token is in the log:\n%s", e.logs)
			}
		}
	})
	return e
}

// call posts body to /prebind with the bearer token (none if "") and
// returns the status and the decoded JSON answer.
func (e *prebindEnv) call(token, body string) (int, map[string]string) {
	e.t.Helper()
	header := map[string]string{"Content-Type": "application/json"}
	if token != "" {
		header["Authorization"] = "Bearer " + token
	}
	resp, data := do(e.t, nil, http.MethodPost, e.prebind.URL+"/prebind", header, []byte(body))
	var out map[string]string
	if err := json.Unmarshal(data, &out); err != nil {
		e.t.Fatalf("answer %d is not a JSON object of strings: %v\n%s", resp.StatusCode, err, data)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		e.t.Errorf("Content-Type %q, want application/json", ct)
	}
	return resp.StatusCode, out
}

// TestPrebind: a pre-bound session is alice's, bound to the resource
// asked; what the server sends before the browser comes is queued and
// delivered on its first request, whose rid is the one /prebind
// answered; the session then relays both ways.
func TestPrebind(t *testing.T) {
	t.Parallel()
	e := newPrebindEnv(t, nil)
	status, out := e.call(prebindToken, `{"jid": "alice@example.org", "resource": "web", "password": "`+prebindPassword+`", "client_ip": "192.0.2.7"}`)
	if status != http.StatusOK {
		t.Fatalf("status %d: %v", status, out)
	}
	if out["jid"] != "alice@example.org/web" || out["sid"] == "" || out["wait"] != "5" {
		t.Fatalf("answer %v; want jid alice@example.org/web, a sid, wait 5 (max_wait)", out)
	}
	rid, err := strconv.Atoi(out["rid"])
	if err != nil || rid < 2 {
		t.Fatalf("rid %q is not a number above 1", out["rid"])
	}
	if n := countLogLines(e.logs.String(), "session pre-bound", "ip=192.0.2.7"); n != 1 {
		t.Errorf("%d log lines of the session pre-bound for client_ip 192.0.2.7, want 1:\n%s", n, e.logs)
	}
	if total, forIP := e.h.g.Sessions("192.0.2.7"); total != 1 || forIP != 1 {
		t.Errorf("sessions counted: %d in all, %d for client_ip; want 1 and 1", total, forIP)
	}

	// Before the browser comes: a roster push and a message.
	e.up.Push(t, `<iq type='set' id='push1'><query xmlns='jabber:iq:roster'><item jid='bob@example.org'/></query></iq>`)
	e.up.Push(t, `<message from='bob@example.org/x' to='alice@example.org/web'><body>early</body></message>`)
	wait.Until(t, func() bool { return e.h.sessions.Stats().Queued == 2 }, "the two stanzas queued")

	_, _, resp := e.post(`<body xmlns='http://jabber.org/protocol/httpbind' sid='` + out["sid"] + `' rid='` + out["rid"] + `'/>`)
	if !strings.Contains(resp, "push1") || !strings.Contains(resp, "<body>early</body>") {
		t.Fatalf("first request's answer does not carry what was queued: %s", resp)
	}
	held := e.postAsync(`<body xmlns='http://jabber.org/protocol/httpbind' sid='` + out["sid"] + `' rid='` + strconv.Itoa(rid+1) + `'><message to='bob@example.org' xmlns='jabber:client'><body>hi</body></message></body>`)
	e.up.WaitGot(t, "<body>hi</body>")
	e.up.Push(t, `<message from='bob@example.org/x' to='alice@example.org/web'><body>reply</body></message>`)
	if resp := receive(t, held); !strings.Contains(resp, "<body>reply</body>") {
		t.Fatalf("second request's answer: %s", resp)
	}
}

// TestPrebindAttachTimeout: a session whose browser never comes ends
// after prebind_attach_timeout, its stream closed, its slot given back.
func TestPrebindAttachTimeout(t *testing.T) {
	t.Parallel()
	e := newPrebindEnv(t, func(c *config.Config) { c.PrebindAttachTimeout = 300 * time.Millisecond })
	status, out := e.call(prebindToken, `{"jid": "alice@example.org", "password": "`+prebindPassword+`"}`)
	if status != http.StatusOK || out["jid"] != "alice@example.org/gen" {
		t.Fatalf("status %d: %v", status, out)
	}
	e.up.WaitGot(t, xmpptest.StreamEnd)
	wait.Until(t, func() bool { total, _ := e.h.g.Sessions(""); return total == 0 }, "the session's slot given back")
	if n := countLogLines(e.logs.String(), "session not attached"); n != 1 {
		t.Errorf("%d log lines of the session not attached, want 1:\n%s", n, e.logs)
	}
	_, _, resp := e.post(`<body xmlns='http://jabber.org/protocol/httpbind' sid='` + out["sid"] + `' rid='` + out["rid"] + `'/>`)
	if a := attrs(resp); a["type"] != "terminate" || a["condition"] != "item-not-found" {
		t.Errorf("a late browser got %s, want item-not-found", resp)
	}
}

// TestPrebindRefused: each bad request gets its status and names the
// field at fault; those refused before dialling dial nothing.
func TestPrebindRefused(t *testing.T) {
	t.Parallel()
	const good = `"jid": "alice@example.org", "password": "` + prebindPassword + `"`
	for _, tc := range []struct {
		name    string
		token   string
		body    string
		status  int
		field   string
		dialled bool
	}{
		{"no token", "", `{` + good + `}`, 401, "", false},
		{"wrong token", "not-the-" + prebindToken, `{` + good + `}`, 401, "", false},
		{"token with a prefix of the right one", prebindToken[:10], `{` + good + `}`, 401, "", false},
		{"malformed JSON", prebindToken, `{"jid": "alice@example.org",`, 400, "", false},
		{"not an object", prebindToken, `["alice@example.org"]`, 400, "", false},
		{"more after the object", prebindToken, `{` + good + `} {}`, 400, "", false},
		{"unknown field", prebindToken, `{` + good + `, "pasword": "x"}`, 400, "pasword", false},
		{"jid not a string", prebindToken, `{"jid": 7, "password": "x"}`, 400, "jid", false},
		{"no jid", prebindToken, `{"password": "x"}`, 400, "jid", false},
		{"jid without localpart", prebindToken, `{"jid": "example.org", "password": "x"}`, 400, "jid", false},
		{"jid with a resource", prebindToken, `{"jid": "alice@example.org/web", "password": "x"}`, 400, "jid", false},
		{"jid not a JID", prebindToken, `{"jid": "alice@", "password": "x"}`, 400, "jid", false},
		{"domain not served", prebindToken, `{"jid": "alice@elsewhere.example", "password": "x"}`, 400, "jid", false},
		{"resource too long", prebindToken, `{` + good + `, "resource": "` + strings.Repeat("r", 1024) + `"}`, 400, "resource", false},
		{"no password", prebindToken, `{"jid": "alice@example.org"}`, 400, "password", false},
		{"password and token", prebindToken, `{` + good + `, "token": "t"}`, 400, "token", false},
		{"unknown mechanism", prebindToken, `{` + good + `, "mechanism": "DIGEST-MD5"}`, 400, "mechanism", false},
		{"client_ip not an address", prebindToken, `{` + good + `, "client_ip": "somewhere"}`, 400, "client_ip", false},
		{"mechanism not offered", prebindToken, `{` + good + `, "mechanism": "SCRAM-SHA-256"}`, 400, "mechanism", true},
		{"wrong password", prebindToken, `{"jid": "alice@example.org", "password": "wrong-` + prebindPassword + `"}`, 401, "", true},
		{"wrong token for XMPP", prebindToken, `{"jid": "alice@example.org", "token": "wrong-` + prebindPassword + `"}`, 401, "", true},
		{"body too large", prebindToken, `{` + good + `, "resource": "` + strings.Repeat("r", maxPrebindBody) + `"}`, 413, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newPrebindEnv(t, nil)
			status, out := e.call(tc.token, tc.body)
			if status != tc.status || out["field"] != tc.field || out["error"] == "" {
				t.Errorf("status %d, %v; want %d naming field %q", status, out, tc.status, tc.field)
			}
			if tc.status == http.StatusUnauthorized && tc.dialled && out["error"] != "login failed" {
				t.Errorf("a refused login is told %q, want the generic \"login failed\"", out["error"])
			}
			if got := e.up.Accepts() > 0; got != tc.dialled {
				t.Errorf("dialled: %v, want %v", got, tc.dialled)
			}
			if tc.dialled {
				// The attempt is closed, not left open.
				e.up.WaitGot(t, xmpptest.StreamEnd)
			}
			if total, _ := e.h.g.Sessions(""); total != 0 || e.h.Sessions() != 0 {
				t.Errorf("%d slots taken, %d sessions after a refusal", total, e.h.Sessions())
			}
		})
	}
}

// TestPrebindRefusedHTTP: the method, the token scheme, and a token
// changed at run time (as cmd/boshd's SIGHUP does).
func TestPrebindRefusedHTTP(t *testing.T) {
	t.Parallel()
	e := newPrebindEnv(t, nil)
	resp, _ := do(t, nil, http.MethodGet, e.prebind.URL+"/prebind", nil, nil)
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
		t.Errorf("GET: %s, Allow %q", resp.Status, resp.Header.Get("Allow"))
	}
	body := `{"jid": "alice@example.org", "password": "` + prebindPassword + `"}`
	resp, _ = do(t, nil, http.MethodPost, e.prebind.URL, map[string]string{"Authorization": "Basic " + prebindToken}, []byte(body))
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("Basic scheme: %s, WWW-Authenticate %q", resp.Status, resp.Header.Get("WWW-Authenticate"))
	}
	newToken := []byte("the-next-token")
	e.token.Store(&newToken)
	if status, _ := e.call(prebindToken, body); status != http.StatusUnauthorized {
		t.Errorf("the old token after a change: %d, want 401", status)
	}
	if status, out := e.call("the-next-token", body); status != http.StatusOK {
		t.Errorf("the new token: %d %v, want 200", status, out)
	}
	empty := []byte{}
	e.token.Store(&empty)
	if status, _ := e.call(" ", body); status != http.StatusUnauthorized {
		t.Errorf("an empty token in force: %d, want 401 for everyone", status)
	}
}

// TestPrebindLimitsAndUpstream: the session limits count client_ip (429),
// an unreachable server is 502, and a handler shutting down 503.
func TestPrebindLimitsAndUpstream(t *testing.T) {
	t.Parallel()
	body := func(ip string) string {
		return `{"jid": "alice@example.org", "password": "` + prebindPassword + `", "client_ip": "` + ip + `"}`
	}
	e := newPrebindEnv(t, func(c *config.Config) { c.MaxSessionsPerIP = 1 })
	if status, out := e.call(prebindToken, body("192.0.2.1")); status != http.StatusOK {
		t.Fatalf("first session: %d %v", status, out)
	}
	if status, out := e.call(prebindToken, body("192.0.2.1")); status != http.StatusTooManyRequests {
		t.Errorf("second session of 192.0.2.1: %d %v, want 429", status, out)
	}
	if e.up.Accepts() != 1 {
		t.Errorf("%d connections upstream, want 1: the refused session dialled", e.up.Accepts())
	}
	if status, out := e.call(prebindToken, body("192.0.2.2")); status != http.StatusOK {
		t.Errorf("a session of another client_ip: %d %v", status, out)
	}
	e.h.Shutdown(context.Background())
	if status, out := e.call(prebindToken, body("192.0.2.3")); status != http.StatusServiceUnavailable {
		t.Errorf("while shutting down: %d %v, want 503", status, out)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := ln.Addr().String()
	ln.Close()
	down := newPrebindEnv(t, func(c *config.Config) { c.Upstreams = map[string]string{"example.org": gone} })
	if status, out := down.call(prebindToken, body("192.0.2.1")); status != http.StatusBadGateway {
		t.Errorf("upstream unreachable: %d %v, want 502", status, out)
	}
}

// TestTokenMatches: the comparison of bearer tokens.
func TestTokenMatches(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		got, want string
		match     bool
	}{
		{"secret", "secret", true},
		{"secret", "secreT", false},
		{"secre", "secret", false},
		{"secret-", "secret", false},
		{"", "", false},
		{"x", "", false},
	} {
		if got := tokenMatches([]byte(tc.got), []byte(tc.want)); got != tc.match {
			t.Errorf("tokenMatches(%q, %q) = %v, want %v", tc.got, tc.want, got, tc.match)
		}
	}
}

// countLogLines returns how many lines of log contain every one of parts.
func countLogLines(log string, parts ...string) int {
	n := 0
lines:
	for _, line := range strings.Split(log, "\n") {
		for _, p := range parts {
			if !strings.Contains(line, p) {
				continue lines
			}
		}
		n++
	}
	return n
}
