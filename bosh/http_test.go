package bosh

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/boshd/boshd/config"
	"github.com/boshd/boshd/internal/wait"
	"github.com/boshd/boshd/session"
)

func gzipped(t *testing.T, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(data)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gunzip(t *testing.T, data []byte) string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// checkWhole checks that resp was sent whole: with a Content-Length that
// matches the bytes sent, never chunked (XEP-0124 §5).
func checkWhole(t *testing.T, resp *http.Response, data []byte) {
	t.Helper()
	if resp.Header.Get("Content-Length") != strconv.Itoa(len(data)) || resp.ContentLength != int64(len(data)) {
		t.Errorf("Content-Length %q for %d bytes", resp.Header.Get("Content-Length"), len(data))
	}
	if len(resp.TransferEncoding) != 0 {
		t.Errorf("Transfer-Encoding %q", resp.TransferEncoding)
	}
}

func TestAcceptsGzip(t *testing.T) {
	t.Parallel()
	// XEP-0124 §5: q-values are honoured; without gzip or *, never.
	for _, tc := range []struct {
		header []string
		want   bool
	}{
		{nil, false},
		{[]string{""}, false},
		{[]string{"gzip"}, true},
		{[]string{"GZip"}, true},
		{[]string{"x-gzip"}, true},
		{[]string{"gzip, deflate, br"}, true},
		{[]string{"deflate, br"}, false},
		{[]string{"identity"}, false},
		{[]string{"gzip;q=0"}, false},
		{[]string{"gzip; q=0.0"}, false},
		{[]string{"gzip;q=0.001"}, true},
		{[]string{"gzip;Q=1"}, true},
		{[]string{"gzip;q=0.5, br;q=1"}, true},
		{[]string{"*"}, true},
		{[]string{"*;q=0"}, false},
		{[]string{"*;q=1, gzip;q=0"}, false},
		{[]string{"gzip;q=0, *"}, false},
		{[]string{"identity;q=1, *;q=0"}, false},
		{[]string{"gzip;q=bad"}, false},
		{[]string{"gzip;q=2"}, false},
		{[]string{"gzip;q=NaN"}, false},
		{[]string{"gzip;q=-1"}, false},
		{[]string{"deflate", "gzip"}, true},
		{[]string{"gzipx"}, false},
		{[]string{" gzip ; q=0.8 "}, true},
	} {
		if got := acceptsGzip(tc.header); got != tc.want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", tc.header, got, tc.want)
		}
	}
}

func TestResponseGzip(t *testing.T) {
	t.Parallel()
	// XEP-0124 §5: gzip only when accepted and the body is over
	// gzipThreshold, always with Content-Length and Vary: Accept-Encoding.
	creation := []byte(sprintf(creationBody, 100, 5)) // answered with features: > 256 bytes
	unknown := []byte(`<body xmlns='http://jabber.org/protocol/httpbind' rid='5' sid='nope'/>`)
	for _, tc := range []struct {
		name, accept string
		body         []byte
		wantGzip     bool
	}{
		{"XEP-0124 §5 gzip", "gzip", creation, true},
		{"XEP-0124 §5 gzip among others", "br;q=1.0, gzip;q=0.8, *;q=0.1", creation, true},
		{"XEP-0124 §5 any", "*", creation, true},
		{"XEP-0124 §5 no Accept-Encoding", "", creation, false},
		{"XEP-0124 §5 gzip;q=0", "gzip;q=0", creation, false},
		{"XEP-0124 §5 others only", "br, deflate", creation, false},
		{"XEP-0124 §5 identity only", "identity", creation, false},
		{"below threshold", "gzip", unknown, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, h := startHandler(t, nil, nil)
			hs := serve(t, h)
			header := map[string]string{}
			if tc.accept != "" {
				header["Accept-Encoding"] = tc.accept
			}
			resp, data := do(t, nil, "POST", hs.URL, header, tc.body)
			checkWhole(t, resp, data)
			if !strings.Contains(resp.Header.Get("Vary"), "Accept-Encoding") {
				t.Errorf("Vary %q", resp.Header.Get("Vary"))
			}
			text := string(data)
			if tc.wantGzip {
				if resp.Header.Get("Content-Encoding") != "gzip" {
					t.Fatalf("Content-Encoding %q, want gzip", resp.Header.Get("Content-Encoding"))
				}
				text = gunzip(t, data)
				if len(text) <= len(data) {
					t.Errorf("compressed %d bytes into %d", len(text), len(data))
				}
			} else if enc := resp.Header.Get("Content-Encoding"); enc != "" {
				t.Fatalf("Content-Encoding %q, want none", enc)
			}
			if !strings.HasPrefix(text, "<body xmlns='"+NS+"'") {
				t.Fatalf("body %q", text)
			}
			if len(text) > gzipThreshold != (&tc.body[0] == &creation[0]) {
				t.Fatalf("test body of %d bytes on the wrong side of the threshold", len(text))
			}
		})
	}
}

