package integration

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/boshd/boshd/bosh"
	"github.com/boshd/boshd/config"
	"github.com/boshd/boshd/gateway"
	"github.com/boshd/boshd/internal/wait"
	"github.com/boshd/boshd/wsbind"
)

// The boshd under test, as the tests set it up: in-process (a
// bosh.Handler on an httptest.Server, serveBoshd), in front of a Prosody
// of its own (startStack), or as the boshd binary (startBinary). Each test
// gets its own, on free ports of 127.0.0.1, so that tests can run in
// parallel.

// boshdLogTail is how many lines of boshd's log a failed test prints.
const boshdLogTail = 300

// testConfig returns boshd's default configuration with the given upstreams
// and short timeouts suited to tests.
func testConfig(upstreams map[string]string) config.Config {
	cfg := config.Default()
	cfg.Upstreams = upstreams
	cfg.MaxWait = 10 * time.Second
	cfg.ConnectTimeout = 5 * time.Second
	cfg.LogLevel = "debug"
	// Requests held longer than this park outside net/http (docs/design/
	// 002): short, so that real clients meet both ways of holding.
	cfg.ParkAfter = 50 * time.Millisecond
	return cfg
}

// prosodyConfig is testConfig with p as the upstream for localhost (and
// p's CA trusted in TLS mode).
func prosodyConfig(p *prosody) config.Config {
	cfg := testConfig(map[string]string{p.Domain: p.Addr})
	cfg.UpstreamCAFile = p.CAFile
	return cfg
}

// logBuffer collects a log written by several goroutines, some of which
// may outlive the test.
type logBuffer struct {
	mu    sync.Mutex
	lines []byte
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	b.lines = append(b.lines, p...)
	b.mu.Unlock()
	return len(p), nil
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.lines)
}

