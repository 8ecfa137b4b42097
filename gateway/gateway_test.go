package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/boshd/boshd/config"
	"github.com/boshd/boshd/metrics"
)

// newGateway returns a Gateway serving example.org at an address nothing
// listens on, configured further by mutate.
func newGateway(t *testing.T, mutate func(*config.Config)) *Gateway {
	t.Helper()
	cfg := config.Default()
	cfg.Upstreams = map[string]string{"example.org": "127.0.0.1:1", "srv.example": ""}
	if mutate != nil {
		mutate(&cfg)
	}
	g, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// silentListener returns a listener on a loopback port that accepts
// nothing, closed when the test ends: an upstream that never answers.
func silentListener(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// scrape returns what g's metrics handler serves.
func scrape(g *Gateway) string {
	w := httptest.NewRecorder()
	g.Metrics().Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	return w.Body.String()
}

func TestNewInvalid(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		mutate func(*config.Config)
		want   string
	}{
		{"invalid", func(c *config.Config) { c.MaxWait = 0 }, "max_wait"},
		{"CA file missing", func(c *config.Config) { c.UpstreamCAFile = "/nonexistent/ca.pem" }, "upstream_ca_file"},
		{"bad trusted proxy", func(c *config.Config) { c.TrustedProxies = []string{"10.0.0.0/33"} }, "trusted_proxies"},
	} {
		cfg := config.Default()
		cfg.Upstreams = map[string]string{"example.org": "127.0.0.1:1"}
		tc.mutate(&cfg)
		if _, err := New(cfg, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New = %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

func TestTarget(t *testing.T) {
	t.Parallel()
	g := newGateway(t, func(c *config.Config) { c.RouteAllow = []string{"xmpp:relay.example:5223", "xmpp:[2001:db8::1]:5222"} })
	for _, tc := range []struct {
		to, route  string
		domain     string // want, if no error
		addr       string
		condition  string // of the *TargetError, if any
		msgContain string
	}{
		{"example.org", "", "example.org", "127.0.0.1:1", "", ""},
		{"srv.example", "", "srv.example", "", "", ""},
		{"example.org", "xmpp:relay.example:5223", "example.org", "relay.example:5223", "", ""},
		{"example.org", "xmpp:[2001:db8::1]:5222", "example.org", "[2001:db8::1]:5222", "", ""},
		{"", "", "", "", ImproperAddressing, "missing to"},
		{"  ", "", "", "", ImproperAddressing, "missing to"},
		{"user@example.org", "", "", "", HostUnknown, "is not a domain"},
		{"example.org/res", "", "", "", HostUnknown, "is not a domain"},
		{"other.example", "", "", "", HostUnknown, `domain "other.example" is not served`},
		{"example.org", "xmpp:169.254.169.254:80", "", "", HostUnknown, "is not allowed"},
		{"example.org", "relay.example:5223", "", "", HostUnknown, "is not allowed"},
		{strings.Repeat("a", 300) + ".example", "", "", "", HostUnknown, "…"},
	} {
		target, err := g.Target(tc.to, tc.route)
		if tc.condition == "" {
			if err != nil || target.Domain != tc.domain || target.Addr != tc.addr {
				t.Errorf("Target(%q, %q) = %+v, %v; want %s at %q", tc.to, tc.route, target, err, tc.domain, tc.addr)
			}
			continue
		}
		var te *TargetError
		if !errors.As(err, &te) || te.Condition != tc.condition || !strings.Contains(te.Msg, tc.msgContain) {
			t.Errorf("Target(%q, %q) = %v, want a %s error saying %q", tc.to, tc.route, err, tc.condition, tc.msgContain)
			continue
		}
		if len(te.Msg) > maxErrorLen+len("…") {
			t.Errorf("Target(%q…): message of %d bytes", tc.to[:10], len(te.Msg))
		}
	}
}

func TestRouteAddr(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ route, want string }{
		{"xmpp:example.org:5222", "example.org:5222"},
		{"xmpp:[::1]:5222", "[::1]:5222"},
		{"xmpp:example.org", ""},
		{"example.org:5222", ""},
	} {
		got, err := routeAddr(tc.route)
		if (err == nil) != (tc.want != "") || got != tc.want {
			t.Errorf("routeAddr(%q) = %q, %v; want %q", tc.route, got, err, tc.want)
		}
	}
}

// TestReload checks what Reload changes at once (domains, routes, limits,
// trusted proxies, CORS origins), the keys it reports as needing a
// restart, and that an invalid configuration changes nothing.
func TestReload(t *testing.T) {
	t.Parallel()
	g := newGateway(t, func(c *config.Config) { c.MaxSessionsPerIP = 1 })
	release, err := g.Acquire("192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	defer release()

	cfg := g.Config()
	cfg.Upstreams = map[string]string{"other.org": "127.0.0.1:2"}
	cfg.RouteAllow = []string{"xmpp:relay.example:5222"}
	cfg.MaxSessionsPerIP = 2
	cfg.TrustedProxies = []string{"10.0.0.0/8"}
	cfg.CORSOrigins = []string{"https://app.example"}
	cfg.MaxWait *= 2 // needs a restart
	ignored, err := g.Reload(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ignored, []string{"max_wait"}) {
		t.Errorf("ignored keys %q, want max_wait only", ignored)
	}
	if got := g.Domains(); !slices.Equal(got, []string{"other.org"}) || g.Serves("example.org") || !g.Serves("other.org") {
		t.Errorf("domains after reload: %q", got)
	}
	if _, err := g.Target("example.org", ""); err == nil {
		t.Error("a domain no longer served is still a target")
	}
	if target, err := g.Target("other.org", "xmpp:relay.example:5222"); err != nil || target.Addr != "relay.example:5222" {
		t.Errorf("route after reload: %+v, %v", target, err)
	}
	if _, err := g.Acquire("192.0.2.1"); err != nil {
		t.Errorf("max_sessions_per_ip raised to 2, second session refused: %v", err)
	}
	if !g.Trusts(netip.MustParseAddr("10.1.2.3")) || g.Trusts(netip.MustParseAddr("127.0.0.1")) {
		t.Error("trusted_proxies not reloaded")
	}
	if !g.CORS().Lists("https://APP.example") || g.CORS().Any() {
		t.Error("cors_origins not reloaded")
	}
	if g.Config().MaxWait == cfg.MaxWait {
		t.Error("Config changed by Reload")
	}

	bad := cfg
	bad.TrustedProxies = []string{"not an address"}
	if _, err := g.Reload(bad); err == nil || !strings.Contains(err.Error(), "trusted_proxies") {
		t.Fatalf("invalid trusted_proxies: %v", err)
	}
	bad = cfg
	bad.MaxWait = 0
	if _, err := g.Reload(bad); err == nil {
		t.Fatal("an invalid configuration was applied")
	}
	if !g.Serves("other.org") {
		t.Error("a refused reload changed the domains")
	}
}

func TestAcquireLimitError(t *testing.T) {
	t.Parallel()
	g := newGateway(t, func(c *config.Config) { c.MaxSessions, c.MaxSessionsPerIP = 2, 1 })
	r1, err := g.Acquire("a")
	if err != nil {
		t.Fatal(err)
	}
	var le *LimitError
	if _, err := g.Acquire("a"); !errors.As(err, &le) || le.Key != "max_sessions_per_ip" || le.Limit != 1 {
		t.Errorf("second session of a: %v", err)
	}
	r2, _ := g.Acquire("b")
	if _, err := g.Acquire("c"); !errors.As(err, &le) || le.Key != "max_sessions" || le.Limit != 2 ||
		err.Error() != "max_sessions (2) reached" {
		t.Errorf("third session: %v", err)
	}
	if total, forA := g.Sessions("a"); total != 2 || forA != 1 {
		t.Errorf("Sessions(a) = %d, %d; want 2, 1", total, forA)
	}
	r1()
	r1()
	r2()
	if total, _ := g.Sessions(""); total != 0 {
		t.Errorf("%d sessions counted after releasing all", total)
	}
}

func TestAllowOrigin(t *testing.T) {
	t.Parallel()
	listed := newGateway(t, func(c *config.Config) {
		c.CORSOrigins = []string{"https://app.example"}
		c.PublicURL = "https://chat.example.org/http-bind"
	})
	anyOrigin := newGateway(t, func(c *config.Config) { c.CORSOrigins = []string{"*"} })
	wss := newGateway(t, func(c *config.Config) {
		c.PublicURL = "https://chat.example.org/http-bind"
		c.PublicWebSocketURL = "wss://ws.example.org/xmpp-websocket"
	})
	wsPort := newGateway(t, func(c *config.Config) { c.PublicWebSocketURL = "ws://ws.example.org:8080/xmpp-websocket" })
	wssPort := newGateway(t, func(c *config.Config) { c.PublicWebSocketURL = "wss://ws.example.org:443/xmpp-websocket" })
	plain := newGateway(t, nil)
	for _, tc := range []struct {
		name    string
		g       *Gateway
		host    string
		origins []string
		want    bool
	}{
		{"no Origin: not a browser", plain, "boshd.example:5280", nil, true},
		{"listed", listed, "boshd.example:5280", []string{"https://app.example"}, true},
		{"listed, other case", listed, "boshd.example:5280", []string{"HTTPS://APP.EXAMPLE"}, true},
		{"listed, other scheme", listed, "boshd.example:5280", []string{"http://app.example"}, false},
		{"public_url's origin", listed, "127.0.0.1:5280", []string{"https://chat.example.org"}, true},
		{"public_url's host, other scheme", listed, "127.0.0.1:5280", []string{"http://chat.example.org"}, false},
		{"public_url's host, explicit default port", listed, "127.0.0.1:5280", []string{"https://chat.example.org:443"}, true},
		{"public_url's host, other port", listed, "127.0.0.1:5280", []string{"https://chat.example.org:8443"}, false},
		{"public_websocket_url's origin, wss as https", wss, "127.0.0.1:5280", []string{"https://ws.example.org"}, true},
		{"public_url's origin beside public_websocket_url", wss, "127.0.0.1:5280", []string{"https://chat.example.org"}, true},
		{"public_websocket_url's host, http", wss, "127.0.0.1:5280", []string{"http://ws.example.org"}, false},
		{"public_websocket_url's scheme itself", wss, "127.0.0.1:5280", []string{"wss://ws.example.org"}, false},
		{"public_websocket_url's host, other port", wss, "127.0.0.1:5280", []string{"https://ws.example.org:8443"}, false},
		{"public_websocket_url's host, explicit default port", wss, "127.0.0.1:5280", []string{"https://ws.example.org:443"}, true},
		{"public_websocket_url's host, other case", wss, "127.0.0.1:5280", []string{"HTTPS://WS.Example.ORG"}, true},
		{"ws as http, with its port", wsPort, "127.0.0.1:5280", []string{"http://ws.example.org:8080"}, true},
		{"ws as http, without its port", wsPort, "127.0.0.1:5280", []string{"http://ws.example.org"}, false},
		{"ws, not https", wsPort, "127.0.0.1:5280", []string{"https://ws.example.org:8080"}, false},
		{"wss's explicit default port", wssPort, "127.0.0.1:5280", []string{"https://ws.example.org"}, true},
		{"public_websocket_url of another gateway", plain, "127.0.0.1:5280", []string{"https://ws.example.org"}, false},
		{"any", anyOrigin, "boshd.example:5280", []string{"https://evil.example"}, true},
		{"any, null", anyOrigin, "boshd.example:5280", []string{"null"}, true},
		{"same host and port", plain, "chat.example.org:5280", []string{"http://chat.example.org:5280"}, true},
		{"same host and port, scheme ignored", plain, "chat.example.org:5280", []string{"https://chat.example.org:5280"}, true},
		{"same host, default port", plain, "chat.example.org", []string{"https://chat.example.org"}, true},
		{"same host, default port in Host", plain, "chat.example.org:443", []string{"https://chat.example.org"}, true},
		{"same host, case", plain, "Chat.Example.org", []string{"https://chat.example.ORG"}, true},
		{"same IPv6 host", plain, "[::1]:5280", []string{"http://[::1]:5280"}, true},
		{"same host, other port", plain, "chat.example.org:5280", []string{"http://chat.example.org:5281"}, false},
		{"other host", plain, "chat.example.org:5280", []string{"http://evil.example:5280"}, false},
		{"suffix of the host", plain, "chat.example.org", []string{"https://evilchat.example.org"}, false},
		{"null", plain, "chat.example.org", []string{"null"}, false},
		{"with a path", plain, "chat.example.org", []string{"https://chat.example.org/x"}, false},
		{"with user info", plain, "chat.example.org", []string{"https://u@chat.example.org"}, false},
		{"two Origin headers", plain, "chat.example.org", []string{"https://chat.example.org", "https://chat.example.org"}, false},
		{"empty Host", plain, "", []string{"https://chat.example.org"}, false},
		{"unlisted", listed, "boshd.example:5280", []string{"https://evil.example"}, false},
	} {
		r := httptest.NewRequest("GET", "/xmpp-websocket", nil)
		r.Host = tc.host
		for _, o := range tc.origins {
			r.Header.Add("Origin", o)
		}
		if got := tc.g.AllowOrigin(r); got != tc.want {
			t.Errorf("%s: AllowOrigin(Host %q, Origin %q) = %v, want %v", tc.name, tc.host, tc.origins, got, tc.want)
		}
	}
}

// TestGauges checks that the gauges are the sums of the bindings'.
func TestGauges(t *testing.T) {
	t.Parallel()
	g := newGateway(t, nil)
	g.AddGauges(func() metrics.Gauges { return metrics.Gauges{Live: 2, Held: 1, Parked: 1} })
	g.AddGauges(func() metrics.Gauges { return metrics.Gauges{Live: 3, Queued: 4, QueuedBytes: 40} })
	g.upstreamsParked.Add(5)
	want := metrics.Gauges{Live: 5, Held: 1, Queued: 4, QueuedBytes: 40, Parked: 1, UpstreamsParked: 5}
	if got := g.readGauges(); got != want {
		t.Errorf("gauges %+v, want %+v", got, want)
	}
	if body := scrape(g); !strings.Contains(body, "boshd_sessions_active 5") {
		t.Errorf("metrics lack boshd_sessions_active 5:\n%s", body)
	}
}

// TestDial checks that a failed dial is counted in
// boshd_upstream_connect_seconds and bounded by connect_timeout.
func TestDial(t *testing.T) {
	t.Parallel()
	ln := silentListener(t) // accepts nothing: the dial waits for features
	g := newGateway(t, func(c *config.Config) {
		c.Upstreams = map[string]string{"example.org": ln.Addr().String()}
		c.ConnectTimeout = 50 * time.Millisecond
	})
	target, err := g.Target("example.org", "")
	if err != nil {
		t.Fatal(err)
	}
	if conn, err := g.Dial(context.Background(), target); err == nil {
		conn.Close()
		t.Fatal("Dial to a server that never answers succeeded")
	}
	if body := scrape(g); !strings.Contains(body, `boshd_upstream_connect_seconds_count{result="error"} 1`) {
		t.Errorf("failed dial not counted:\n%s", body)
	}
}

func TestStopReady(t *testing.T) {
	t.Parallel()
	ln := silentListener(t)
	g := newGateway(t, func(c *config.Config) {
		c.Upstreams = map[string]string{"example.org": ln.Addr().String(), "srv.example": ""}
	})
	if err := g.Ready(context.Background()); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	if g.Stopping() {
		t.Fatal("stopping before Stop")
	}
	g.Stop()
	if !g.Stopping() || g.Ready(context.Background()) == nil {
		t.Fatal("Stop: not stopping, or still ready")
	}
	ln.Close()
	down := newGateway(t, func(c *config.Config) { c.Upstreams = map[string]string{"example.org": ln.Addr().String()} })
	if err := down.Ready(context.Background()); err == nil || !strings.Contains(err.Error(), "upstream example.org at ") {
		t.Fatalf("Ready with the upstream down: %v", err)
	}
}

// TestForwardedForWarnedOnce checks that ClientIP warns of an ignored
// X-Forwarded-For once per Gateway.
func TestForwardedForWarnedOnce(t *testing.T) {
	t.Parallel()
	var warnings atomic.Int32
	cfg := config.Default()
	cfg.Upstreams = map[string]string{"example.org": "127.0.0.1:1"}
	g, err := New(cfg, slog.New(countHandler{&warnings}))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		r := httptest.NewRequest("POST", "/", nil)
		r.RemoteAddr = "192.0.2.1:4000"
		r.Header.Set("X-Forwarded-For", "203.0.113.1")
		if ip, ignored := g.ClientIP(r); ip != "192.0.2.1" || !ignored {
			t.Fatalf("ClientIP = %s, %v", ip, ignored)
		}
	}
	if n := warnings.Load(); n != 1 {
		t.Errorf("%d warnings, want 1", n)
	}
}

// countHandler is a slog.Handler counting the records at warn and above.
type countHandler struct{ n *atomic.Int32 }

func (h countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		h.n.Add(1)
	}
	return nil
}
func (h countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countHandler) WithGroup(string) slog.Handler      { return h }

// fakeWatcher is an xmpp.Watcher whose watches fire when the test says.
type fakeWatcher struct {
	fns []func()
	err error
}

func (f *fakeWatcher) WatchReadable(_ syscall.RawConn, fn func()) (func() bool, error) {
	if f.err != nil {
		return nil, f.err
	}
	fired := false
	i := len(f.fns)
	f.fns = append(f.fns, func() {
		if !fired {
			fired = true
			fn()
		}
	})
	return func() bool {
		if fired {
			return false
		}
		fired = true
		f.fns[i] = func() {}
		return true
	}, nil
}

// TestCountingWatcher checks the count behind boshd_upstreams_parked: a
// watch counts until it fires or is stopped, whichever comes first, and
// a watch that could not be set does not count.
func TestCountingWatcher(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	fake := &fakeWatcher{}
	w := countingWatcher{fake, &n}
	called := 0
	fn := func() { called++ }
	check := func(step string, want int64) {
		t.Helper()
		if got := n.Load(); got != want {
			t.Errorf("%s: count %d, want %d", step, got, want)
		}
	}
	stop1, err := w.WatchReadable(nil, fn)
	if err != nil {
		t.Fatal(err)
	}
	stop2, _ := w.WatchReadable(nil, fn)
	check("two watches", 2)
	fake.fns[0]()
	check("first fired", 1)
	if stop1() {
		t.Error("stop after the watch fired = true")
	}
	check("first stopped after firing", 1)
	if !stop2() {
		t.Error("stop before the watch fired = false")
	}
	check("second stopped", 0)
	fake.fns[1]()
	check("second fires after its stop", 0)
	if called != 1 {
		t.Errorf("fn called %d times, want 1", called)
	}
	fake.err = errors.New("no more")
	if _, err := w.WatchReadable(nil, fn); err == nil {
		t.Error("WatchReadable passed no error on")
	}
	check("failed watch", 0)
}

// TestAdopt: a session handed over by the old process of an upgrade takes
// a slot over the limits, and counts against them until released.
func TestAdopt(t *testing.T) {
	t.Parallel()
	g := newGateway(t, func(c *config.Config) { c.MaxSessions, c.MaxSessionsPerIP = 1, 1 })
	r1, err := g.Acquire("a")
	if err != nil {
		t.Fatal(err)
	}
	r2 := g.Adopt("a")
	if total, forA := g.Sessions("a"); total != 2 || forA != 2 {
		t.Errorf("Sessions(a) = %d, %d; want 2, 2", total, forA)
	}
	r1()
	if _, err := g.Acquire("b"); err == nil {
		t.Error("a new session taken while an adopted one fills max_sessions")
	}
	r2()
	r2()
	if total, _ := g.Sessions("a"); total != 0 {
		t.Errorf("%d sessions counted after releasing all", total)
	}
}
