package bosh

import (
	"bytes"
	"context"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boshd/boshd/config"
	"github.com/boshd/boshd/internal/wait"
	"github.com/boshd/boshd/internal/xmpptest"
)

// This file is the harness of the package's tests: a Handler in front of
// a fake upstream (internal/xmpptest), served over HTTP as boshd serves
// it, and a client that posts bodies to it.

func TestMain(m *testing.M) {
	// The default transport asks for gzip by itself and then decodes it
	// out of sight, dropping Content-Encoding and Content-Length. The
	// tests look at responses as sent, so it must not; the tests of
	// XEP-0124 §5 ask for gzip explicitly.
	http.DefaultTransport.(*http.Transport).DisableCompression = true
	os.Exit(m.Run())
}

// parkAfter is park_after in the tests: they run with every held request
// parked at once (0, the default here), and again with -park-after=-1s,
// which turns parking off, so both ways of holding a request pass the
// same tests (scripts/test runs both).
var parkAfter = flag.Duration("park-after", 0, "park_after for the tests; negative turns parking off")

// setParking sets the parking keys of cfg from -park-after.
func setParking(cfg *config.Config) {
	cfg.ParkHeld = *parkAfter >= 0
	cfg.ParkAfter = max(*parkAfter, 0)
}

// testFeatures are the features the fake upstream offers: the filter
// removes the -PLUS mechanism and stream management.
const testFeatures = `<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1-PLUS</mechanism><mechanism>PLAIN</mechanism></mechanisms><sm xmlns='urn:xmpp:sm:3'/></stream:features>`

// newHandler returns a Handler in front of up, or of a new fake upstream
// offering testFeatures if up is nil, configured for the tests (the
// upstream in plaintext, max_wait 5 s, parking from -park-after) and then
// by mutate if not nil, logging with logger (nowhere if nil). The Handler
// is shut down when the test ends; the caller serves it as it likes.
func newHandler(t testing.TB, up *xmpptest.Server, mutate func(*config.Config), logger *slog.Logger) (*xmpptest.Server, *Handler) {
	t.Helper()
	if up == nil {
		up = xmpptest.NewRelay(t, testFeatures)
	}
	cfg := config.Default()
	cfg.Upstreams = map[string]string{"example.org": up.Addr()}
	cfg.UpstreamTLS = "plaintext"
	cfg.MaxWait = 5 * time.Second
	setParking(&cfg)
	if mutate != nil {
		mutate(&cfg)
	}
	h, err := NewHandler(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Shutdown(context.Background()) })
	return up, h
}

// startHandler is newHandler with a new upstream, logging at debug level
// into logs if not nil.
func startHandler(t testing.TB, mutate func(*config.Config), logs io.Writer) (*xmpptest.Server, *Handler) {
	t.Helper()
	var logger *slog.Logger
	if logs != nil {
		logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return newHandler(t, nil, mutate, logger)
}

// newParkingServer starts h as boshd serves it: through a Listener, so
// held requests may be parked.
func newParkingServer(h http.Handler) *httptest.Server {
	hs := httptest.NewUnstartedServer(h)
	ln := NewListener(hs.Listener)
	hs.Listener = ln
	hs.Config.ConnContext = ln.ConnContext
	hs.Start()
	return hs
}

// serve serves h as boshd does until the test ends.
func serve(t testing.TB, h http.Handler) *httptest.Server {
	hs := newParkingServer(h)
	t.Cleanup(hs.Close)
	return hs
}

// testEnv is a Handler under test: its fake upstream, the Handler served
// as boshd serves it, its logs, and a client of it.
type testEnv struct {
	*client
	up   *xmpptest.Server
	h    *Handler
	hs   *httptest.Server
	logs *syncBuffer // at the level newLoggedEnv was given; empty for newEnv
}

// newEnv returns a testEnv whose Handler is configured as newHandler
// does, then by mutate if not nil.
func newEnv(t *testing.T, mutate func(*config.Config)) *testEnv {
	t.Helper()
	return newEnvLogging(t, nil, nil, mutate)
}

// newLoggedEnv is newEnv with the Handler logging into the env's logs at
// level.
func newLoggedEnv(t *testing.T, level slog.Level, mutate func(*config.Config)) *testEnv {
	t.Helper()
	logs := &syncBuffer{}
	return newEnvLogging(t, logs, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: level})), mutate)
}

func newEnvLogging(t *testing.T, logs *syncBuffer, logger *slog.Logger, mutate func(*config.Config)) *testEnv {
	t.Helper()
	if logs == nil {
		logs = &syncBuffer{}
	}
	up, h := newHandler(t, nil, mutate, logger)
	hs := serve(t, h)
	return &testEnv{client: newClient(t, hs.URL), up: up, h: h, hs: hs, logs: logs}
}

