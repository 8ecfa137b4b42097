package wsbind

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/boshd/boshd/internal/wait"
)

// handshake returns a valid upgrade request for the xmpp subprotocol,
// as a browser on http://example.com sends it.
func handshake() *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://example.com/xmpp-websocket", nil)
	r.Header.Set("Upgrade", "websocket")
	r.Header.Set("Connection", "keep-alive, Upgrade")
	r.Header.Set("Sec-WebSocket-Version", "13")
	r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	r.Header.Set("Sec-WebSocket-Protocol", "xmpp")
	r.Header.Set("Origin", "http://example.com")
	return r
}

func TestUpgradeRefusals(t *testing.T) {
	foreign := func(r *http.Request) bool { return r.Header.Get("Origin") == "https://allowed.example" }
	for _, tc := range []struct {
		name   string
		change func(r *http.Request)
		u      upgrader // admit is set by the test unless given
		status int
		reason string // upgradeError.reason
		body   string // in the response
		header map[string]string
	}{
		{
			name:   "POST",
			change: func(r *http.Request) { r.Method = http.MethodPost },
			status: 405, reason: refusedHandshake, body: "GET",
			header: map[string]string{"Allow": "GET"},
		},
		{
			name:   "HTTP/1.0",
			change: func(r *http.Request) { r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.0", 1, 0 },
			status: 400, reason: refusedHandshake, body: "HTTP/1.1",
		},
		{
			name:   "HTTP/2",
			change: func(r *http.Request) { r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/2.0", 2, 0 },
			status: 400, reason: refusedHandshake, body: "HTTP/1.1",
		},
		{
			name:   "no Upgrade",
			change: func(r *http.Request) { r.Header.Del("Upgrade") },
			status: 400, reason: refusedHandshake, body: "Upgrade: websocket",
		},
		{
			name:   "Upgrade: h2c",
			change: func(r *http.Request) { r.Header.Set("Upgrade", "h2c") },
			status: 400, reason: refusedHandshake, body: "Upgrade: websocket",
		},
		{
			name:   "no Connection: Upgrade",
			change: func(r *http.Request) { r.Header.Set("Connection", "keep-alive") },
			status: 400, reason: refusedHandshake, body: "Connection: Upgrade",
		},
		{
			name:   "no version",
			change: func(r *http.Request) { r.Header.Del("Sec-WebSocket-Version") },
			status: 400, reason: refusedHandshake, body: "Sec-WebSocket-Version",
		},
		{
			name:   "version 8",
			change: func(r *http.Request) { r.Header.Set("Sec-WebSocket-Version", "8") },
			status: 426, reason: refusedHandshake, body: "only 13",
			header: map[string]string{"Sec-WebSocket-Version": "13", "Upgrade": "websocket"},
		},
		{
			name:   "no key",
			change: func(r *http.Request) { r.Header.Del("Sec-WebSocket-Key") },
			status: 400, reason: refusedHandshake, body: "Sec-WebSocket-Key",
		},
		{
			name:   "key not base64",
			change: func(r *http.Request) { r.Header.Set("Sec-WebSocket-Key", "!GhlIHNhbXBsZSBub25jZQ==") },
			status: 400, reason: refusedHandshake, body: "Sec-WebSocket-Key",
		},
		{
			name:   "key of 15 bytes",
			change: func(r *http.Request) { r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ") },
			status: 400, reason: refusedHandshake, body: "Sec-WebSocket-Key",
		},
		{
			name:   "no subprotocol",
			change: func(r *http.Request) { r.Header.Del("Sec-WebSocket-Protocol") },
			status: 400, reason: refusedSubprotocol, body: "the xmpp subprotocol is required",
		},
		{
			name:   "other subprotocols",
			change: func(r *http.Request) { r.Header.Set("Sec-WebSocket-Protocol", "chat, XMPP, xmpp-ws") },
			status: 400, reason: refusedSubprotocol, body: "the xmpp subprotocol is required",
		},
		{
			name:   "foreign origin, default check",
			change: func(r *http.Request) { r.Header.Set("Origin", "https://evil.example") },
			status: 403, reason: refusedOrigin, body: `origin not allowed: "https://evil.example"`,
		},
		{
			name:   "origin null, default check",
			change: func(r *http.Request) { r.Header.Set("Origin", "null") },
			status: 403, reason: refusedOrigin, body: "origin not allowed",
		},
		{
			name:   "refused by the check",
			u:      upgrader{checkOrigin: foreign},
			status: 403, reason: refusedOrigin, body: `origin not allowed: "http://example.com"`,
		},
		{
			name:   "two origins",
			change: func(r *http.Request) { r.Header.Add("Origin", "https://allowed.example") },
			u:      upgrader{checkOrigin: func(*http.Request) bool { return true }},
			status: 403, reason: refusedOrigin, body: "origin not allowed",
		},
		{
			name: "over the limit per IP",
			u: upgrader{admit: func() error {
				return refuse(http.StatusTooManyRequests, "limit", "too many sessions from this address", errors.New("max_sessions_per_ip (2) reached"))
			}},
			status: 429, reason: "limit", body: "too many sessions from this address",
		},
		{
			name:   "admission error",
			u:      upgrader{admit: func() error { return errors.New("stopping") }},
			status: 503, reason: refusedAdmission, body: "stopping",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := handshake()
			if tc.change != nil {
				tc.change(r)
			}
			u := tc.u
			admitted := false
			if u.admit == nil {
				u.admit = func() error { admitted = true; return nil }
			}
			w := httptest.NewRecorder()
			conn, buffered, err := u.upgrade(w, r)
			if conn != nil || buffered != nil {
				t.Fatalf("upgraded: %v, %q", conn, buffered)
			}
			if admitted {
				t.Error("admitted before the checks passed")
			}
			var ue *upgradeError
			if !errors.As(err, &ue) || ue.status != tc.status || ue.reason != tc.reason {
				t.Fatalf("err = %#v, want an upgradeError %d %s", err, tc.status, tc.reason)
			}
			if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.body) {
				t.Errorf("response %d %q, want %d containing %q", w.Code, w.Body, tc.status, tc.body)
			}
			for k, v := range tc.header {
				if got := w.Header().Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
		})
	}
}

// serveUpgrade serves one upgrade with u on a real server, and sends the
// connection, the buffered bytes and the error to the test.
type upgraded struct {
	conn     net.Conn
	buffered []byte
	err      error
}

func serveUpgrade(t *testing.T, u upgrader) (srv *httptest.Server, got <-chan upgraded) {
	ch := make(chan upgraded, 1)
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, buffered, err := u.upgrade(w, r)
		ch <- upgraded{conn, buffered, err}
	}))
	t.Cleanup(srv.Close)
	return srv, ch
}