func TestCreationAdvertisesGzip(t *testing.T) {
	t.Parallel()
	// XEP-0124 §7.2: the creation response says gzipped requests are accepted.
	c := newEnv(t, nil)
	_, _, resp := c.post(sprintf(creationBody, 100, 5))
	if got := attrs(resp)["accept"]; got != "gzip" {
		t.Fatalf("accept = %q, want gzip, in %s", got, resp)
	}
}

func TestRequestGzip(t *testing.T) {
	t.Parallel()
	// XEP-0124 §7.2: gzipped requests are processed, bounded by max_body_size
	// once decompressed; other encodings are refused.
	const limit = 4096
	bomb := gzipped(t, []byte(`<body xmlns='http://jabber.org/protocol/httpbind' rid='101' sid='x'>`+strings.Repeat("<a/>", 1<<18)+`</body>`))
	if len(bomb) >= limit {
		t.Fatalf("bomb of %d bytes not under the limit compressed", len(bomb))
	}
	for _, tc := range []struct {
		name     string
		encoding string
		body     func(sid string) []byte
		cond     string // "" if processed
	}{
		{"XEP-0124 §7.2 gzip", "gzip", func(sid string) []byte {
			return gzipped(t, []byte(`<body xmlns='http://jabber.org/protocol/httpbind' rid='101' sid='`+sid+`'><message to='bob@example.org'><body>zipped</body></message></body>`))
		}, ""},
		{"x-gzip", "x-gzip", func(sid string) []byte {
			return gzipped(t, []byte(`<body xmlns='http://jabber.org/protocol/httpbind' rid='101' sid='`+sid+`'><message to='bob@example.org'><body>zipped</body></message></body>`))
		}, ""},
		{"identity", "identity", func(sid string) []byte {
			return []byte(`<body xmlns='http://jabber.org/protocol/httpbind' rid='101' sid='` + sid + `'><message to='bob@example.org'><body>zipped</body></message></body>`)
		}, ""},
		{"docs/CONFORMANCE.md#limits gzip bomb", "gzip", func(string) []byte { return bomb }, "policy-violation"},
		{"docs/CONFORMANCE.md#limits too large compressed", "gzip", func(string) []byte {
			random := make([]byte, 2*limit)
			rand.Read(random)
			return gzipped(t, random)
		}, "policy-violation"},
		{"not gzip", "gzip", func(sid string) []byte {
			return []byte(`<body xmlns='http://jabber.org/protocol/httpbind' rid='101' sid='` + sid + `'/>`)
		}, "bad-request"},
		{"truncated gzip", "gzip", func(sid string) []byte {
			z := gzipped(t, []byte(`<body xmlns='http://jabber.org/protocol/httpbind' rid='101' sid='`+sid+`'/>`))
			return z[:len(z)-6]
		}, "bad-request"},
		{"empty gzip", "gzip", func(string) []byte { return nil }, "bad-request"},
		{"deflate", "deflate", func(sid string) []byte { return []byte("x") }, "bad-request"},
		{"br", "br", func(sid string) []byte { return []byte("x") }, "bad-request"},
		{"two encodings", "gzip, gzip", func(sid string) []byte { return []byte("x") }, "bad-request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, h := startHandler(t, func(cfg *config.Config) { cfg.MaxBodySize = limit }, nil)
			hs := serve(t, h)
			c := newClient(t, hs.URL)
			sid := c.create(100, 0)
			resp, data := do(t, nil, "POST", hs.URL, map[string]string{"Content-Encoding": tc.encoding}, tc.body(sid))
			a := attrs(string(data))
			if tc.cond == "" {
				if resp.StatusCode != 200 || a["type"] != "" {
					t.Fatalf("got %d %s", resp.StatusCode, data)
				}
				srv.WaitGot(t, "<body>zipped</body>")
				return
			}
			if resp.StatusCode != 200 || a["type"] != "terminate" || a["condition"] != tc.cond {
				t.Fatalf("got %d %s, want %s", resp.StatusCode, data, tc.cond)
			}
		})
	}
}

