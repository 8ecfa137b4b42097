package bosh

import (
	"context"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/boshd/boshd/config"
	"github.com/boshd/boshd/internal/xmpptest"
)

// TestSessionLimitsBehindProxy checks that max_sessions_per_ip counts the
// client address a trusted proxy forwards, not the proxy's, and that a
// forged X-Forwarded-For gets no fresh quota; the address is logged with
// the session.
func TestSessionLimitsBehindProxy(t *testing.T) {
	var logs syncBuffer
	_, h := startHandler(t, func(cfg *config.Config) {
		cfg.MaxSessionsPerIP = 1
		cfg.TrustedProxies = []string{"127.0.0.1"} // the test client is the proxy
	}, &logs)
	srv := serve(t, h)
	create := func(xff string) string {
		t.Helper()
		header := map[string]string{"X-Forwarded-For": xff, "Content-Type": "text/xml; charset=utf-8"}
		resp, body := do(t, srv.Client(), "POST", srv.URL, header, []byte(sprintf(creationBody, 100, 5)))
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		a := attrs(string(body))
		if a["type"] == "terminate" {
			return a["condition"]
		}
		return "ok"
	}
	if got := create("203.0.113.1"); got != "ok" {
		t.Fatalf("first session of 203.0.113.1: %s", got)
	}
	if got := create("203.0.113.2"); got != "ok" {
		t.Fatalf("first session of 203.0.113.2: %s (counted as the proxy's?)", got)
	}
	if got := create("203.0.113.1"); got != "policy-violation" {
		t.Fatalf("second session of 203.0.113.1: %s, want policy-violation", got)
	}
	// The client forges an entry; the proxy appends the real address.
	if got := create("198.51.100.7, 203.0.113.2"); got != "policy-violation" {
		t.Fatalf("second session of 203.0.113.2 with a forged entry: %s, want policy-violation", got)
	}
	out := logs.String()
	for _, want := range []string{"ip=203.0.113.1", "ip=203.0.113.2"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "198.51.100.7") {
		t.Errorf("the forged address was logged:\n%s", out)
	}
}

// logRecords is a slog.Handler that keeps the records it handles, for
// tests to look at. Attributes and groups added with With are dropped:
// the tests look at those of each record.
type logRecords struct {
	mu   sync.Mutex
	recs []slog.Record // guarded by mu
}

func (l *logRecords) Enabled(context.Context, slog.Level) bool { return true }

func (l *logRecords) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r.Clone())
	return nil
}

func (l *logRecords) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecords) WithGroup(string) slog.Handler      { return l }

// find returns the records whose message contains msg.
func (l *logRecords) find(msg string) []slog.Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	var found []slog.Record
	for _, r := range l.recs {
		if strings.Contains(r.Message, msg) {
			found = append(found, r)
		}
	}
	return found
}

// attrsOf returns the attributes of r by key, as strings.
func attrsOf(r slog.Record) map[string]string {
	m := make(map[string]string)
	r.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.String()
		return true
	})
	return m
}

// startRecordedHandler is startHandler with what the Handler, its
// gateway and its sessions log kept in the returned records.
func startRecordedHandler(t *testing.T, mutate func(*config.Config)) (*xmpptest.Server, *Handler, *logRecords) {
	t.Helper()
	logs := new(logRecords)
	up, h := newHandler(t, nil, mutate, slog.New(logs))
	return up, h, logs
}

// postCreation sends a session creation request to url with an
// X-Forwarded-For header, unless xff is empty, and returns the condition
// it is refused with, or "" if a session is made.
func postCreation(t *testing.T, url, xff string) string {
	t.Helper()
	header := map[string]string{"Content-Type": "text/xml; charset=utf-8"}
	if xff != "" {
		header["X-Forwarded-For"] = xff
	}
	resp, body := do(t, nil, "POST", url, header, []byte(sprintf(creationBody, 100, 5)))
	a := attrs(string(body))
	if resp.StatusCode != 200 || (a["sid"] == "" && a["type"] != "terminate") {
		t.Fatalf("creation answered %d %s", resp.StatusCode, body)
	}
	return a["condition"]
}

// TestSessionLimitsLoopbackProxies checks that with the loopback proxies
// trusted, a reverse proxy on 127.0.0.1 or ::1 has each of its clients
// counted under the address it forwards, and is not warned about.
func TestSessionLimitsLoopbackProxies(t *testing.T) {
	for _, network := range []string{"tcp4", "tcp6"} {
		t.Run(network, func(t *testing.T) {
			addr := map[string]string{"tcp4": "127.0.0.1:0", "tcp6": "[::1]:0"}[network]
			inner, err := net.Listen(network, addr)
			if err != nil {
				t.Skipf("no %s loopback: %v", network, err)
			}
			_, h, logs := startRecordedHandler(t, func(cfg *config.Config) {
				cfg.MaxSessionsPerIP = 1
				cfg.TrustedProxies = []string{"127.0.0.1", "::1"}
			})
			hs := httptest.NewUnstartedServer(h)
			hs.Listener.Close()
			hs.Listener = inner
			hs.Start()
			t.Cleanup(hs.Close)
			for _, xff := range []string{"203.0.113.1", "203.0.113.2", "2001:db8::1"} {
				if cond := postCreation(t, hs.URL, xff); cond != "" {
					t.Fatalf("first session of %s: %s (counted as the proxy's?)", xff, cond)
				}
				if _, n := h.g.Sessions(xff); n != 1 {
					t.Errorf("%d sessions counted for %s, want 1", n, xff)
				}
			}
			if cond := postCreation(t, hs.URL, "203.0.113.1"); cond != "policy-violation" {
				t.Errorf("second session of 203.0.113.1: %q, want policy-violation", cond)
			}
			peer := strings.Trim(addr[:strings.LastIndex(addr, ":")], "[]")
			if total, n := h.g.Sessions(peer); total != 3 || n != 0 {
				t.Errorf("%d sessions in all, %d for the proxy %s; want 3, 0", total, n, peer)
			}
			if w := logs.find("X-Forwarded-For ignored"); len(w) != 0 {
				t.Errorf("a trusted proxy warned about: %v", w)
			}
		})
	}
}

