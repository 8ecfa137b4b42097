package wsbind

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/boshd/boshd/config"
	"github.com/boshd/boshd/internal/wait"
	"github.com/boshd/boshd/internal/xmpptest"
)

// TestBadFrames sends, on an open session, each kind of input RFC 6455 or
// RFC 7395 forbids, and checks the close code, that the upstream was
// ended cleanly (the client is not coming back), and that a second
// session kept working meanwhile.
func TestBadFrames(t *testing.T) {
	tests := []struct {
		name    string
		frame   func(c *wsClient)
		want    ws.StatusCode
		message string // a stream error expected before the close frame; "" for none
	}{
		{"binary", func(c *wsClient) { wsutil.WriteClientBinary(c.conn, []byte(message)) }, ws.StatusUnsupportedData, ""},
		{"unmasked", func(c *wsClient) {
			ws.WriteFrame(c.conn, ws.NewTextFrame([]byte(message)))
		}, ws.StatusProtocolError, ""},
		{"invalid UTF-8", func(c *wsClient) { wsutil.WriteClientText(c.conn, []byte("<message><body>\xff</body></message>")) }, ws.StatusInvalidFramePayloadData, ""},
		{"ping over 125 bytes", func(c *wsClient) {
			f := ws.NewPingFrame(bytes.Repeat([]byte("p"), 126))
			f = ws.MaskFrameInPlace(f)
			ws.WriteFrame(c.conn, f)
		}, ws.StatusProtocolError, ""},
		{"reserved bit", func(c *wsClient) {
			f := ws.NewTextFrame([]byte(message))
			f.Header.Rsv = 4
			ws.WriteFrame(c.conn, ws.MaskFrameInPlace(f))
		}, ws.StatusProtocolError, ""},
		{"oversized", func(c *wsClient) {
			c.send(`<message><body>` + strings.Repeat("x", 2048) + `</body></message>`)
		}, ws.StatusMessageTooBig, "policy-violation"},
		{"oversized in fragments", func(c *wsClient) {
			for i, part := range []string{"<message><body>", strings.Repeat("x", 1500), strings.Repeat("y", 1500)} {
				op := ws.OpContinuation
				if i == 0 {
					op = ws.OpText
				}
				f := ws.NewFrame(op, i == 2, []byte(part))
				ws.WriteFrame(c.conn, ws.MaskFrameInPlace(f))
			}
		}, ws.StatusMessageTooBig, "policy-violation"},
		{"two elements", func(c *wsClient) { c.send(message + message) }, ws.StatusNormalClosure, "not-well-formed"},
		{"text around", func(c *wsClient) { c.send("x" + message) }, ws.StatusNormalClosure, "not-well-formed"},
		{"entity", func(c *wsClient) { c.send(`<message><body>&nbsp;</body></message>`) }, ws.StatusNormalClosure, "not-well-formed"},
		{"comment", func(c *wsClient) { c.send(`<message><!-- c --></message>`) }, ws.StatusNormalClosure, "restricted-xml"},
		{"second open", func(c *wsClient) {
			c.send(`<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="example.org" version="1.0"/>`)
		}, ws.StatusNormalClosure, "bad-format"},
		{"close in jabber:client", func(c *wsClient) { c.send(`<close/>`) }, ws.StatusNormalClosure, "invalid-namespace"},
	}
	up := xmpptest.NewRelay(t, features)
	ts := newTestServer(t, up, func(c *config.Config) { c.WebSocketMaxMessageSize = 2048 })
	other := ts.dial(t)
	other.open()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ts.dial(t)
			c.open()
			tt.frame(c)
			if tt.message != "" {
				c.expect(`<stream:error xmlns:stream="http://etherx.jabber.org/streams"><` + tt.message + ` `)
				if got := c.next(); got != closeMessage {
					t.Errorf("got %q, want %q", got, closeMessage)
				}
			}
			c.expectClose(tt.want)
			// The upstream of this session was ended with
			// </stream:stream>: one more than before.
			if !wait.For(wait.Deadline, func() bool { return strings.Count(up.Got(), xmpptest.StreamEnd) == i+1 }) {
				t.Errorf("%d upstreams ended with </stream:stream>, want %d", strings.Count(up.Got(), xmpptest.StreamEnd), i+1)
			}

			// The other session still relays.
			body := "still there " + tt.name
			other.send(`<message to='bob@example.org'><body>` + body + `</body></message>`)
			up.WaitGot(t, body)
		})
	}
}