func TestReadBodyBoundsDecompression(t *testing.T) {
	// docs/CONFORMANCE.md#limits: a body that inflates far beyond the limit is refused after
	// limit+1 bytes of it, and never held in memory whole. Deflate
	// inflates at most about 1000 times, so the bomb is 8 MiB of zeros
	// sent as 8 KiB, under the limit of 16 KiB.
	const limit = 16 << 10
	bomb := gzipped(t, make([]byte, 8<<20))
	if len(bomb) >= limit {
		t.Fatalf("bomb of %d bytes is not under the limit", len(bomb))
	}
	r := httptest.NewRequest("POST", "/", bytes.NewReader(bomb))
	r.Header.Set("Content-Encoding", "gzip")
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := readBody(httptest.NewRecorder(), r, limit, nil)
	runtime.ReadMemStats(&after)
	if err != errBodyTooLarge {
		t.Fatalf("err %v, want %v", err, errBodyTooLarge)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 2<<20 {
		t.Fatalf("%d bytes allocated reading a bomb with a limit of %d", n, limit)
	}
}

func TestCORSPreflight(t *testing.T) {
	t.Parallel()
	// docs/CONFORMANCE.md#cors, esl/MongooseIM#348: OPTIONS is answered 204, with CORS
	// headers only for allowed origins.
	const chat = "https://chat.example.org"
	for _, tc := range []struct {
		name        string
		origins     []string
		header      map[string]string
		wantOrigin  string // Access-Control-Allow-Origin; "" for no CORS headers
		wantCreds   bool
		wantHeaders string
	}{
		{"no CORS, no Origin", nil, nil, "", false, ""},
		{"no CORS, with Origin", nil, map[string]string{"Origin": chat}, "", false, ""},
		{"listed origin", []string{chat}, map[string]string{"Origin": chat, "Access-Control-Request-Method": "POST"}, chat, true, "Content-Type"},
		{"listed origin, other case", []string{chat}, map[string]string{"Origin": "https://Chat.Example.org"}, "https://Chat.Example.org", true, "Content-Type"},
		{"listed origin asks for headers", []string{chat}, map[string]string{
			"Origin": chat, "Access-Control-Request-Method": "POST",
			"Access-Control-Request-Headers": "content-type,x-requested-with, Authorization, accept, x-evil",
		}, chat, true, "Content-Type, X-Requested-With, Accept"},
		{"other origin", []string{chat}, map[string]string{"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}, "", false, ""},
		{"other port", []string{chat}, map[string]string{"Origin": chat + ":8443"}, "", false, ""},
		{"other scheme", []string{chat}, map[string]string{"Origin": "http://chat.example.org"}, "", false, ""},
		{"no Origin with CORS", []string{chat}, nil, "", false, ""},
		{"any origin", []string{"*"}, map[string]string{"Origin": "https://anyone.example"}, "*", false, "Content-Type"},
		{"any origin, null", []string{"*"}, map[string]string{"Origin": "null"}, "*", false, "Content-Type"},
		{"any and listed: listed", []string{"*", chat}, map[string]string{"Origin": chat}, chat, true, "Content-Type"},
		{"any and listed: other", []string{"*", chat}, map[string]string{"Origin": "https://anyone.example"}, "*", false, "Content-Type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, h := startHandler(t, func(cfg *config.Config) { cfg.CORSOrigins = tc.origins }, nil)
			hs := serve(t, h)
			resp, _ := do(t, nil, "OPTIONS", hs.URL, tc.header, nil)
			got := resp.Header
			if resp.StatusCode != http.StatusNoContent || got.Get("Allow") != "POST, OPTIONS" {
				t.Fatalf("status %d, Allow %q", resp.StatusCode, got.Get("Allow"))
			}
			if got.Get("Access-Control-Allow-Origin") != tc.wantOrigin {
				t.Fatalf("Access-Control-Allow-Origin %q, want %q", got.Get("Access-Control-Allow-Origin"), tc.wantOrigin)
			}
			if creds := got.Get("Access-Control-Allow-Credentials") == "true"; creds != tc.wantCreds {
				t.Errorf("Access-Control-Allow-Credentials %q", got.Get("Access-Control-Allow-Credentials"))
			}
			if tc.origins != nil && got.Get("Vary") != "Origin" {
				t.Errorf("Vary %q, want Origin", got.Get("Vary"))
			}
			if tc.wantOrigin == "" {
				for name := range got {
					if strings.HasPrefix(name, "Access-Control-") {
						t.Errorf("CORS header %s for a request that gets none", name)
					}
				}
				return
			}
			for name, want := range map[string]string{
				"Access-Control-Allow-Methods": "POST, OPTIONS",
				"Access-Control-Allow-Headers": tc.wantHeaders,
				"Access-Control-Max-Age":       "86400",
			} {
				if got.Get(name) != want {
					t.Errorf("%s %q, want %q", name, got.Get(name), want)
				}
			}
		})
	}
}

func TestCORSOnEveryResponse(t *testing.T) {
	t.Parallel()
	// docs/CONFORMANCE.md#cors: every answer to a listed origin carries its CORS
	// headers, errors and terminate bodies included; other origins get
	// none, but their requests are served all the same.
	const chat = "https://chat.example.org"
	const (
		createReq = iota
		pollReq
		terminateReq
		badReq
		unknownReq
		tooLargeReq
		getReq
	)
	for _, tc := range []struct {
		name      string
		req       int
		origin    string
		want      string // Access-Control-Allow-Origin
		wantCond  string // condition of the response, "" for none
		wantCreds bool
	}{
		{"creation", createReq, chat, chat, "", true},
		{"poll", pollReq, chat, chat, "", true},
		{"terminate", terminateReq, chat, chat, "", true},
		{"bad request", badReq, chat, chat, "bad-request", true},
		{"unknown sid", unknownReq, chat, chat, "item-not-found", true},
		{"body too large", tooLargeReq, chat, chat, "policy-violation", true},
		{"GET", getReq, chat, chat, "", true},
		{"creation from another origin", createReq, "https://evil.example", "", "", false},
		{"poll from another origin", pollReq, "https://evil.example", "", "", false},
		{"unknown sid from another origin", unknownReq, "https://evil.example", "", "item-not-found", false},
		{"creation without Origin", createReq, "", "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, h := startHandler(t, func(cfg *config.Config) { cfg.CORSOrigins = []string{chat}; cfg.MaxBodySize = 2048 }, nil)
			hs := serve(t, h)
			c := newClient(t, hs.URL)
			var sid string
			if tc.req != createReq {
				sid = c.create(100, 0)
			}
			method, body := "POST", ""
			switch tc.req {
			case createReq:
				body = sprintf(creationBody, 100, 0)
			case pollReq:
				body = `<body xmlns='http://jabber.org/protocol/httpbind' rid='101' sid='` + sid + `'><message to='bob@example.org'><body>cors</body></message></body>`
			case terminateReq:
				body = `<body xmlns='http://jabber.org/protocol/httpbind' rid='101' sid='` + sid + `' type='terminate'/>`
			case badReq:
				body = `<body xmlns='http://jabber.org/protocol/httpbind' rid='101' sid='` + sid + `'><!-- x --></body>`
			case unknownReq:
				body = `<body xmlns='http://jabber.org/protocol/httpbind' rid='101' sid='nope'/>`
			case tooLargeReq:
				body = `<body xmlns='http://jabber.org/protocol/httpbind' rid='101' sid='` + sid + `'>` + strings.Repeat("<a/>", 1000) + `</body>`
			case getReq:
				method = "GET"
			}
			header := map[string]string{"Content-Type": "text/plain;charset=UTF-8"}
			if tc.origin != "" {
				header["Origin"] = tc.origin
			}
			resp, data := do(t, nil, method, hs.URL, header, []byte(body))
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != tc.want {
				t.Errorf("Access-Control-Allow-Origin %q, want %q", got, tc.want)
			}
			if creds := resp.Header.Get("Access-Control-Allow-Credentials") == "true"; creds != tc.wantCreds {
				t.Errorf("Access-Control-Allow-Credentials %q", resp.Header.Get("Access-Control-Allow-Credentials"))
			}
			if !strings.Contains(strings.Join(resp.Header.Values("Vary"), ","), "Origin") {
				t.Errorf("Vary %q", resp.Header.Values("Vary"))
			}
			if method == "GET" {
				return
			}
			a := attrs(string(data))
			if a["condition"] != tc.wantCond {
				t.Fatalf("got %s, want condition %q", data, tc.wantCond)
			}
			switch tc.req {
			case createReq:
				if a["sid"] == "" {
					t.Fatalf("no session for a request from %q: %s", tc.origin, data)
				}
			case pollReq:
				srv.WaitGot(t, "<body>cors</body>") // served whatever the origin
			case terminateReq:
				if a["type"] != "terminate" {
					t.Fatalf("got %s", data)
				}
			}
		})
	}
}

// rawExchange sends request over a new connection to hs and reads until
// the server closes it, failing if it does not within 5 seconds.
func rawExchange(t *testing.T, hs *httptest.Server, request string) []byte {
	t.Helper()
	conn, err := net.Dial("tcp", hs.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("connection not closed: %v after %q", err, data)
	}
	return data
}

func TestHTTP10(t *testing.T) {
	t.Parallel()
	// XEP-0124 §5: HTTP/1.0 without keep-alive gets a whole response with
	// Content-Length, then the connection closes. XEP-0124 §5: unknown
	// headers change nothing. XEP-0124 §5: the request Content-Type is
	// ignored.
	for _, tc := range []struct {
		name    string
		headers string
	}{
		{"XEP-0124 §5 plain", ""},
		{"XEP-0124 §5 unknown headers", "X-Foo: 1\r\nX-Requested-With: XMLHttpRequest\r\nDNT: 1\r\n"},
		{"XEP-0124 §5 text/plain", "Content-Type: text/plain;charset=UTF-8\r\n"},
		{"XEP-0124 §5 form-urlencoded", "Content-Type: application/x-www-form-urlencoded\r\n"},
		{"XEP-0124 §5 json", "Content-Type: application/json\r\n"},
		{"XEP-0124 §5 bogus", "Content-Type: ???\r\n"},
		{"XEP-0124 §5 with gzip", "Accept-Encoding: gzip\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, h := startHandler(t, nil, nil)
			hs := serve(t, h)
			body := sprintf(creationBody, 100, 5)
			data := rawExchange(t, hs, "POST / HTTP/1.0\r\nHost: bosh.example\r\n"+tc.headers+"Content-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body)
			resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(data)), nil)
			if err != nil {
				t.Fatalf("%v in %q", err, data)
			}
			content, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			checkWhole(t, resp, content)
			if !resp.Close {
				t.Errorf("response to HTTP/1.0 does not close: %v", resp.Header)
			}
			if resp.Header.Get("Content-Encoding") == "gzip" {
				content = []byte(gunzip(t, content))
			}
			if resp.StatusCode != 200 || attrs(string(content))["sid"] == "" {
				t.Fatalf("got %d %s", resp.StatusCode, content)
			}
		})
	}
}

