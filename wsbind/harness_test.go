package wsbind

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/boshd/boshd/config"
	"github.com/boshd/boshd/gateway"
	"github.com/boshd/boshd/internal/wait"
	"github.com/boshd/boshd/internal/xmpptest"
)

// testServer is a Handler served by httptest in front of a fake XMPP
// server serving xmpptest.Domain.
type testServer struct {
	h   *Handler
	g   *gateway.Gateway
	srv *httptest.Server
	up  *xmpptest.Server
	url string // ws://…
}

// newTestServer starts a Handler relaying to up; edit, if not nil,
// changes the configuration first.
func newTestServer(t *testing.T, up *xmpptest.Server, edit func(*config.Config)) *testServer {
	t.Helper()
	cfg := config.Default()
	cfg.Upstreams = map[string]string{xmpptest.Domain: up.Addr()}
	cfg.UpstreamTLS = "plaintext"
	cfg.ConnectTimeout = 5 * time.Second
	if edit != nil {
		edit(&cfg)
	}
	g, err := gateway.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandler(g)
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.Shutdown(ctx)
		srv.Close()
		g.Close()
	})
	return &testServer{h: h, g: g, srv: srv, up: up, url: "ws" + strings.TrimPrefix(srv.URL, "http")}
}

// wsClient is a test's WebSocket client.
type wsClient struct {
	t    *testing.T
	conn net.Conn
}

// dial opens a WebSocket to ts with the xmpp subprotocol.
func (ts *testServer) dial(t *testing.T) *wsClient {
	t.Helper()
	d := ws.Dialer{Protocols: []string{"xmpp"}, Timeout: 5 * time.Second}
	conn, br, hs, err := d.Dial(context.Background(), ts.url)
	if err != nil {
		t.Fatal(err)
	}
	if br != nil {
		t.Fatal("the server sent frames before the client's first message")
	}
	if hs.Protocol != "xmpp" {
		t.Fatalf("subprotocol %q, want xmpp", hs.Protocol)
	}
	t.Cleanup(func() { conn.Close() })
	return &wsClient{t: t, conn: conn}
}

// send sends msg as one text message.
func (c *wsClient) send(msg string) {
	c.t.Helper()
	if err := wsutil.WriteClientText(c.conn, []byte(msg)); err != nil {
		c.t.Fatal(err)
	}
}

// next returns the next text message, failing the test on a close frame
// or anything else.
func (c *wsClient) next() string {
	c.t.Helper()
	msg, op, err := c.read()
	if err != nil {
		c.t.Fatalf("reading a message: %v", err)
	}
	if op != ws.OpText {
		c.t.Fatalf("got a %v frame, want text", op)
	}
	return msg
}

// expect reads the next message and checks it contains each of want.
func (c *wsClient) expect(want ...string) string {
	c.t.Helper()
	msg := c.next()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			c.t.Fatalf("message %q lacks %q", msg, w)
		}
	}
	return msg
}

// read reads the next data message, answering pings; a close frame is
// returned as a wsutil.ClosedError.
func (c *wsClient) read() (string, ws.OpCode, error) {
	c.conn.SetReadDeadline(time.Now().Add(wait.Deadline))
	defer c.conn.SetReadDeadline(time.Time{})
	for {
		h, err := ws.ReadHeader(c.conn)
		if err != nil {
			return "", 0, err
		}
		payload := make([]byte, h.Length)
		if _, err := io.ReadFull(c.conn, payload); err != nil {
			return "", 0, err
		}
		switch h.OpCode {
		case ws.OpPing:
			if err := wsutil.WriteClientMessage(c.conn, ws.OpPong, payload); err != nil {
				return "", 0, err
			}
			continue
		case ws.OpPong:
			continue
		case ws.OpClose:
			code, reason := ws.ParseCloseFrameData(payload)
			return "", ws.OpClose, wsutil.ClosedError{Code: code, Reason: reason}
		}
		return string(payload), h.OpCode, nil
	}
}

// expectClose reads until the server's close frame and checks its code,
// then answers it.
func (c *wsClient) expectClose(code ws.StatusCode) {
	c.t.Helper()
	for {
		msg, _, err := c.read()
		var ce wsutil.ClosedError
		if errors.As(err, &ce) {
			if ce.Code != code {
				c.t.Fatalf("close code %d (%q), want %d", ce.Code, ce.Reason, code)
			}
			wsutil.WriteClientMessage(c.conn, ws.OpClose, ws.NewCloseFrameBody(ce.Code, ""))
			return
		}
		if err != nil {
			c.t.Fatalf("reading until the close frame: %v", err)
		}
		c.t.Fatalf("got %q, want the close frame %d", msg, code)
	}
}

// open sends <open/> to xmpptest.Domain and checks the answer: <open/>
// and the features.
func (c *wsClient) open() {
	c.t.Helper()
	c.send(`<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="` + xmpptest.Domain + `" version="1.0"/>`)
	c.expect(`<open xmlns="urn:ietf:params:xml:ns:xmpp-framing"`, `from="`+xmpptest.Domain+`"`, `id="s1"`, `version="1.0"`)
	c.expect(`<stream:features`)
}