// TestForwardedForWarning checks the warning for X-Forwarded-For from a
// peer that is not a trusted proxy: logged once per Handler, at warn,
// naming the peer and trusted_proxies; never for a trusted proxy or a
// request without the header.
func TestForwardedForWarning(t *testing.T) {
	for _, tc := range []struct {
		name    string
		proxies []string
		xff     []string // X-Forwarded-For of successive creations, "" for none
		warned  bool
	}{
		{"untrusted peer, twice", nil, []string{"203.0.113.1", "203.0.113.2"}, true},
		{"untrusted peer after requests without", nil, []string{"", "", "203.0.113.1"}, true},
		{"no header", nil, []string{"", ""}, false},
		{"trusted peer", []string{"127.0.0.1", "::1"}, []string{"203.0.113.1", "203.0.113.2"}, false},
		{"other proxy trusted", []string{"10.0.0.1"}, []string{"203.0.113.1"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, h, logs := startRecordedHandler(t, func(cfg *config.Config) { cfg.TrustedProxies = tc.proxies })
			url := serve(t, h).URL
			for _, xff := range tc.xff {
				if cond := postCreation(t, url, xff); cond != "" {
					t.Fatalf("creation with X-Forwarded-For %q refused: %s", xff, cond)
				}
			}
			warnings := logs.find("X-Forwarded-For ignored")
			if !tc.warned {
				if len(warnings) != 0 {
					t.Fatalf("warned: %v", warnings)
				}
				return
			}
			if len(warnings) != 1 {
				t.Fatalf("%d warnings, want 1: %v", len(warnings), warnings)
			}
			w := warnings[0]
			a := attrsOf(w)
			if w.Level != slog.LevelWarn || a["peer"] != "127.0.0.1" || !strings.Contains(w.Message, "trusted_proxies") {
				t.Errorf("warning at %v with %v: %q; want warn, peer=127.0.0.1, naming trusted_proxies", w.Level, a, w.Message)
			}
			wantProxies := "none"
			if tc.proxies != nil {
				wantProxies = "10.0.0.1/32"
			}
			if a["trusted_proxies"] != wantProxies {
				t.Errorf("warning gives trusted_proxies=%q, want %q", a["trusted_proxies"], wantProxies)
			}
		})
	}
}

// TestSessionRefusalLog checks the log line of a session refused by a
// limit: it names the client's address, the setting and its value; a
// proxy's X-Forwarded-For ignored adds a hint at trusted_proxies.
func TestSessionRefusalLog(t *testing.T) {
	for _, tc := range []struct {
		name          string
		max, maxPerIP int
		proxies       []string
		xff           string
		wantMsg       string
		wantLevel     slog.Level
		wantIP        string
		wantLimit     string
		wantHint      bool
	}{
		{"per IP", 0, 2, nil, "", "session refused: max_sessions_per_ip (2) reached", slog.LevelInfo, "127.0.0.1", "2", false},
		{"per IP, forwarded", 0, 2, []string{"127.0.0.1"}, "203.0.113.5", "session refused: max_sessions_per_ip (2) reached", slog.LevelInfo, "203.0.113.5", "2", false},
		{"per IP, proxy not trusted", 0, 2, nil, "203.0.113.5", "session refused: max_sessions_per_ip (2) reached", slog.LevelInfo, "127.0.0.1", "2", true},
		{"server-wide", 2, 0, nil, "", "session refused: max_sessions (2) reached", slog.LevelWarn, "127.0.0.1", "2", false},
		{"server-wide, proxy not trusted", 2, 5, nil, "203.0.113.5", "session refused: max_sessions (2) reached", slog.LevelWarn, "127.0.0.1", "2", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, h, logs := startRecordedHandler(t, func(cfg *config.Config) {
				cfg.MaxSessions, cfg.MaxSessionsPerIP, cfg.TrustedProxies = tc.max, tc.maxPerIP, tc.proxies
			})
			url := serve(t, h).URL
			for i := range 2 {
				if cond := postCreation(t, url, tc.xff); cond != "" {
					t.Fatalf("session %d refused: %s", i+1, cond)
				}
			}
			if cond := postCreation(t, url, tc.xff); cond != "policy-violation" {
				t.Fatalf("third session: %q, want policy-violation", cond)
			}
			refusals := logs.find("session refused")
			if len(refusals) != 1 {
				t.Fatalf("%d refusals logged, want 1: %v", len(refusals), refusals)
			}
			r := refusals[0]
			a := attrsOf(r)
			if r.Message != tc.wantMsg || r.Level != tc.wantLevel || a["ip"] != tc.wantIP || a["limit"] != tc.wantLimit {
				t.Errorf("logged %v %q %v; want %v %q ip=%s limit=%s", r.Level, r.Message, a, tc.wantLevel, tc.wantMsg, tc.wantIP, tc.wantLimit)
			}
			if hint := a["hint"]; (hint != "") != tc.wantHint || (tc.wantHint && !strings.Contains(hint, "trusted_proxies")) {
				t.Errorf("hint %q, want one naming trusted_proxies: %v", hint, tc.wantHint)
			}
		})
	}
}
