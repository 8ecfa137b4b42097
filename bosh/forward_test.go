package bosh

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/boshd/boshd/config"
	"github.com/boshd/boshd/internal/wait"
)

// testSecret is the cluster secret of the tests.
var testSecret = []byte(strings.Repeat("s3cret-", 6))

// writeSecret writes secret to a file of the test's and returns its name.
func writeSecret(t *testing.T, secret []byte) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "cluster-secret")
	if err := os.WriteFile(name, append(slices.Clip(secret), '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// cluster is two nodes of a cluster in front of one fake upstream each:
// n2 holds the sessions, and n1 forwards to it. n1 also has a peer n3
// that nothing answers for.
type cluster struct {
	n1, n2 *testEnv
	secret string // the secret's file
}

// newCluster starts n2, then n1 with n2 and a dead n3 as peers; mutate,
// if not nil, changes the configuration of both.
func newCluster(t *testing.T, mutate func(*config.Config)) *cluster {
	t.Helper()
	c := &cluster{secret: writeSecret(t, testSecret)}
	c.n2 = newLoggedEnv(t, slog.LevelDebug, func(cfg *config.Config) {
		cfg.NodeID, cfg.ClusterSecretFile = "n2", c.secret
		// n1 is not there yet: n2 knows its name, not its address,
		// which n2 never needs here.
		cfg.Peers = map[string]string{"n1": deadAddr(t)}
		if mutate != nil {
			mutate(cfg)
		}
	})
	c.n1 = newLoggedEnv(t, slog.LevelDebug, func(cfg *config.Config) {
		cfg.NodeID, cfg.ClusterSecretFile = "n1", c.secret
		cfg.Peers = map[string]string{"n2": c.n2.hs.Listener.Addr().String(), "n3": deadAddr(t)}
		if mutate != nil {
			mutate(cfg)
		}
	})
	return c
}

// signedPost posts body to url as node from would forward it, for the
// client at client, and returns the status and the body of the answer.
func signedPost(t *testing.T, url string, secret []byte, hp *hop, at time.Time, body string) (int, string) {
	t.Helper()
	header := make(http.Header)
	signHop(header, secret, hp, at, []byte(body))
	h := map[string]string{"Content-Type": "text/xml; charset=utf-8"}
	for name := range header {
		h[name] = header.Get(name)
	}
	resp, data := do(t, nil, http.MethodPost, url, h, []byte(body))
	return resp.StatusCode, string(data)
}

// TestForwardHeld checks that requests for n2's sessions sent to n1 are
// served by n2: a payload reaches n2's upstream, a held request is held
// by n2 and answered through n1 with what the server sends, and a
// terminate ends the session on n2.
func TestForwardHeld(t *testing.T) {
	t.Parallel()
	c := newCluster(t, nil)
	sid := c.n2.create(100, 5)
	if NodeOf(sid) != "n2" {
		t.Fatalf("n2 gave the sid %q", sid)
	}
	first := c.n1.postAsync(`<body xmlns='http://jabber.org/protocol/httpbind' rid='101' sid='` + sid + `'><message xmlns='jabber:client' to='a@example.org'><body>via n1</body></message></body>`)
	c.n2.up.WaitGot(t, "via n1")
	held := c.n1.postAsync(emptyBody(sid, 102))
	if resp := receive(t, first); attrs(resp)["type"] == "terminate" {
		t.Fatalf("forwarded request answered %s", resp)
	}
	waitHeld(t, c.n2.h, 1)
	c.n2.up.Push(t, "<message xmlns='jabber:client'><body>to the client</body></message>")
	if got := receive(t, held); !strings.Contains(got, "to the client") {
		t.Fatalf("held forwarded request answered %s", got)
	}
	_, _, resp := c.n1.post(`<body xmlns='http://jabber.org/protocol/httpbind' rid='103' sid='` + sid + `' type='terminate'/>`)
	if a := attrs(resp); a["type"] != "terminate" || a["condition"] != "" {
		t.Fatalf("terminate answered %s", resp)
	}
	wait.Until(t, func() bool { return c.n2.h.sessions.Stats().Live == 0 }, "the session ended on n2")
	// n1 counts a request once its handler returns, which may be after
	// the client has read the answer.
	counted := `boshd_requests_total{outcome="forwarded"} 3` + "\n"
	var out string
	wait.Until(t, func() bool { out = scrape(t, c.n1.h); return strings.Contains(out, counted) }, "n1 counted 3 forwarded requests")
	for _, want := range []string{
		`boshd_forwarded_requests_total{outcome="ok",peer="n2"} 3` + "\n",
		`boshd_forwarded_requests_total{outcome="unreachable",peer="n3"} 0` + "\n",
		`boshd_forward_duration_seconds_count{peer="n2"} 3` + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("n1's metrics lack %q", want)
		}
	}
	if t.Failed() {
		t.Log(out)
	}
}

// TestForwardItemNotFound checks that a request for a session no node
// holds is answered item-not-found at once, whether its node is unknown,
// unreachable, or the one asked.
func TestForwardItemNotFound(t *testing.T) {
	t.Parallel()
	c := newCluster(t, nil)
	for _, tc := range []struct {
		name, sid string
		metric    string // a line n1's metrics then have; "" for none
		log       string // what n1 logs
	}{
		{"unknown node", "n9.AAAAAAAAAAAAAAAAAAAAAAAA", "", "sid of an unknown node"},
		{"unreachable node", "n3.AAAAAAAAAAAAAAAAAAAAAAAA", `boshd_forwarded_requests_total{outcome="unreachable",peer="n3"} 1`, "forwarding failed"},
		{"gone from its node", "n2.AAAAAAAAAAAAAAAAAAAAAAAA", `boshd_forwarded_requests_total{outcome="ok",peer="n2"} 1`, ""},
		{"this node's", "n1.AAAAAAAAAAAAAAAAAAAAAAAA", "", "unknown sid"},
		{"no node", "AAAAAAAAAAAAAAAAAAAAAAAA", "", "unknown sid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			status, _, resp := c.n1.post(emptyBody(tc.sid, 7))
			if a := attrs(resp); status != http.StatusOK || a["type"] != "terminate" || a["condition"] != "item-not-found" {
				t.Errorf("answered %d %s, want item-not-found", status, resp)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("answered after %v, want at once", d)
			}
			if tc.metric != "" && !strings.Contains(scrape(t, c.n1.h), tc.metric+"\n") {
				t.Errorf("n1's metrics lack %q", tc.metric)
			}
			if tc.log != "" && !strings.Contains(c.n1.logs.String(), tc.log) {
				t.Errorf("n1 did not log %q:\n%s", tc.log, c.n1.logs)
			}
		})
	}
}