// TestUpstreamEnds covers the three ways a server's stream ends: a stream
// error (relayed, then <close/>), </stream:stream> (<close/>), and a lost
// connection (close 1011, no stream error, so that the client resumes).
func TestUpstreamEnds(t *testing.T) {
	tests := []struct {
		name string
		end  func(p *xmpptest.Peer)
		want []string // messages before the close frame
		code ws.StatusCode
	}{
		{"stream error", func(p *xmpptest.Peer) { p.Send(xmpptest.StreamError("conflict")) },
			[]string{`<stream:error xmlns:stream='http://etherx.jabber.org/streams'><conflict`, closeMessage}, ws.StatusNormalClosure},
		{"stream end", func(p *xmpptest.Peer) { p.Send(xmpptest.StreamEnd) }, []string{closeMessage}, ws.StatusNormalClosure},
		{"connection lost", func(p *xmpptest.Peer) { p.Conn().Close() }, nil, ws.StatusInternalServerError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := xmpptest.NewRelay(t, features)
			ts := newTestServer(t, up, nil)
			c := ts.dial(t)
			c.open()
			tt.end(up.Peer(t, 0))
			for _, w := range tt.want {
				if got := c.next(); !strings.HasPrefix(got, w) {
					t.Errorf("got %q, want %q…", got, w)
				}
			}
			c.expectClose(tt.code)
		})
	}
}

// TestClientLostDropsUpstream checks that a WebSocket that ends without
// <close/> leaves the upstream without </stream:stream>, so that a server
// with stream management keeps the session for resumption.
func TestClientLostDropsUpstream(t *testing.T) {
	for _, how := range []string{"tcp", "close frame"} {
		t.Run(how, func(t *testing.T) {
			up := xmpptest.NewRelay(t, features)
			ts := newTestServer(t, up, nil)
			c := ts.dial(t)
			c.open()
			c.send(message)
			up.WaitGot(t, message)
			if how == "tcp" {
				c.conn.Close()
			} else {
				wsutil.WriteClientMessage(c.conn, ws.OpClose, ws.NewCloseFrameBody(ws.StatusGoingAway, ""))
			}
			if !wait.For(wait.Deadline, func() bool { return ts.h.Stats().Live == 0 }) {
				t.Fatal("the session did not end")
			}
			p := up.Peer(t, 0)
			p.Conn().SetReadDeadline(time.Now().Add(wait.Deadline))
			if el, err := p.Next(); err == nil {
				t.Errorf("the upstream got %q, want the connection dropped", el)
			}
			if strings.Contains(up.Got(), xmpptest.StreamEnd) {
				t.Errorf("the upstream got </stream:stream>: %q", up.Got())
			}
		})
	}
}

// TestShutdown checks the 1012 close of a graceful shutdown: without
// resumable stream management a session is told system-shutdown and its
// upstream ended cleanly; with it, the client sees only the close code and
// the upstream is dropped, for the client to resume elsewhere.
func TestShutdown(t *testing.T) {
	for _, resumable := range []bool{false, true} {
		name := "plain"
		if resumable {
			name = "resumable"
		}
		t.Run(name, func(t *testing.T) {
			up := xmpptest.NewRelay(t, features)
			ts := newTestServer(t, up, nil)
			c := ts.dial(t)
			c.open()
			if resumable {
				c.send(`<enable xmlns='urn:xmpp:sm:3' resume='true'/>`)
				up.WaitGot(t, `<enable`)
				up.Push(t, `<enabled xmlns='urn:xmpp:sm:3' id='sm1' resume='true'/>`)
				c.expect(`<enabled`)
			}
			done := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), wait.Deadline)
				defer cancel()
				done <- ts.h.Shutdown(ctx)
			}()
			if !resumable {
				c.expect(`<system-shutdown`)
				if got := c.next(); got != closeMessage {
					t.Errorf("got %q, want %q", got, closeMessage)
				}
			}
			c.expectClose(ws.StatusCode(closeServiceRestart))
			if err := <-done; err != nil {
				t.Errorf("Shutdown: %v", err)
			}
			if resumable {
				if strings.Contains(up.Got(), xmpptest.StreamEnd) {
					t.Errorf("the resumable upstream got </stream:stream>")
				}
			} else {
				up.WaitGot(t, xmpptest.StreamEnd)
			}
			// New upgrades are refused.
			d := ws.Dialer{Protocols: []string{"xmpp"}}
			if _, _, _, err := d.Dial(context.Background(), ts.url); err == nil {
				t.Error("an upgrade succeeded after Shutdown")
			}
		})
	}
}