// Tail returns the last n lines.
func (b *logBuffer) Tail(n int) string {
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// boshdServer is a bosh.Handler mounted in-process, as cmd/boshd mounts
// it: BOSH at cfg.Path and XEP-0156 host-meta beside it.
type boshdServer struct {
	// URL is the BOSH endpoint, Origin + cfg.Path.
	URL string
	// Origin is http://Addr, Addr the plain listener's 127.0.0.1:PORT.
	Origin, Addr string
	// TLSOrigin is the same server over HTTPS, with httptest's
	// self-signed certificate (serveOptions.TLS only).
	TLSOrigin string
	Handler   *bosh.Handler
	// WS is the XMPP over WebSocket handler, on Handler's gateway, and
	// WSURL its ws:// URL (serveOptions.WebSocket only).
	WS    *wsbind.Handler
	WSURL string
	// Wire records what boshd read and wrote on the plain listener.
	Wire *wireLog
	logs *logBuffer
}

// serveOptions are what some tests add to serveBoshd's server.
type serveOptions struct {
	// TLS also serves everything over HTTPS on a second listener.
	TLS bool
	// Configure adjusts boshd's configuration once the listeners are
	// open: origin is the plain one's (http://127.0.0.1:PORT), tlsAddr the
	// HTTPS one's address, if any.
	Configure func(cfg *config.Config, origin, tlsAddr string)
	// Routes mounts more handlers on the server's mux.
	Routes func(mux *http.ServeMux)
	// WebSocket also serves XMPP over WebSocket at cfg.WebSocketPath, on
	// the BOSH handler's gateway, as cmd/boshd does: one count of
	// sessions, one poller, one set of metrics.
	WebSocket bool
}

// serveBoshd starts a bosh.Handler for cfg. It is shut down and its
// servers closed in t.Cleanup; when t failed, boshd's log is printed.
func serveBoshd(t *testing.T, cfg config.Config, opts serveOptions) *boshdServer {
	t.Helper()
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &boshdServer{Addr: plain.Addr().String(), Wire: &wireLog{}, logs: &logBuffer{}}
	s.Origin = "http://" + s.Addr
	var secure net.Listener
	tlsAddr := ""
	if opts.TLS {
		if secure, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		tlsAddr = secure.Addr().String()
		s.TLSOrigin = "https://" + tlsAddr
	}
	if opts.Configure != nil {
		opts.Configure(&cfg, s.Origin, tlsAddr)
	}
	s.URL = s.Origin + cfg.Path
	publicURL := cfg.PublicURL
	if publicURL == "" {
		publicURL = s.URL
	}
	logger := slog.New(slog.NewTextHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var g *gateway.Gateway // shared with the WebSocket handler, if any
	if opts.WebSocket {
		if g, err = gateway.New(cfg, logger); err != nil {
			t.Fatalf("gateway.New: %v", err)
		}
		s.Handler = bosh.NewHandlerWith(g)
		s.WS = wsbind.NewHandler(g)
		s.WSURL = "ws://" + s.Addr + cfg.WebSocketPath
	} else if s.Handler, err = bosh.NewHandler(cfg, logger); err != nil {
		t.Fatalf("bosh.NewHandler: %v", err)
	}
	mux := http.NewServeMux()
	mux.Handle(cfg.Path, s.Handler)
	if s.WS != nil {
		mux.Handle(cfg.WebSocketPath, s.WS)
	}
	hostMeta := bosh.HostMeta(publicURL)
	mux.Handle(bosh.HostMetaPath, hostMeta)
	mux.Handle(bosh.HostMetaJSONPath, hostMeta)
	if opts.Routes != nil {
		opts.Routes(mux)
	}

	// The plain listener parks held requests (docs/design/002) and
	// records the wire; the HTTPS one is net/http's own.
	servers := []*httptest.Server{httptest.NewUnstartedServer(mux)}
	servers[0].Listener.Close()
	parking := bosh.NewListener(&recordingListener{Listener: plain, log: s.Wire})
	servers[0].Listener = parking
	servers[0].Config.ConnContext = parking.ConnContext
	servers[0].Start()
	if secure != nil {
		srv := httptest.NewUnstartedServer(mux)
		srv.Listener.Close()
		srv.Listener = secure
		srv.StartTLS()
		servers = append(servers, srv)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		wsDone := make(chan error, 1)
		if s.WS != nil {
			go func() { wsDone <- s.WS.Shutdown(ctx) }()
		} else {
			wsDone <- nil
		}
		if err := errors.Join(s.Handler.Shutdown(ctx), <-wsDone); err != nil {
			t.Errorf("boshd Shutdown: %v", err)
		}
		if g != nil {
			g.Close()
		}
		for _, srv := range servers {
			srv.CloseClientConnections()
			srv.Close()
		}
		if t.Failed() {
			t.Logf("boshd log (last %d lines):\n%s", boshdLogTail, s.logs.Tail(boshdLogTail))
		}
	})
	return s
}

// Log returns boshd's log so far.
func (s *boshdServer) Log() string { return s.logs.String() }

// WaitMetric waits up to eventTimeout until cond holds for series, and
// returns its value then.
func (s *boshdServer) WaitMetric(t *testing.T, series, what string, cond func(float64) bool) float64 {
	t.Helper()
	return waitMetric(t, s.Handler.Metrics(), series, eventTimeout, what, cond)
}

// startBoshd serves cfg in-process and returns the BOSH URL.
func startBoshd(t *testing.T, cfg config.Config) string {
	t.Helper()
	return serveBoshd(t, cfg, serveOptions{}).URL
}

// stack is the usual fixture: a Prosody of the test's own and boshd
// in-process in front of it.
type stack struct {
	*boshdServer
	t *testing.T
	P *prosody
}

// startStack starts a Prosody with opts and boshd with prosodyConfig,
// adjusted by configure if it is not nil.
func startStack(t *testing.T, opts prosodyOptions, configure func(*config.Config)) *stack {
	t.Helper()
	p := startProsody(t, opts)
	cfg := prosodyConfig(p)
	if configure != nil {
		configure(&cfg)
	}
	return &stack{boshdServer: serveBoshd(t, cfg, serveOptions{}), t: t, P: p}
}

// Login creates a session and logs user in with mechanism (see login).
func (st *stack) Login(user, mechanism, resource string) (*Client, loginResult) {
	st.t.Helper()
	return login(st.t, st.URL, st.P, user, mechanism, resource)
}

// Pair logs alice in with aliceMechanism and bob with PLAIN, both as
// resource web, and sends their initial presence. It returns each client
// with its bound JID.
func (st *stack) Pair(aliceMechanism string) (alice *Client, aliceJID string, bob *Client, bobJID string) {
	st.t.Helper()
	alice, aliceRes := st.Login("alice", aliceMechanism, "web")
	bob, bobRes := st.Login("bob", "PLAIN", "web")
	goOnline(st.t, bob, alice)
	return alice, aliceRes.JID, bob, bobRes.JID
}

// RawLogin logs user in on a rawSession (see rawLogin) that knows the
// wire of this boshd.
func (st *stack) RawLogin(user, resource string, hold int, createAttrs string) *rawSession {
	st.t.Helper()
	s := rawLogin(st.t, st.URL, st.P, user, resource, hold, createAttrs)
	s.wire = st.Wire
	return s
}

// metricValue returns the value of the sample named series (with its
// labels as exposed, e.g. boshd_requests_total{outcome="gone"}) in the
// Prometheus text served by metrics, or 0 if there is none.
func metricValue(metrics http.Handler, series string) float64 {
	rec := httptest.NewRecorder()
	metrics.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	return parseMetric(rec.Body.String(), series)
}

// parseMetric finds series in Prometheus text.
func parseMetric(text, series string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return 0
}

// waitMetric waits until cond holds for the value of series, failing t
// after timeout.
func waitMetric(t *testing.T, metrics http.Handler, series string, timeout time.Duration, what string, cond func(float64) bool) float64 {
	t.Helper()
	var v float64
	if !wait.For(timeout, func() bool { v = metricValue(metrics, series); return cond(v) }) {
		t.Fatalf("%s: %s = %v after %v", what, series, v, timeout)
	}
	return v
}

// freeAddr returns 127.0.0.1:PORT with a port that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// boshdBinary builds cmd/boshd once per test run and returns its path.
var boshdBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "boshd-bin-")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "boshd")
	if out, err := exec.Command("go", "build", "-o", path, "github.com/boshd/boshd/cmd/boshd").CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return path, nil
})