// TestUpgrade performs the handshake with gobwas/ws's client and relays a
// message each way.
func TestUpgrade(t *testing.T) {
	for _, tc := range []struct {
		name   string
		origin string
		check  func(*http.Request) bool
	}{
		{name: "no origin"},
		{name: "same host", origin: "http://HOST"},
		{name: "allowed by the check", origin: "https://app.example", check: func(r *http.Request) bool {
			return r.Header.Get("Origin") == "https://app.example"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			admitted := 0
			srv, got := serveUpgrade(t, upgrader{
				checkOrigin: tc.check,
				admit:       func() error { admitted++; return nil },
				timeout:     10 * time.Second,
			})
			header := http.Header{}
			if tc.origin != "" {
				header.Set("Origin", strings.Replace(tc.origin, "HOST", srv.Listener.Addr().String(), 1))
			}
			d := ws.Dialer{Protocols: []string{"chat", "xmpp"}, Header: ws.HandshakeHeaderHTTP(header), Timeout: 10 * time.Second}
			client, br, hs, err := d.Dial(context.Background(), "ws://"+srv.Listener.Addr().String()+"/")
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer client.Close()
			if br != nil {
				ws.PutReader(br)
			}
			if hs.Protocol != "xmpp" {
				t.Errorf("subprotocol %q, want xmpp", hs.Protocol)
			}
			up := wait.Receive(t, got, "upgrade to return")
			if up.err != nil {
				t.Fatalf("upgrade: %v", up.err)
			}
			defer up.conn.Close()
			if admitted != 1 || len(up.buffered) != 0 {
				t.Errorf("admitted %d times, %q buffered", admitted, up.buffered)
			}
			echo(t, client, up.conn, nil)
		})
	}
}