// TestHopRefused checks that a request whose hop headers do not check
// out is refused with 403, logged and counted, and never served: the
// session's next request is still the one it awaits.
func TestHopRefused(t *testing.T) {
	t.Parallel()
	c := newCluster(t, nil)
	sid := c.n2.create(100, 1)
	body := emptyBody(sid, 101)
	good := func() http.Header {
		h := make(http.Header)
		signHop(h, testSecret, &hop{from: "n1", client: "203.0.113.9"}, time.Now(), []byte(body))
		return h
	}
	refused := make(map[string]int) // by peer label
	for _, tc := range []struct {
		name   string
		header func() http.Header
		label  string // the peer label n2 counts the refusal under
	}{
		{"forged client address", func() http.Header {
			return http.Header{hopFor: {"192.0.2.66"}}
		}, "unknown"},
		{"forged signature", func() http.Header {
			h := good()
			h.Set(hopAuth, strings.Repeat("00", 32))
			return h
		}, "n1"},
		{"another secret", func() http.Header {
			h := make(http.Header)
			signHop(h, []byte(strings.Repeat("x", 32)), &hop{from: "n1", client: "203.0.113.9"}, time.Now(), []byte(body))
			return h
		}, "n1"},
		{"replayed a minute later", func() http.Header {
			h := make(http.Header)
			signHop(h, testSecret, &hop{from: "n1", client: "203.0.113.9"}, time.Now().Add(-time.Minute), []byte(body))
			return h
		}, "n1"},
		{"another client address", func() http.Header {
			h := good()
			h.Set(hopFor, "192.0.2.66")
			return h
		}, "n1"},
		{"a node n2 does not know", func() http.Header {
			h := make(http.Header)
			signHop(h, []byte(strings.Repeat("x", 32)), &hop{from: "n7", client: "203.0.113.9"}, time.Now(), []byte(body))
			return h
		}, "unknown"},
		{"only Boshd-Forwarded", func() http.Header {
			return http.Header{hopFrom: {"n1"}}
		}, "n1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			header := map[string]string{"Content-Type": "text/xml; charset=utf-8"}
			for name, v := range tc.header() {
				header[name] = v[0]
			}
			resp, data := do(t, nil, http.MethodPost, c.n2.url, header, []byte(body))
			if resp.StatusCode != http.StatusForbidden || strings.Contains(string(data), "<body") {
				t.Errorf("answered %d %s, want 403 without a BOSH body", resp.StatusCode, data)
			}
			refused[tc.label]++
			want := fmt.Sprintf(`boshd_forwarded_requests_total{outcome="refused",peer=%q} %d`, tc.label, refused[tc.label])
			if out := scrape(t, c.n2.h); !strings.Contains(out, want+"\n") {
				t.Errorf("n2's metrics lack %q", want)
			}
		})
	}
	if n := strings.Count(c.n2.logs.String(), "forwarded request refused"); n != 7 {
		t.Errorf("n2 logged %d refusals, want 7:\n%s", n, c.n2.logs)
	}
	// None was served: rid 101 is still the next, and is held.
	if got := receive(t, c.n2.postAsync(body)); attrs(got)["type"] == "terminate" {
		t.Errorf("rid 101 after the refusals answered %s", got)
	}
}