// mustBinary is boshdBinary failing t if the build failed.
func mustBinary(t testing.TB) string {
	t.Helper()
	path, err := boshdBinary()
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// boshdProcess is the boshd binary running for a test.
type boshdProcess struct {
	*process
	// URL is the BOSH endpoint of Addr, when the process was started by
	// startBinaryFor; AdminAddr its admin listener.
	URL, Addr, AdminAddr string
	logs                 *logBuffer
}

// startBinary runs boshd with args and waits until it logs that it
// listens. It is killed in t.Cleanup; when t failed, its log is printed.
func startBinary(t *testing.T, args ...string) *boshdProcess {
	t.Helper()
	return startBinaryEnv(t, nil, args...)
}

// startBinaryEnv is startBinary with env added to the test's environment.
func startBinaryEnv(t *testing.T, env []string, args ...string) *boshdProcess {
	t.Helper()
	return startBinaryAt(t, mustBinary(t), env, args...)
}

// startBinaryAt is startBinaryEnv running the boshd binary at bin.
func startBinaryAt(t *testing.T, bin string, env []string, args ...string) *boshdProcess {
	t.Helper()
	b := &boshdProcess{logs: &logBuffer{}}
	var err error
	for tries := 1; ; tries++ {
		cmd := exec.Command(bin, args...)
		if env != nil {
			cmd.Env = append(os.Environ(), env...)
		}
		cmd.Stderr = b.logs
		b.process, err = startProcess(cmd)
		// A binary the test has just written (a copy, to be replaced
		// as a package manager would) may still be open for writing
		// in a process another test is forking at that moment, until
		// that process execs: "text file busy". Try again.
		if err == nil || !errors.Is(err, syscall.ETXTBSY) || tries == 20 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b.Kill()
		if t.Failed() {
			t.Logf("boshd log (last %d lines):\n%s", boshdLogTail, b.logs.Tail(boshdLogTail))
		}
	})
	listening := func() bool { return strings.Contains(b.Log(), "boshd listening") }
	if !wait.For(eventTimeout, func() bool { return listening() || !b.Running() }) || !listening() {
		t.Fatalf("boshd did not start within %v (%v):\n%s", eventTimeout, b.Err(), b.Log())
	}
	return b
}

// startBinaryFor runs boshd on free ports with p as its upstream, over
// plaintext, with an admin listener and the extra args.
func startBinaryFor(t *testing.T, p *prosody, args ...string) *boshdProcess {
	t.Helper()
	addr, admin := freeAddr(t), freeAddr(t)
	b := startBinary(t, append([]string{"--listen", addr, "--admin-listen", admin,
		"--upstream", p.Domain + "=" + p.Addr, "--upstream-tls", "plaintext"}, args...)...)
	b.Addr, b.AdminAddr, b.URL = addr, admin, "http://"+addr+"/http-bind"
	return b
}

// Log returns what boshd has logged so far.
func (b *boshdProcess) Log() string { return b.logs.String() }

// WaitLog waits up to eventTimeout until boshd has logged want.
func (b *boshdProcess) WaitLog(t *testing.T, want string) {
	t.Helper()
	eventually(t, eventTimeout, fmt.Sprintf("boshd logging %q", want), func() bool { return strings.Contains(b.Log(), want) })
}

// WaitExit waits up to bound for boshd to exit and returns its exit
// status (nil for 0). If it is still running then, it is killed and t
// fails.
func (b *boshdProcess) WaitExit(t *testing.T, bound time.Duration) error {
	t.Helper()
	if !b.process.WaitExit(bound) {
		b.Kill()
		t.Fatalf("boshd still running %v after it was told to stop", bound)
	}
	return b.Err()
}

// AdminMetric reads series from the admin listener's /metrics; -1 if it
// cannot be read.
func (b *boshdProcess) AdminMetric(series string) float64 {
	c := &http.Client{Timeout: eventTimeout}
	_, data, err := readAll(c.Get("http://" + b.AdminAddr + "/metrics"))
	if err != nil {
		return -1
	}
	return parseMetric(string(data), series)
}