func TestKeepAlive(t *testing.T) {
	t.Parallel()
	// XEP-0124 §5: HTTP/1.1 requests share one connection.
	_, h := startHandler(t, func(cfg *config.Config) { cfg.Polling = 0 }, nil)
	hs := httptest.NewUnstartedServer(h)
	var conns atomic.Int32
	hs.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			conns.Add(1)
		}
	}
	hs.Start()
	t.Cleanup(hs.Close)
	c := newClient(t, hs.URL)
	sid := c.create(100, 0)
	for rid := 101; rid < 104; rid++ {
		if _, _, resp := c.post(`<body xmlns='http://jabber.org/protocol/httpbind' rid='` + strconv.Itoa(rid) + `' sid='` + sid + `'/>`); attrs(resp)["type"] != "" {
			t.Fatalf("rid %d: %s", rid, resp)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for 4 requests in a row", n)
	}
}

func TestSessionLimits(t *testing.T) {
	t.Parallel()
	// docs/CONFORMANCE.md#limits: over max_sessions or max_sessions_per_ip, 200 +
	// policy-violation (403 for legacy clients), logged with the IP, and
	// the upstream is never dialled.
	const legacyCreation = `<body xmlns='http://jabber.org/protocol/httpbind' rid='100' to='example.org' wait='5' hold='1'/>`
	for _, tc := range []struct {
		name          string
		max, maxPerIP int
		body          string
		allowed       int
		wantStatus    int
		wantErr       string
	}{
		{"docs/CONFORMANCE.md#limits max_sessions", 2, 0, sprintf(creationBody, 100, 5), 2, 200, "max_sessions (2)"},
		{"docs/CONFORMANCE.md#limits max_sessions_per_ip", 0, 1, sprintf(creationBody, 100, 5), 1, 200, "max_sessions_per_ip (1)"},
		{"docs/CONFORMANCE.md#limits both, per IP first", 5, 3, sprintf(creationBody, 100, 5), 3, 200, "max_sessions_per_ip (3)"},
		{"XEP-0124 §17.1 legacy client", 1, 0, legacyCreation, 1, http.StatusForbidden, "max_sessions (1)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs syncBuffer
			srv, h := startHandler(t, func(cfg *config.Config) { cfg.MaxSessions, cfg.MaxSessionsPerIP = tc.max, tc.maxPerIP }, &logs)
			c := newClient(t, serve(t, h).URL)
			for i := range tc.allowed {
				status, _, resp := c.post(tc.body)
				if status != 200 || attrs(resp)["sid"] == "" {
					t.Fatalf("session %d refused: %d %s", i+1, status, resp)
				}
			}
			status, _, resp := c.post(tc.body)
			if status != tc.wantStatus || attrs(resp)["type"] != "terminate" || attrs(resp)["condition"] != "policy-violation" {
				t.Fatalf("over the limit: %d %s", status, resp)
			}
			if n := srv.Accepts(); n != tc.allowed {
				t.Fatalf("upstream dialled %d times for %d sessions", n, tc.allowed)
			}
			out := logs.String()
			// Per-IP refusals at info, the server-wide cap at warn.
			if !(strings.Contains(out, "level=INFO") || strings.Contains(out, "level=WARN")) || !strings.Contains(out, "ip=127.0.0.1") || !strings.Contains(out, tc.wantErr) {
				t.Fatalf("refusal not logged with the IP and the limit:\n%s", out)
			}
		})
	}
}

