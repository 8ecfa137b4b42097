package bosh

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/boshd/boshd/config"
)

// fakeServer is an in-process XMPP server for unit tests: it answers a
// stream header with features, records what clients send, and sends what
// the test pushes.
type fakeServer struct {
	ln       net.Listener
	features string
	accepts  atomic.Int32

	mu    sync.Mutex
	conns []net.Conn
	got   bytes.Buffer
	cond  *sync.Cond
}

func newFakeServer(t *testing.T, features string) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{ln: ln, features: features}
	s.cond = sync.NewCond(&s.mu)
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
	})
	go s.serve()
	return s
}

func (s *fakeServer) addr() string { return s.ln.Addr().String() }

func (s *fakeServer) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.accepts.Add(1)
		s.mu.Lock()
		s.conns = append(s.conns, c)
		s.mu.Unlock()
		go s.handle(c)
	}
}

func (s *fakeServer) handle(c net.Conn) {
	br := bufio.NewReader(c)
	// The client's header ends at the first '>' after "<stream:stream".
	var head []byte
	for !bytes.Contains(head, []byte("<stream:stream")) || !bytes.HasSuffix(head, []byte(">")) {
		b, err := br.ReadByte()
		if err != nil {
			return
		}
		head = append(head, b)
	}
	io.WriteString(c, "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='example.org' version='1.0'>"+s.features)
	buf := make([]byte, 4096)
	for {
		n, err := br.Read(buf)
		s.mu.Lock()
		s.got.Write(buf[:n])
		s.cond.Broadcast()
		s.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// push sends data to the latest client.
func (s *fakeServer) push(t *testing.T, data string) {
	t.Helper()
	s.mu.Lock()
	c := s.conns[len(s.conns)-1]
	s.mu.Unlock()
	if _, err := io.WriteString(c, data); err != nil {
		t.Fatal(err)
	}
}

// waitGot waits until the server has received want.
func (s *fakeServer) waitGot(t *testing.T, want string) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		s.mu.Lock()
		for !strings.Contains(s.got.String(), want) {
			s.cond.Wait()
		}
		s.mu.Unlock()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		s.mu.Lock()
		defer s.mu.Unlock()
		t.Fatalf("server got %q, want %q in it", s.got.String(), want)
	}
}

const testFeatures = `<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1-PLUS</mechanism><mechanism>PLAIN</mechanism></mechanisms><sm xmlns='urn:xmpp:sm:3'/></stream:features>`

type client struct {
	t   *testing.T
	url string
}