// waitHeld waits until the handler's sessions hold n requests in all.
func waitHeld(t *testing.T, h *Handler, n int64) {
	t.Helper()
	wait.Until(t, func() bool { return h.sessions.Stats().Held == n }, "%d requests held", n)
}

// waitParked waits until n requests are parked.
func waitParked(t *testing.T, h *Handler, n int64) {
	t.Helper()
	wait.Until(t, func() bool { return h.parkedNow.Load() == n }, "%d requests parked", n)
}

// client posts BOSH bodies to a URL with the default http.Client.
type client struct {
	t   *testing.T
	url string
}

func newClient(t *testing.T, url string) *client { return &client{t: t, url: url} }

// post sends one body and returns the status, headers and body.
func (c *client) post(body string) (int, http.Header, string) {
	c.t.Helper()
	resp, data := do(c.t, nil, http.MethodPost, c.url, nil, []byte(body))
	return resp.StatusCode, resp.Header, string(data)
}

// postAsync sends one body in the background; the channel gets the
// response body, or the error.
func (c *client) postAsync(body string) <-chan string {
	ch := make(chan string, 1)
	go func() {
		_, data, err := send(nil, http.MethodPost, c.url, nil, strings.NewReader(body))
		if err != nil {
			ch <- "error: " + err.Error()
			return
		}
		ch <- string(data)
	}()
	return ch
}

// create creates a session with the first rid rid and wait, and returns
// its sid.
func (c *client) create(rid, wait int) string {
	c.t.Helper()
	_, _, resp := c.post(sprintf(creationBody, rid, wait))
	sid := attrs(resp)["sid"]
	if sid == "" {
		c.t.Fatalf("no sid in %s", resp)
	}
	return sid
}

// holdOne creates a session whose first rid is rid, and sends rid+1 as an
// empty request, which the session holds; it returns the sid and the
// channel of that request's response.
func (c *client) holdOne(rid int) (sid string, held <-chan string) {
	c.t.Helper()
	sid = c.create(rid, 5)
	return sid, c.postAsync(emptyBody(sid, rid+1))
}

// testClient is send's client when given none. Not http.DefaultClient:
// httptest.Server.Close closes the idle connections of
// http.DefaultTransport, which fails a request of a parallel test that
// is about to use one of them ("CloseIdleConnections called").
// Like the default transport in TestMain, it leaves gzip to the tests.
var testClient = &http.Client{Transport: func() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DisableCompression = true
	return t
}()}

// send sends one request with the given headers ("Host" sets the
// request's host) through hc, testClient if nil, and returns the
// response and its body as sent.
func send(hc *http.Client, method, url string, header map[string]string, body io.Reader) (*http.Response, []byte, error) {
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	if hc == nil {
		hc = testClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp, data, err
}

// do is send, failing t on error.
func do(t *testing.T, hc *http.Client, method, url string, header map[string]string, body []byte) (*http.Response, []byte) {
	t.Helper()
	resp, data, err := send(hc, method, url, header, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return resp, data
}

// receive waits for a response from postAsync.
func receive(t *testing.T, ch <-chan string) string {
	t.Helper()
	return wait.Receive(t, ch, "a response")
}

var attrPattern = regexp.MustCompile(`(\w+(?::\w+)?)='([^']*)'`)

// attrs returns the attributes of the <body> start tag in resp.
func attrs(resp string) map[string]string {
	end := strings.Index(resp, ">")
	m := make(map[string]string)
	for _, a := range attrPattern.FindAllStringSubmatch(resp[:end], -1) {
		m[a[1]] = a[2]
	}
	return m
}

const creationBody = `<body xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' content='text/xml; charset=utf-8' hold='1' rid='%d' to='example.org' ver='1.6' wait='%d' xml:lang='en' xmpp:version='1.0'/>`

// sprintf formats the %d verbs of format with args, which are ints.
func sprintf(format string, args ...any) string {
	r := strings.NewReplacer("%d", "\x00")
	parts := strings.Split(r.Replace(format), "\x00")
	var b strings.Builder
	for i, p := range parts {
		b.WriteString(p)
		if i < len(args) {
			b.WriteString(strconv.Itoa(args[i].(int)))
		}
	}
	return b.String()
}

// emptyBody is an empty request of session sid.
func emptyBody(sid string, rid int) string {
	return "<body xmlns='http://jabber.org/protocol/httpbind' sid='" + sid + "' rid='" + strconv.Itoa(rid) + "'/>"
}

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (n int, err error) {
	s.locked(func() { n, err = s.b.Write(p) })
	return n, err
}

func (s *syncBuffer) String() (out string) {
	s.locked(func() { out = s.b.String() })
	return out
}

// locked calls f with s locked.
func (s *syncBuffer) locked(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
}