func TestSessionLimitsReleased(t *testing.T) {
	t.Parallel()
	// docs/CONFORMANCE.md#limits: a slot is given back when its session is gone, or when no
	// session is made.
	t.Run("session ended", func(t *testing.T) {
		_, h := startHandler(t, func(cfg *config.Config) { cfg.MaxSessionsPerIP = 1; cfg.Inactivity = time.Second }, nil)
		c := newClient(t, serve(t, h).URL)
		sid := c.create(100, 0)
		_, _, resp := c.post(sprintf(creationBody, 200, 0))
		if attrs(resp)["condition"] != "policy-violation" {
			t.Fatalf("second session: %s", resp)
		}
		_, _, resp = c.post(`<body xmlns='http://jabber.org/protocol/httpbind' rid='101' sid='` + sid + `' type='terminate'/>`)
		if attrs(resp)["type"] != "terminate" {
			t.Fatalf("terminate: %s", resp)
		}
		// The ended session lingers for inactivity to answer resends.
		wait.Until(t, func() bool { total, _ := h.g.Sessions("127.0.0.1"); return total == 0 }, "no session counted after terminate")
		c.create(300, 0)
	})
	t.Run("upstream down", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		_, h := startHandler(t, func(cfg *config.Config) {
			cfg.MaxSessions = 1
			cfg.Upstreams = map[string]string{"example.org": addr}
		}, nil)
		c := newClient(t, serve(t, h).URL)
		for range 2 {
			if _, _, resp := c.post(sprintf(creationBody, 1, 5)); attrs(resp)["condition"] != "remote-connection-failed" {
				t.Fatalf("got %s", resp)
			}
		}
		if total, _ := h.g.Sessions(""); total != 0 {
			t.Fatalf("%d sessions counted", total)
		}
	})
	t.Run("shutting down", func(t *testing.T) {
		_, h := startHandler(t, func(cfg *config.Config) { cfg.MaxSessions = 1 }, nil)
		c := newClient(t, serve(t, h).URL)
		h.Shutdown(context.Background())
		if _, _, resp := c.post(sprintf(creationBody, 1, 5)); attrs(resp)["condition"] != "system-shutdown" {
			t.Fatalf("got %s", resp)
		}
		if total, _ := h.g.Sessions(""); total != 0 {
			t.Fatalf("%d sessions counted", total)
		}
	})
}