func newTestHandler(t *testing.T, mutate func(*config.Config)) (*fakeServer, *client) {
	t.Helper()
	srv := newFakeServer(t, testFeatures)
	cfg := config.Default()
	cfg.Upstreams = map[string]string{"example.org": srv.addr()}
	cfg.UpstreamTLS = "plaintext"
	cfg.MaxWait = 5 * time.Second
	setParking(&cfg)
	if mutate != nil {
		mutate(&cfg)
	}
	h, err := NewHandler(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	hs := newParkingServer(h)
	t.Cleanup(func() {
		h.Shutdown(context.Background())
		hs.Close()
	})
	return srv, &client{t: t, url: hs.URL}
}

// post sends one body and returns the status, headers and body.
func (c *client) post(body string) (int, http.Header, string) {
	c.t.Helper()
	resp, err := http.Post(c.url, "text/plain", strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(data)
}

// postAsync sends one body in the background.
func (c *client) postAsync(body string) <-chan string {
	ch := make(chan string, 1)
	go func() {
		resp, err := http.Post(c.url, "text/xml", strings.NewReader(body))
		if err != nil {
			ch <- "error: " + err.Error()
			return
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		ch <- string(data)
	}()
	return ch
}

func receive(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no response")
	}
	return ""
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

func create(t *testing.T, c *client, rid, wait int) string {
	t.Helper()
	_, _, resp := c.post(sprintf(creationBody, rid, wait))
	sid := attrs(resp)["sid"]
	if sid == "" {
		t.Fatalf("no sid in %s", resp)
	}
	return sid
}

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

func TestCreate(t *testing.T) {
	_, c := newTestHandler(t, nil)
	status, header, resp := c.post(sprintf(creationBody, 100, 60))
	if status != 200 {
		t.Fatalf("status %d", status)
	}
	// R-HTTP-3, R-HTTP-7
	if header.Get("Content-Type") != "text/xml; charset=utf-8" || header.Get("Content-Length") != strconv.Itoa(len(resp)) {
		t.Errorf("headers %v", header)
	}
	a := attrs(resp)
	for name, want := range map[string]string{
		"wait": "5", // R-CREATE-5: capped by max_wait
		"hold": "1", "requests": "2", "ver": "1.6", "polling": "5", "inactivity": "60", "maxpause": "120",
		"from": "example.org", "xmpp:version": "1.0", "xmpp:restartlogic": "true", "xmlns:xmpp": "urn:xmpp:xbosh",
		"xmlns:stream": NSStream, "authid": "s1",
	} {
		if a[name] != want {
			t.Errorf("%s = %q, want %q", name, a[name], want)
		}
	}
	if len(a["sid"]) < 22 {
		t.Errorf("sid %q too short", a["sid"])
	}
	// R-RESP-7, R-XMPP-9: features in the first response, filtered.
	if !strings.Contains(resp, "<mechanism>PLAIN</mechanism>") || strings.Contains(resp, "-PLUS") || strings.Contains(resp, "urn:xmpp:sm:3") {
		t.Errorf("features not relayed or not filtered: %s", resp)
	}
}

func TestCreateRefused(t *testing.T) {
	for _, tc := range []struct {
		name, body, cond string
	}{
		{"R-CREATE-2 no to", `<body xmlns='http://jabber.org/protocol/httpbind' rid='1' wait='60' hold='1' ver='1.6'/>`, "improper-addressing"},
		{"R-CREATE-2 empty to", `<body xmlns='http://jabber.org/protocol/httpbind' rid='1' to='' wait='60' hold='1' ver='1.6'/>`, "improper-addressing"},
		{"R-CREATE-3 unserved to", `<body xmlns='http://jabber.org/protocol/httpbind' rid='1' to='other.org' wait='60' hold='1' ver='1.6'/>`, "host-unknown"},
		{"R-CREATE-4 route not allowed", `<body xmlns='http://jabber.org/protocol/httpbind' rid='1' to='example.org' route='xmpp:169.254.169.254:80' wait='60' hold='1' ver='1.6'/>`, "host-unknown"},
		{"R-CREATE-5 no wait", `<body xmlns='http://jabber.org/protocol/httpbind' rid='1' to='example.org' hold='1' ver='1.6'/>`, "bad-request"},
		{"R-CREATE-5 negative wait", `<body xmlns='http://jabber.org/protocol/httpbind' rid='1' to='example.org' wait='-1' hold='1' ver='1.6'/>`, "bad-request"},
		{"R-CREATE-5 fractional wait", `<body xmlns='http://jabber.org/protocol/httpbind' rid='1' to='example.org' wait='1.5' hold='1' ver='1.6'/>`, "bad-request"},
		{"bad hold", `<body xmlns='http://jabber.org/protocol/httpbind' rid='1' to='example.org' wait='60' hold='x' ver='1.6'/>`, "bad-request"},
		{"R-CREATE-7 bad ver", `<body xmlns='http://jabber.org/protocol/httpbind' rid='1' to='example.org' wait='60' hold='1' ver='one'/>`, "bad-request"},
		{"bad content", `<body xmlns='http://jabber.org/protocol/httpbind' rid='1' to='example.org' wait='60' hold='1' ver='1.6' content='%%%'/>`, "bad-request"},
		{"bad xml:lang", `<body xmlns='http://jabber.org/protocol/httpbind' rid='1' to='example.org' wait='60' hold='1' ver='1.6' xml:lang='e n'/>`, "bad-request"},
		{"bad xmpp:version", `<body xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' rid='1' to='example.org' wait='60' hold='1' ver='1.6' xmpp:version='2.0'/>`, "bad-request"},
		{"R-WRAP-5 no rid", `<body xmlns='http://jabber.org/protocol/httpbind' to='example.org' wait='60' hold='1' ver='1.6'/>`, "bad-request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, c := newTestHandler(t, nil)
			status, _, resp := c.post(tc.body)
			if status != 200 || attrs(resp)["type"] != "terminate" || attrs(resp)["condition"] != tc.cond {
				t.Fatalf("got %d %s, want condition %s", status, resp, tc.cond)
			}
			if n := srv.accepts.Load(); n != 0 {
				t.Fatalf("upstream dialled %d times for a refused session", n)
			}
		})
	}
}

func TestRouteAllowed(t *testing.T) {
	// R-CREATE-4: a listed route is where the stream goes.
	routed := newFakeServer(t, testFeatures)
	srv, c := newTestHandler(t, func(cfg *config.Config) {
		cfg.RouteAllow = []string{"xmpp:" + routed.addr()}
	})
	_, _, resp := c.post(`<body xmlns='http://jabber.org/protocol/httpbind' rid='1' to='example.org' route='xmpp:` + routed.addr() + `' wait='60' hold='1' ver='1.6'/>`)
	if attrs(resp)["sid"] == "" {
		t.Fatalf("refused: %s", resp)
	}
	if routed.accepts.Load() != 1 || srv.accepts.Load() != 0 {
		t.Fatalf("route dialled %d times, default %d times", routed.accepts.Load(), srv.accepts.Load())
	}
}

func TestUnknownSID(t *testing.T) {
	// R-CREATE-1, R-LEGACY-3: 200 and item-not-found, even without ver.
	_, c := newTestHandler(t, nil)
	status, _, resp := c.post(`<body xmlns='http://jabber.org/protocol/httpbind' rid='5' sid='nope'/>`)
	if status != 200 || attrs(resp)["condition"] != "item-not-found" {
		t.Fatalf("got %d %s", status, resp)
	}
}

func TestRelayBothWays(t *testing.T) {
	srv, c := newTestHandler(t, nil)
	sid := create(t, c, 100, 5)
	held := c.postAsync(`<body xmlns='http://jabber.org/protocol/httpbind' rid='101' sid='` + sid + `'/>`)
	data := c.postAsync(`<body xmlns='http://jabber.org/protocol/httpbind' rid='102' sid='` + sid + `'><message to='bob@example.org' type='chat'><body>hi &amp; bye</body></message></body>`)
	// R-HOLD-4: rid 102 releases 101.
	if got := receive(t, held); got != `<body xmlns='http://jabber.org/protocol/httpbind'/>` {
		t.Fatalf("released request: %s", got)
	}
	// R-XMPP-3: jabber:client added, bytes otherwise untouched.
	srv.waitGot(t, `<message xmlns='jabber:client' to='bob@example.org' type='chat'><body>hi &amp; bye</body></message>`)
	srv.push(t, `<message from='bob@example.org' type='chat'><body>yo</body></message>`)
	if got := receive(t, data); got != `<body xmlns='http://jabber.org/protocol/httpbind'><message xmlns='jabber:client' from='bob@example.org' type='chat'><body>yo</body></message></body>` {
		t.Fatalf("pushed stanza: %s", got)
	}
}

func TestStreamErrorReachesClient(t *testing.T) {
	// R-XMPP-10, R-ERR-1
	srv, c := newTestHandler(t, nil)
	sid := create(t, c, 100, 5)
	held := c.postAsync(`<body xmlns='http://jabber.org/protocol/httpbind' rid='101' sid='` + sid + `'/>`)
	srv.waitGot(t, "") // connected
	srv.push(t, `<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>`)
	got := receive(t, held)
	a := attrs(got)
	if a["type"] != "terminate" || a["condition"] != "remote-stream-error" || a["xmlns:stream"] != NSStream || !strings.Contains(got, "<conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>") {
		t.Fatalf("got %s", got)
	}
}

func TestBadRequestEndsSession(t *testing.T) {
	srv, c := newTestHandler(t, nil)
	sid := create(t, c, 100, 5)
	_, _, resp := c.post(`<body xmlns='http://jabber.org/protocol/httpbind' rid='101' sid='` + sid + `'><message><!-- x --></message></body>`)
	if attrs(resp)["condition"] != "bad-request" {
		t.Fatalf("got %s", resp)
	}
	srv.waitGot(t, "</stream:stream>")
	_, _, resp = c.post(`<body xmlns='http://jabber.org/protocol/httpbind' rid='102' sid='` + sid + `'/>`)
	if attrs(resp)["condition"] != "item-not-found" {
		t.Fatalf("after bad-request: %s", resp)
	}
}

func TestLegacyStatusCodes(t *testing.T) {
	// R-LEGACY-1: without ver, item-not-found is HTTP 404.
	_, c := newTestHandler(t, nil)
	_, _, resp := c.post(`<body xmlns='http://jabber.org/protocol/httpbind' rid='100' to='example.org' wait='5' hold='1'/>`)
	sid := attrs(resp)["sid"]
	status, _, _ := c.post(`<body xmlns='http://jabber.org/protocol/httpbind' rid='200' sid='` + sid + `'/>`)
	if status != http.StatusNotFound {
		t.Fatalf("status %d, want 404", status)
	}
}

func TestBodyTooLarge(t *testing.T) {
	_, c := newTestHandler(t, func(cfg *config.Config) { cfg.MaxBodySize = 2048 })
	_, _, resp := c.post(`<body xmlns='http://jabber.org/protocol/httpbind' rid='1'>` + strings.Repeat("<a/>", 1000) + `</body>`)
	if attrs(resp)["condition"] != "policy-violation" {
		t.Fatalf("got %s", resp)
	}
}

func TestContentType(t *testing.T) {
	// R-CREATE-8, R-HTTP-7: every response carries the creationBody content.
	_, c := newTestHandler(t, nil)
	body := strings.Replace(sprintf(creationBody, 100, 0), "text/xml; charset=utf-8", "application/xml", 1)
	_, header, resp := c.post(body)
	if header.Get("Content-Type") != "application/xml" {
		t.Fatalf("creationBody Content-Type %q", header.Get("Content-Type"))
	}
	_, header, _ = c.post(`<body xmlns='http://jabber.org/protocol/httpbind' rid='101' sid='` + attrs(resp)["sid"] + `'/>`)
	if header.Get("Content-Type") != "application/xml" {
		t.Fatalf("later Content-Type %q", header.Get("Content-Type"))
	}
}

func TestUpstreamDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, c := newTestHandler(t, func(cfg *config.Config) { cfg.Upstreams = map[string]string{"example.org": addr} })
	_, _, resp := c.post(sprintf(creationBody, 1, 5))
	if attrs(resp)["condition"] != "remote-connection-failed" {
		t.Fatalf("got %s", resp)
	}
}