// TestHopNeverTwice checks that a request forwarded to a node that does
// not hold its session is not forwarded again, even to a peer that does.
func TestHopNeverTwice(t *testing.T) {
	t.Parallel()
	var (
		mu  sync.Mutex
		got int // guarded by mu
	)
	n3 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got++
		mu.Unlock()
	}))
	defer n3.Close()
	secret := writeSecret(t, testSecret)
	n2 := newLoggedEnv(t, slog.LevelDebug, func(cfg *config.Config) {
		cfg.NodeID, cfg.ClusterSecretFile = "n2", secret
		cfg.Peers = map[string]string{"n3": n3.Listener.Addr().String()}
	})
	body := emptyBody("n3.AAAAAAAAAAAAAAAAAAAAAAAA", 5)
	status, resp := signedPost(t, n2.url, testSecret, &hop{from: "n1", client: "203.0.113.9"}, time.Now(), body)
	if a := attrs(resp); status != http.StatusOK || a["condition"] != "item-not-found" {
		t.Errorf("answered %d %s, want item-not-found", status, resp)
	}
	mu.Lock()
	defer mu.Unlock()
	if got != 0 {
		t.Errorf("n3 got %d requests, want none", got)
	}
	if !strings.Contains(n2.logs.String(), "not forwarded again") {
		t.Errorf("n2 did not log the loop:\n%s", n2.logs)
	}
}

// capture is a peer that records the requests forwarded to it and
// answers each with a fixed response.
type capture struct {
	mu   sync.Mutex
	reqs []*http.Request // guarded by mu, bodies read into bodies
	body [][]byte        // guarded by mu

	status      int
	contentType string
	answer      string
}

func (c *capture) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	data, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	c.reqs = append(c.reqs, r)
	c.body = append(c.body, data)
	c.mu.Unlock()
	w.Header().Set("Content-Type", c.contentType)
	w.Header().Set("X-Not-Relayed", "1")
	w.WriteHeader(c.status)
	io.WriteString(w, c.answer)
}

// last returns the last request recorded and its body.
func (c *capture) last(t *testing.T) (*http.Request, []byte) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.reqs) == 0 {
		t.Fatal("the peer got no request")
	}
	return c.reqs[len(c.reqs)-1], c.body[len(c.body)-1]
}