func TestPanicRecovered(t *testing.T) {
	t.Parallel()
	// XEP-0124 §17.2 internal-server-error: a panic is answered, logged
	// with its stack, ends the session the request named, and the server
	// goes on.
	const chat = "https://chat.example.org"
	for _, tc := range []struct {
		name        string
		point       string
		legacy      bool
		wantEnds    bool // the session is ended
		wantContent string
	}{
		{"before parsing", "body", false, false, defaultContentType},
		{"with a session", "session", false, true, "application/xml"},
		{"XEP-0124 §17.1 legacy session gets 200", "session", true, true, "application/xml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs syncBuffer
			srv, h := startHandler(t, func(cfg *config.Config) { cfg.CORSOrigins = []string{chat} }, &logs)
			var armed atomic.Bool
			h.testPanic = func(point string) {
				if point == tc.point && armed.CompareAndSwap(true, false) {
					panic("test panic at " + point)
				}
			}
			c := newClient(t, serve(t, h).URL)
			creation := strings.Replace(sprintf(creationBody, 100, 0), "text/xml; charset=utf-8", "application/xml", 1)
			if tc.legacy {
				creation = strings.Replace(creation, "ver='1.6'", "", 1)
			}
			_, _, resp := c.post(creation)
			sid := attrs(resp)["sid"]
			if sid == "" {
				t.Fatalf("no session: %s", resp)
			}
			armed.Store(true)
			res, data := do(t, nil, "POST", c.url, map[string]string{"Origin": chat},
				[]byte(`<body xmlns='http://jabber.org/protocol/httpbind' rid='101' sid='`+sid+`'/>`))
			a := attrs(string(data))
			if res.StatusCode != 200 || a["type"] != "terminate" || a["condition"] != "internal-server-error" {
				t.Fatalf("got %d %s", res.StatusCode, data)
			}
			if res.Header.Get("Content-Type") != tc.wantContent {
				t.Errorf("Content-Type %q, want %q", res.Header.Get("Content-Type"), tc.wantContent)
			}
			checkWhole(t, res, data)
			if res.Header.Get("Access-Control-Allow-Origin") != chat {
				t.Errorf("no CORS headers: %v", res.Header)
			}
			out := logs.String()
			if !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "test panic at "+tc.point) || !strings.Contains(out, "goroutine") {
				t.Errorf("panic not logged at error with its stack:\n%s", out)
			}
			// The same request again: processed if the panic came before
			// the session was known, told the session is gone if not.
			_, _, resp = c.post(`<body xmlns='http://jabber.org/protocol/httpbind' rid='101' sid='` + sid + `'/>`)
			if tc.wantEnds {
				srv.WaitGot(t, "</stream:stream>")
				if attrs(resp)["type"] != "terminate" {
					t.Fatalf("session lives on after a panic: %s", resp)
				}
			} else if attrs(resp)["type"] != "" {
				t.Fatalf("session ended by a panic before parsing: %s", resp)
			}
			// The server goes on.
			c.create(500, 0)
		})
	}
}

