package main

import (
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// fakeWSServer is a minimal XMPP over WebSocket (RFC 7395) server for
// testing boshload: it answers <open/> with features, SASL PLAIN
// (password "pw"), the restart, bind and session, routes <message/>s
// between bound JIDs, and answers <close/> with <close/> and a close
// frame. Knobs make it misbehave or stress the client.
type fakeWSServer struct {
	// Set before the first connection.
	noSubprotocol bool   // upgrade without choosing xmpp
	status        int    // refuse the upgrade with this HTTP status; 0: never
	openError     string // answer <open/> with this stream error condition
	fragment      bool   // send each routed message in two frames, a ping between
	requireSess   bool   // offer <session/> without <optional/>

	opened, closed, pongs atomic.Int64

	mu     sync.Mutex
	routes map[string]*fakeWSConn // bound full JID → connection
	errs   []string
}

// fakeWSConn is one client connection of the fake; wmu orders writes.
type fakeWSConn struct {
	conn net.Conn
	wmu  sync.Mutex
}

func (c *fakeWSConn) write(op ws.OpCode, fin bool, p string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return ws.WriteFrame(c.conn, ws.NewFrame(op, fin, []byte(p)))
}

func (c *fakeWSConn) send(p string) error { return c.write(ws.OpText, true, p) }

func (s *fakeWSServer) fail(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errs = append(s.errs, fmt.Sprintf(format, args...))
}

// newFakeWS starts s on loopback and returns the ws:// URL of its
// endpoint. Errors the fake saw fail the test at its end.
func newFakeWS(t *testing.T, s *fakeWSServer) string {
	t.Helper()
	s.routes = make(map[string]*fakeWSConn)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.status != 0 {
			http.Error(w, "refused", s.status)
			return
		}
		up := ws.HTTPUpgrader{Protocol: func(p string) bool { return p == "xmpp" && !s.noSubprotocol }}
		conn, _, _, err := up.Upgrade(r, w)
		if err != nil {
			s.fail("upgrade: %v", err)
			return
		}
		go s.serve(&fakeWSConn{conn: conn})
	}))
	t.Cleanup(func() {
		srv.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, e := range s.errs {
			t.Errorf("fake server: %s", e)
		}
	})
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/xmpp-websocket"
}

// serve runs one connection until the client closes it.
func (s *fakeWSServer) serve(c *fakeWSConn) {
	defer c.conn.Close()
	var user, jid string
	authed := false
	for {
		msg, err := s.read(c)
		if err != nil {
			return // the client closed the connection, or a close frame
		}
		var e element
		if err := xml.Unmarshal(msg, &e); err != nil {
			s.fail("message %q: %v", msg, err)
			return
		}
		switch {
		case e.is(nsFraming, "open"):
			s.opened.Add(1)
			c.send("<open xmlns='" + nsFraming + "' from='localhost' id='s1' version='1.0' xml:lang='en'/>")
			if s.openError != "" {
				c.send("<stream:error xmlns:stream='" + nsStream + "'><" + s.openError + " xmlns='" + nsStreams + "'/></stream:error>")
				c.send(closeMessage)
				c.conn.Write(ws.CompiledClose)
				return
			}
			if !authed {
				c.send("<stream:features xmlns:stream='" + nsStream + "'><mechanisms xmlns='" + nsSASL + "'><mechanism>PLAIN</mechanism></mechanisms></stream:features>")
				continue
			}
			session := "<session xmlns='" + nsSession + "'><optional/></session>"
			if s.requireSess {
				session = "<session xmlns='" + nsSession + "'/>"
			}
			c.send("<stream:features xmlns:stream='" + nsStream + "'><bind xmlns='" + nsBind + "'/>" + session + "</stream:features>")
		case e.is(nsSASL, "auth"):
			creds, _ := base64.StdEncoding.DecodeString(e.Text)
			parts := strings.Split(string(creds), "\x00")
			if len(parts) != 3 || parts[2] != "pw" {
				c.send("<failure xmlns='" + nsSASL + "'><not-authorized/></failure>")
				continue
			}
			user, authed = parts[1], true
			c.send("<success xmlns='" + nsSASL + "'/>")
		case e.is(nsClient, "iq") && e.child(nsBind, "bind") != nil:
			jid = user + "@localhost/" + e.child(nsBind, "bind").child(nsBind, "resource").Text
			s.mu.Lock()
			s.routes[jid] = c
			s.mu.Unlock()
			c.send("<iq xmlns='jabber:client' type='result' id='" + e.attr("id") + "'><bind xmlns='" + nsBind + "'><jid>" + jid + "</jid></bind></iq>")
		case e.is(nsClient, "iq"):
			c.send("<iq xmlns='jabber:client' type='result' id='" + e.attr("id") + "'/>")
		case e.is(nsClient, "message"):
			s.mu.Lock()
			to := s.routes[e.attr("to")]
			s.mu.Unlock()
			if to == nil {
				s.fail("message to unknown %q", e.attr("to"))
				continue
			}
			// Forwarded as a server does: from added, body escaped anew.
			var body strings.Builder
			xml.EscapeText(&body, []byte(e.child(nsClient, "body").Text))
			out := "<message xmlns='jabber:client' from='" + jid + "' to='" + e.attr("to") + "' type='chat'><body>" + body.String() + "</body></message>"
			if s.fragment {
				half := len(out) / 2
				to.write(ws.OpText, false, out[:half])
				to.write(ws.OpPing, true, "p")
				to.write(ws.OpContinuation, true, out[half:])
			} else {
				to.send(out)
			}
		case e.is(nsClient, "presence"):
		case e.is(nsFraming, "close"):
			s.closed.Add(1)
			s.mu.Lock()
			delete(s.routes, jid)
			s.mu.Unlock()
			c.send(closeMessage)
			c.write(ws.OpClose, true, string(ws.NewCloseFrameBody(ws.StatusNormalClosure, "")))
			return
		default:
			s.fail("unexpected %s", msg)
		}
	}
}

// read reads one text message from the client, answering pings and
// counting pongs.
func (s *fakeWSServer) read(c *fakeWSConn) ([]byte, error) {
	rd := wsutil.NewReader(c.conn, ws.StateServerSide)
	for {
		h, err := rd.NextFrame()
		if err != nil {
			return nil, err
		}
		switch h.OpCode {
		case ws.OpPong:
			s.pongs.Add(1)
			rd.Discard()
			continue
		case ws.OpPing, ws.OpClose:
			c.wmu.Lock()
			err := wsutil.ControlFrameHandler(c.conn, ws.StateServerSide)(h, rd)
			c.wmu.Unlock()
			if err != nil {
				return nil, err
			}
			continue
		case ws.OpText:
			buf := make([]byte, h.Length)
			if _, err := io.ReadFull(rd, buf); err != nil {
				return nil, err
			}
			return buf, nil
		}
		return nil, fmt.Errorf("opcode %v", h.OpCode)
	}
}