// TestForwardSends checks what a node sends to the peer owning a session
// (the body as it came, gzip undone; its Content-Type and Host; the
// client's address, as resolved behind trusted proxies, and the
// X-Forwarded-For it came with; whether it came over TLS; a signature
// that checks out) and what it relays back (status, Content-Type, body,
// compressed if the client accepts gzip).
func TestForwardSends(t *testing.T) {
	t.Parallel()
	long := "<body xmlns='http://jabber.org/protocol/httpbind'>" + strings.Repeat("<message xmlns='jabber:client'><body>relayed</body></message>", 20) + "</body>"
	for _, tc := range []struct {
		name       string
		header     map[string]string
		gzipBody   bool
		peer       *capture
		wantClient string // the client address n1 signs
		wantXFF    string
	}{
		{
			name:       "from a trusted proxy",
			header:     map[string]string{"X-Forwarded-For": "198.51.100.7, 203.0.113.9", "Content-Type": "text/xml; charset=utf-8"},
			peer:       &capture{status: 200, contentType: "text/xml; charset=utf-8", answer: "<body xmlns='http://jabber.org/protocol/httpbind'/>"},
			wantClient: "203.0.113.9",
			wantXFF:    "198.51.100.7, 203.0.113.9",
		},
		{
			name:       "direct, legacy status and gzip",
			header:     map[string]string{"Content-Type": "application/xml", "Accept-Encoding": "gzip"},
			gzipBody:   true,
			peer:       &capture{status: 404, contentType: "application/xml", answer: long},
			wantClient: "127.0.0.1",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			peer := tc.peer
			n2 := httptest.NewServer(peer)
			defer n2.Close()
			secret := writeSecret(t, testSecret)
			_, n1 := newHandler(t, nil, func(cfg *config.Config) {
				cfg.NodeID, cfg.ClusterSecretFile = "n1", secret
				cfg.Peers = map[string]string{"n2": n2.Listener.Addr().String()}
			}, nil)
			hs := serve(t, n1)
			body := `<body xmlns='http://jabber.org/protocol/httpbind' rid='9' sid='n2.AAAA'><message xmlns='jabber:client'><body>x</body></message></body>`
			sent := []byte(body)
			if tc.gzipBody {
				var b bytes.Buffer
				zw := gzip.NewWriter(&b)
				zw.Write(sent)
				zw.Close()
				sent = b.Bytes()
				tc.header["Content-Encoding"] = "gzip"
			}
			tc.header["Host"] = "chat.example.org"
			resp, data := do(t, nil, http.MethodPost, hs.URL+"/http-bind", tc.header, sent)

			r, got := peer.last(t)
			if string(got) != body {
				t.Errorf("the peer got the body %q, want %q", got, body)
			}
			if r.Host != "chat.example.org" || r.URL.Path != "/http-bind" || r.Header.Get("Content-Type") != tc.header["Content-Type"] || r.Header.Get("Content-Encoding") != "" {
				t.Errorf("the peer got Host %q, path %q, Content-Type %q, Content-Encoding %q", r.Host, r.URL.Path, r.Header.Get("Content-Type"), r.Header.Get("Content-Encoding"))
			}
			hp, err := checkHop(r.Header, testSecret, time.Now(), got)
			if err != nil {
				t.Fatalf("the hop does not check out: %v", err)
			}
			if want := (hop{from: "n1", client: tc.wantClient, xff: tc.wantXFF}); *hp != want {
				t.Errorf("hop %+v, want %+v", *hp, want)
			}

			if resp.StatusCode != tc.peer.status || resp.Header.Get("Content-Type") != tc.peer.contentType || resp.Header.Get("X-Not-Relayed") != "" {
				t.Errorf("relayed %d %v", resp.StatusCode, resp.Header)
			}
			if tc.gzipBody {
				if resp.Header.Get("Content-Encoding") != "gzip" {
					t.Fatalf("a long answer to a client accepting gzip relayed as %q", resp.Header.Get("Content-Encoding"))
				}
				zr, err := gzip.NewReader(bytes.NewReader(data))
				if err != nil {
					t.Fatal(err)
				}
				if data, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
			}
			if string(data) != tc.peer.answer {
				t.Errorf("relayed %q, want %q", data, tc.peer.answer)
			}
		})
	}
}

// TestHopClientAddress checks that the node owning a session takes the
// client's address from a hop that checks out, for max_sessions_per_ip,
// and its TLS for XEP-0124 §19.1.
func TestHopClientAddress(t *testing.T) {
	t.Parallel()
	secret := writeSecret(t, testSecret)
	n2 := newLoggedEnv(t, slog.LevelInfo, func(cfg *config.Config) {
		cfg.NodeID, cfg.ClusterSecretFile = "n2", secret
		cfg.MaxSessionsPerIP = 1
	})
	creation := sprintf(creationBody, 100, 5)
	create := func(client string, tls bool) map[string]string {
		t.Helper()
		status, resp := signedPost(t, n2.url, testSecret, &hop{from: "n1", client: client, tls: tls}, time.Now(), creation)
		if status != http.StatusOK {
			t.Fatalf("creation answered %d %s", status, resp)
		}
		return attrs(resp)
	}
	a := create("203.0.113.1", true)
	if a["sid"] == "" {
		t.Fatalf("first session of 203.0.113.1 refused: %v", a)
	}
	if b := create("203.0.113.1", false); b["condition"] != "policy-violation" {
		t.Errorf("second session of 203.0.113.1: %v, want policy-violation", b)
	}
	if b := create("203.0.113.2", false); b["sid"] == "" {
		t.Errorf("first session of 203.0.113.2 refused: %v (counted as the peer's?)", b)
	}
	if !strings.Contains(n2.logs.String(), "ip=203.0.113.1") {
		t.Errorf("n2 did not log the client's address:\n%s", n2.logs)
	}
	// The first session was made over TLS, as far as the client knows:
	// a plaintext request is sent to https (XEP-0124 §19.1), and one
	// forwarded from TLS served.
	sid := a["sid"]
	if _, _, resp := n2.post(emptyBody(sid, 101)); attrs(resp)["condition"] != "see-other-uri" {
		t.Errorf("plaintext request of a TLS session answered %s", resp)
	}
	status, resp := signedPost(t, n2.url, testSecret, &hop{from: "n1", client: "203.0.113.1", tls: true}, time.Now(), `<body xmlns='http://jabber.org/protocol/httpbind' rid='101' sid='`+sid+`' type='terminate'/>`)
	if b := attrs(resp); status != http.StatusOK || b["type"] != "terminate" || b["condition"] != "" {
		t.Errorf("forwarded TLS request answered %d %s", status, resp)
	}
}