func TestSeeOtherURI(t *testing.T) {
	t.Parallel()
	// XEP-0124 §19.1, XEP-0124 §17.2 see-other-uri: a plaintext request for a
	// session made over TLS is sent to https, and neither ends the
	// session nor reaches it.
	for _, tc := range []struct {
		name    string
		path    string
		host    string // Host header of the plaintext request; the server's if ""
		body    func(sid string) string
		wantURI string
	}{
		{"XEP-0124 §19.1 poll", "/http-bind", "chat.example.org:5280", func(sid string) string {
			return `<body xmlns='http://jabber.org/protocol/httpbind' rid='101' sid='` + sid + `'><message to='bob@example.org'><body>plaintext</body></message></body>`
		}, "https://chat.example.org/http-bind"},
		{"XEP-0124 §19.1 terminate", "/bosh", "chat.example.org", func(sid string) string {
			return `<body xmlns='http://jabber.org/protocol/httpbind' rid='101' sid='` + sid + `' type='terminate'/>`
		}, "https://chat.example.org/bosh"},
		{"XEP-0124 §19.1 malformed", "/http-bind", "[2001:db8::1]:80", func(sid string) string {
			return `<body xmlns='http://jabber.org/protocol/httpbind' rid='101' sid='` + sid + `'><!-- x --></body>`
		}, "https://[2001:db8::1]/http-bind"},
		{"XEP-0124 §19.1 escaped path", "/a&b/%3C", "chat.example.org", func(sid string) string {
			return `<body xmlns='http://jabber.org/protocol/httpbind' rid='101' sid='` + sid + `'/>`
		}, "https://chat.example.org/a&amp;b/%3C"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, h := startHandler(t, nil, nil)
			secure := httptest.NewTLSServer(h)
			t.Cleanup(secure.Close)
			plain := serve(t, h)
			tlsClient := secure.Client()
			tlsClient.Transport.(*http.Transport).DisableCompression = true

			_, data := do(t, tlsClient, "POST", secure.URL+tc.path, nil, []byte(sprintf(creationBody, 100, 0)))
			sid := attrs(string(data))["sid"]
			if sid == "" {
				t.Fatalf("no session: %s", data)
			}
			header := map[string]string{}
			if tc.host != "" {
				header["Host"] = tc.host
			}
			resp, data := do(t, nil, "POST", plain.URL+tc.path, header, []byte(tc.body(sid)))
			a := attrs(string(data))
			if resp.StatusCode != 200 || a["type"] != "terminate" || a["condition"] != "see-other-uri" {
				t.Fatalf("plaintext request: %d %s", resp.StatusCode, data)
			}
			if want := "<uri>" + tc.wantURI + "</uri>"; !strings.Contains(string(data), want) {
				t.Fatalf("got %s, want %s in it", data, want)
			}

			// The session goes on over TLS, at the same rid.
			_, data = do(t, tlsClient, "POST", secure.URL+tc.path, nil,
				[]byte(`<body xmlns='http://jabber.org/protocol/httpbind' rid='101' sid='`+sid+`'><message to='bob@example.org'><body>secure</body></message></body>`))
			if attrs(string(data))["type"] != "" {
				t.Fatalf("session ended by a plaintext request: %s", data)
			}
			srv.WaitGot(t, "<body>secure</body>")
			got := srv.Got()
			if strings.Contains(got, "plaintext") || strings.Contains(got, "</stream:stream>") {
				t.Fatalf("the plaintext request reached the session: %s", got)
			}
		})
	}
	t.Run("session made over plain HTTP", func(t *testing.T) {
		// Not secure to begin with: nothing to protect.
		_, h := startHandler(t, func(cfg *config.Config) { cfg.Polling = 0 }, nil)
		secure := httptest.NewTLSServer(h)
		t.Cleanup(secure.Close)
		c := newClient(t, serve(t, h).URL)
		sid := c.create(100, 0)
		_, _, resp := c.post(`<body xmlns='http://jabber.org/protocol/httpbind' rid='101' sid='` + sid + `'/>`)
		if attrs(resp)["type"] != "" {
			t.Fatalf("got %s", resp)
		}
		_, data := do(t, secure.Client(), "POST", secure.URL, nil, []byte(`<body xmlns='http://jabber.org/protocol/httpbind' rid='102' sid='`+sid+`'/>`))
		if attrs(string(data))["type"] != "" {
			t.Fatalf("got %s", data)
		}
	})
}

// BenchmarkCompress gzips a response of four chat messages, the size of a
// batch under load, as writeBody does for a client that accepts gzip.
func BenchmarkCompress(b *testing.B) {
	msg := []byte(`<message xmlns='jabber:client' from='user12@localhost/boshload' to='user13@localhost/boshload' type='chat' id='m12-345'><body>boshload 12 345 1732450000000000000</body></message>`)
	data := encodeBody(&session.Response{Payload: [][]byte{msg, msg, msg, msg}})
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var n int
	for b.Loop() {
		n = len(compress(data))
	}
	b.ReportMetric(float64(n), "gzipped-bytes")
}