// echo sends a message from client to server and one back.
func echo(t *testing.T, client, server net.Conn, buffered []byte) {
	t.Helper()
	const msg = `<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="example.com" version="1.0" />`
	server.SetDeadline(time.Now().Add(10 * time.Second))
	client.SetDeadline(time.Now().Add(10 * time.Second))
	if buffered == nil {
		if err := wsutil.WriteClientText(client, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	w := &writer{conn: server, timeout: 10 * time.Second}
	br := bufio.NewReader(io.MultiReader(bytes.NewReader(buffered), server))
	got, ok, err := readMessage(br, w, 1<<18, nil)
	if err != nil || !ok || string(got) != msg {
		t.Fatalf("server read %q, %v, %v", got, ok, err)
	}
	if err := w.writeText(appendOpen(nil, streamHeader{from: "example.com", id: "1", version: "1.0"})); err != nil {
		t.Fatal(err)
	}
	back, err := wsutil.ReadServerText(client)
	if err != nil || !strings.HasPrefix(string(back), "<open ") {
		t.Fatalf("client read %q, %v", back, err)
	}
}

// TestUpgradeBuffered sends the handshake and a first message in one
// write, by hand: the message, read by net/http with the request, comes
// back from upgrade to be read first.
func TestUpgradeBuffered(t *testing.T) {
	srv, got := serveUpgrade(t, upgrader{})
	client, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	const msg = `<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="example.com" version="1.0" />`
	req := "GET /xmpp-websocket HTTP/1.1\r\nHost: " + srv.Listener.Addr().String() + "\r\n" +
		"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n"
	wire := append([]byte(req), frames(fr{op: ws.OpText, payload: msg})...)
	client.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := client.Write(wire); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(client), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"Upgrade":                "websocket",
		"Sec-WebSocket-Accept":   "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", // RFC 6455 §1.3's example
		"Sec-WebSocket-Protocol": "xmpp",
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for k, v := range want {
		if resp.Header.Get(k) != v {
			t.Errorf("%s: %q, want %q", k, resp.Header.Get(k), v)
		}
	}
	up := wait.Receive(t, got, "upgrade to return")
	if up.err != nil {
		t.Fatal(up.err)
	}
	defer up.conn.Close()
	if len(up.buffered) == 0 {
		t.Fatal("nothing buffered: the frame came with the request")
	}
	br := bufio.NewReader(io.MultiReader(bytes.NewReader(up.buffered), up.conn))
	m, ok, err := readMessage(br, &writer{conn: up.conn}, 1<<18, nil)
	if err != nil || !ok || string(m) != msg {
		t.Fatalf("read %q, %v, %v", m, ok, err)
	}
}

// TestUpgradeRawRefusal sends refused handshakes over a real connection,
// as a client that is not a browser would, and reads the response.
func TestUpgradeRawRefusal(t *testing.T) {
	for _, tc := range []struct {
		name   string
		req    string
		status int
		body   string
	}{
		{
			name:   "HTTP/1.0",
			req:    "GET / HTTP/1.0\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n",
			status: 400, body: "HTTP/1.1",
		},
		{
			name:   "no subprotocol",
			req:    "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
			status: 400, body: "the xmpp subprotocol is required",
		},
		{
			name:   "version 7",
			req:    "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 7\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n",
			status: 426, body: "only 13",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, got := serveUpgrade(t, upgrader{})
			c, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(c, tc.req); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1000))
			if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.body) {
				t.Errorf("response %d %q, want %d containing %q", resp.StatusCode, body, tc.status, tc.body)
			}
			if up := wait.Receive(t, got, "upgrade to return"); up.conn != nil || up.err == nil {
				t.Errorf("upgrade returned %v, %v", up.conn, up.err)
			}
		})
	}
}