// TestForwardShutdown checks that a node shutting down while a request
// it forwarded is held tells the client to try again (503), leaving the
// session to the node that holds it.
func TestForwardShutdown(t *testing.T) {
	t.Parallel()
	c := newCluster(t, nil)
	sid := c.n2.create(100, 5)
	held := make(chan *http.Response, 1)
	go func() {
		resp, _, err := send(nil, http.MethodPost, c.n1.url, nil, strings.NewReader(emptyBody(sid, 101)))
		if err != nil {
			t.Error(err)
		}
		held <- resp
	}()
	waitHeld(t, c.n2.h, 1)
	ctx, cancel := context.WithTimeout(context.Background(), wait.Deadline)
	defer cancel()
	c.n1.h.Shutdown(ctx)
	resp := wait.Receive(t, held, "the held request's answer")
	if resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("answered %v, want 503 with Retry-After", resp)
	}
	if c.n2.h.Sessions() != 1 {
		t.Errorf("n2 holds %d sessions, want its one", c.n2.h.Sessions())
	}
}

// TestHopSecretReload checks that a reload reads cluster_secret_file
// again: the old secret is refused from then on, the new one taken.
func TestHopSecretReload(t *testing.T) {
	t.Parallel()
	secret := writeSecret(t, testSecret)
	var cfg config.Config
	n2 := newEnv(t, func(c *config.Config) {
		c.NodeID, c.ClusterSecretFile = "n2", secret
		cfg = *c
	})
	creation := sprintf(creationBody, 100, 5)
	post := func(secret []byte) int {
		status, _ := signedPost(t, n2.url, secret, &hop{from: "n1", client: "203.0.113.1"}, time.Now(), creation)
		return status
	}
	if got := post(testSecret); got != http.StatusOK {
		t.Fatalf("with the secret: %d", got)
	}
	newSecret := []byte(strings.Repeat("n", 40))
	if err := os.WriteFile(secret, newSecret, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := n2.h.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if got := post(testSecret); got != http.StatusForbidden {
		t.Errorf("with the old secret after the reload: %d, want 403", got)
	}
	if got := post(newSecret); got != http.StatusOK {
		t.Errorf("with the new secret after the reload: %d, want 200", got)
	}
	// A file too short is refused, and the secret in force stays.
	if err := os.WriteFile(secret, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := n2.h.Reload(cfg); err == nil || !strings.Contains(err.Error(), "cluster_secret_file") {
		t.Errorf("reload with a short secret: %v, want an error naming cluster_secret_file", err)
	}
	if got := post(newSecret); got != http.StatusOK {
		t.Errorf("with the secret in force after a refused reload: %d, want 200", got)
	}
}

// TestConnLimitsPeers checks that connections from the peers named by
// an IP address are counted but not capped: a node forwarding held
// requests opens one connection per request.
func TestConnLimitsPeers(t *testing.T) {
	t.Parallel()
	secret := writeSecret(t, testSecret)
	_, h := newHandler(t, nil, func(cfg *config.Config) {
		cfg.NodeID, cfg.ClusterSecretFile = "n1", secret
		cfg.Peers = map[string]string{"n2": "127.0.0.12:5280", "n3": "[::ffff:127.0.0.13]:5280", "n4": "localhost:5280"}
		cfg.TrustedProxies = nil
	}, nil)
	l := newConnLimits(1, h.Gateway(), time.Now)
	for _, tc := range []struct {
		remote string
		ok     bool
	}{
		{"127.0.0.12:1000", true},
		{"127.0.0.12:1001", true},
		{"127.0.0.13:1000", true},
		{"127.0.0.13:1001", true},
		{"127.0.0.1:1000", true},
		{"127.0.0.1:1001", false}, // localhost is a name, not an address
		{"127.0.0.14:1000", true},
		{"127.0.0.14:1001", false},
	} {
		if _, ok := l.admit(&addrConn{remote: tcpAddr(tc.remote)}); ok != tc.ok {
			t.Errorf("admit(%s) = %v, want %v", tc.remote, ok, tc.ok)
		}
	}
}

// silentAddr returns a loopback address whose listener takes no more
// connections: its accept queue is full and never read, so that a
// connection attempt waits for the SYN's answer until it gives up.
func silentAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
	// The one connection the queue holds.
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if c2, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
		c2.Close()
		t.Skip("this kernel accepts past a full accept queue; no silent peer to test with")
	}
	return addr
}

// TestForwardPeerSilent checks that a peer that does not take the
// connection is given up after peerConnectTimeout: the client gets
// item-not-found in about a second, not at the end of its wait.
func TestForwardPeerSilent(t *testing.T) {
	t.Parallel()
	secret := writeSecret(t, testSecret)
	env := newLoggedEnv(t, slog.LevelInfo, func(cfg *config.Config) {
		cfg.NodeID, cfg.ClusterSecretFile = "n1", secret
		cfg.Peers = map[string]string{"n2": silentAddr(t)}
	})
	start := time.Now()
	_, _, resp := env.post(emptyBody("n2.AAAAAAAAAAAAAAAAAAAAAAAA", 7))
	d := time.Since(start)
	if a := attrs(resp); a["condition"] != "item-not-found" {
		t.Errorf("answered %s, want item-not-found", resp)
	}
	if d < peerConnectTimeout/2 || d > peerConnectTimeout+2*time.Second {
		t.Errorf("answered after %v, want about %v", d, peerConnectTimeout)
	}
	if out := scrape(t, env.h); !strings.Contains(out, `boshd_forwarded_requests_total{outcome="unreachable",peer="n2"} 1`+"\n") {
		t.Errorf("not counted unreachable:\n%s", out)
	}
	if !strings.Contains(env.logs.String(), "forwarding failed") || !strings.Contains(env.logs.String(), "peer=n2") {
		t.Errorf("not logged with the peer:\n%s", env.logs)
	}
}

// TestForwardSecretChanging: nodes reloaded together with a new secret
// take it a moment apart. A request n1 forwards while n2 has the new
// secret and n1 the old is refused by n2, signed again and sent again
// once n1 has the new one too, and served; a secret that stays different
// ends in item-not-found after the retries, as before.
func TestForwardSecretChanging(t *testing.T) {
	t.Parallel()
	c := newCluster(t, nil)
	sid := c.n2.create(100, 1) // a held request is answered within 1 s
	newSecret := []byte(strings.Repeat("n3w-s3cret-", 4))
	c.n2.h.fwd.setSecret(newSecret)
	later := time.AfterFunc(250*time.Millisecond, func() { c.n1.h.fwd.setSecret(newSecret) })
	defer later.Stop()
	_, _, resp := c.n1.post(`<body xmlns='http://jabber.org/protocol/httpbind' rid='101' sid='` + sid + `'><message xmlns='jabber:client' to='a@example.org'><body>during the change</body></message></body>`)
	if a := attrs(resp); a["type"] == "terminate" {
		t.Fatalf("a request forwarded while the secret changed answered %s", resp)
	}
	c.n2.up.WaitGot(t, "during the change")
	if n := strings.Count(c.n2.logs.String(), "forwarded request refused"); n == 0 {
		t.Errorf("n2 refused no signature: the test did not forward during the change")
	}

	// A secret that stays different.
	c.n2.h.fwd.setSecret(testSecret)
	start := time.Now()
	_, _, resp = c.n1.post(emptyBody(sid, 102))
	if a := attrs(resp); a["type"] != "terminate" || a["condition"] != "item-not-found" {
		t.Fatalf("a request forwarded with the wrong secret answered %s, want item-not-found", resp)
	}
	if took := time.Since(start); took < 1500*time.Millisecond {
		t.Errorf("refused after %v, before the retries were over", took)
	}
}
