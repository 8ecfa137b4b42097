package integration

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// A small XMPP over WebSocket client (RFC 7395) for the tests of boshd's
// WebSocket endpoint (websocket_*_test.go): a gobwas/ws client connection,
// one reader goroutine that answers pings and the server's close frame,
// parses each text message as a standalone document and, once stream
// management is on, counts the stanzas it receives and answers <r/>.

// nsFraming is the namespace of RFC 7395's <open/> and <close/>.
const nsFraming = "urn:ietf:params:xml:ns:xmpp-framing"

// serverClose is the one form of <close/> boshd sends (design 003), the
// only one Strophe.js takes as a server's close.
const serverClose = `<close xmlns="urn:ietf:params:xml:ns:xmpp-framing" />`

// wsMessage is one text message from the server.
type wsMessage struct {
	Raw string   // as it came
	El  *Element // parsed; nil if it did not parse
	Err error    // why it did not parse
}

// wsClient is one XMPP over WebSocket session of a test.
type wsClient struct {
	tb   testing.TB
	name string
	conn net.Conn

	wmu sync.Mutex // orders writes: the test's, and the reader's pongs, acks and close

	mu     sync.Mutex
	notify chan struct{} // closed and replaced on every change below
	queue  []*wsMessage  // received and not yet taken by WaitFor
	all    []string      // every message received, for Messages
	// closeCode and closeReason are the server's close frame's, once
	// closeSeen; readErr is what ended reading (io.EOF once the server
	// closed the TCP connection after its close frame).
	closeSeen   bool
	closeCode   ws.StatusCode
	closeReason string
	readErr     error
	// Stream management (XEP-0198): on once <enabled/> or <resumed/>
	// came; h counts the stanzas received since, and autoAck answers
	// the server's <r/> with it.
	smOn    bool
	h       uint32
	autoAck bool
	seq     int
	done    chan struct{} // closed when the reader returns
}

// dialWS opens a WebSocket to url with the xmpp subprotocol and starts
// its reader. header, if not nil, is added to the handshake. The
// connection is closed in tb's cleanup.
func dialWS(tb testing.TB, name, url string, header http.Header) *wsClient {
	tb.Helper()
	c, err := tryDialWS(name, url, header)
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	c.tb = tb
	tb.Cleanup(c.Kill)
	return c
}

// tryDialWS is dialWS returning the error, for a refused upgrade (a
// ws.StatusError holds the HTTP status). Its caller sets tb.
func tryDialWS(name, url string, header http.Header) (*wsClient, error) {
	d := ws.Dialer{Protocols: []string{"xmpp"}, Timeout: eventTimeout}
	if header != nil {
		d.Header = ws.HandshakeHeaderHTTP(header)
	}
	conn, br, hs, err := d.Dial(context.Background(), url)
	if err != nil {
		return nil, err
	}
	if hs.Protocol != "xmpp" {
		conn.Close()
		return nil, fmt.Errorf("subprotocol %q, want xmpp", hs.Protocol)
	}
	c := &wsClient{name: name, conn: conn, notify: make(chan struct{}), done: make(chan struct{}), autoAck: true}
	var r io.Reader = conn
	if br != nil {
		r = io.MultiReader(br, conn)
	}
	go c.read(bufio.NewReader(r))
	return c, nil
}

// changedLocked wakes the waiters.
func (c *wsClient) changedLocked() {
	close(c.notify)
	c.notify = make(chan struct{})
}

// read reads frames until the connection ends. It runs on its own
// goroutine and never touches tb.
func (c *wsClient) read(r *bufio.Reader) {
	defer close(c.done)
	var msg []byte
	for {
		h, err := ws.ReadHeader(r)
		if err != nil {
			c.ended(err)
			return
		}
		payload := make([]byte, h.Length)
		if _, err := io.ReadFull(r, payload); err != nil {
			c.ended(err)
			return
		}
		if h.Masked {
			ws.Cipher(payload, h.Mask, 0)
		}
		switch h.OpCode {
		case ws.OpPing:
			c.write(func() error { return wsutil.WriteClientMessage(c.conn, ws.OpPong, payload) })
			continue
		case ws.OpPong:
			continue
		case ws.OpClose:
			code, reason := ws.ParseCloseFrameData(payload)
			c.mu.Lock()
			c.closeSeen, c.closeCode, c.closeReason = true, code, reason
			c.changedLocked()
			c.mu.Unlock()
			// RFC 6455 §5.5.1: echo the code; the server then closes
			// the TCP connection, which ends this loop with EOF.
			c.write(func() error {
				return wsutil.WriteClientMessage(c.conn, ws.OpClose, ws.NewCloseFrameBody(code, ""))
			})
			continue
		}
		msg = append(msg, payload...)
		if !h.Fin {
			continue
		}
		if ack := c.received(string(msg)); ack != "" {
			c.write(func() error { return wsutil.WriteClientText(c.conn, []byte(ack)) })
		}
		msg = nil
	}
}

// write performs one write under wmu, bounded by eventTimeout.
func (c *wsClient) write(f func() error) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.conn.SetWriteDeadline(time.Now().Add(eventTimeout))
	return f()
}

// received queues one text message, counting it for stream management,
// and returns the ack to send, if it is the server's <r/>.
func (c *wsClient) received(raw string) (ack string) {
	m := &wsMessage{Raw: raw}
	m.El, m.Err = parseDocument([]byte(raw))
	c.mu.Lock()
	defer c.mu.Unlock()
	c.queue = append(c.queue, m)
	c.all = append(c.all, raw)
	c.changedLocked()
	e := m.El
	switch {
	case e == nil:
	case e.Is(nsSM3, "enabled"), e.Is(nsSM3, "resumed"):
		c.smOn = true
	case c.smOn && (e.Is(nsClient, "message") || e.Is(nsClient, "presence") || e.Is(nsClient, "iq")):
		c.h++
	case c.smOn && c.autoAck && e.Is(nsSM3, "r"):
		return fmt.Sprintf("<a xmlns='%s' h='%d'/>", nsSM3, c.h)
	}
	return ""
}

// ended records why reading stopped.
func (c *wsClient) ended(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.readErr = err
	c.changedLocked()
}

// Send sends s as one text message.
func (c *wsClient) Send(s string) {
	c.tb.Helper()
	if err := c.write(func() error { return wsutil.WriteClientText(c.conn, []byte(s)) }); err != nil {
		c.tb.Fatalf("%s: sending %s: %v", c.name, s, err)
	}
}

// SendFrame writes one client frame of op with payload as it is (masked,
// as a client must), for frames boshd must refuse.
func (c *wsClient) SendFrame(op ws.OpCode, payload []byte) {
	c.tb.Helper()
	if err := c.write(func() error { return wsutil.WriteClientMessage(c.conn, op, payload) }); err != nil {
		c.tb.Fatalf("%s: sending a %v frame: %v", c.name, op, err)
	}
}

// NextID returns a fresh stanza id.
func (c *wsClient) NextID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	return fmt.Sprintf("%s-%d", c.name, c.seq)
}

// describeLocked lists what is queued and how the connection stands.
func (c *wsClient) describeLocked() string {
	parts := make([]string, len(c.queue))
	for i, m := range c.queue {
		parts[i] = m.Raw
	}
	s := fmt.Sprintf("queued: [%s]", strings.Join(parts, " "))
	if c.closeSeen {
		s += fmt.Sprintf("; close frame %d %q", c.closeCode, c.closeReason)
	}
	if c.readErr != nil {
		s += fmt.Sprintf("; reading ended: %v", c.readErr)
	}
	return s
}

// Next removes and returns the next message, whatever it is, waiting up
// to eventTimeout; it fails tb if the connection ends first.
func (c *wsClient) Next(what string) *wsMessage {
	c.tb.Helper()
	return c.waitMessage(what, func(*wsMessage) bool { return true })
}

// WaitFor removes and returns the first queued element that matches,
// waiting up to eventTimeout; the messages before it stay queued.
func (c *wsClient) WaitFor(what string, match func(*Element) bool) *Element {
	c.tb.Helper()
	return c.waitMessage(what, func(m *wsMessage) bool { return m.El != nil && match(m.El) }).El
}

func (c *wsClient) waitMessage(what string, match func(*wsMessage) bool) *wsMessage {
	c.tb.Helper()
	timer := time.NewTimer(eventTimeout)
	defer timer.Stop()
	for {
		c.mu.Lock()
		if m, ok := takeFirst(&c.queue, match); ok {
			c.mu.Unlock()
			return m
		}
		over, state, ch := c.closeSeen || c.readErr != nil, c.describeLocked(), c.notify
		c.mu.Unlock()
		if over {
			c.tb.Fatalf("%s: waiting for %s: the connection ended (%s)", c.name, what, state)
		}
		select {
		case <-ch:
		case <-timer.C:
			c.tb.Fatalf("%s: no %s within %v (%s)", c.name, what, eventTimeout, state)
		}
	}
}

// Queued returns the messages received and not taken, and empties the
// queue.
func (c *wsClient) Queued() []*wsMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	q := c.queue
	c.queue = nil
	return q
}

// WaitClosed waits up to eventTimeout for the server's close frame and
// for the connection to end after it, and returns the frame's code and
// reason. What came before the close frame stays queued.
func (c *wsClient) WaitClosed() (ws.StatusCode, string) {
	c.tb.Helper()
	select {
	case <-c.done:
	case <-time.After(eventTimeout):
		c.mu.Lock()
		state := c.describeLocked()
		c.mu.Unlock()
		c.tb.Fatalf("%s: the server did not close the connection within %v (%s)", c.name, eventTimeout, state)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closeSeen {
		c.tb.Fatalf("%s: the connection ended without a close frame (%s)", c.name, c.describeLocked())
	}
	return c.closeCode, c.closeReason
}

// CheckClosedCleanly fails tb unless, after its close frame, the server
// closed the TCP connection cleanly (RFC 6455 §7.1.1: the server closes
// it once the closing handshake is over; a reset says it did not wait
// for the client's close frame, which it must then have left unread).
func (c *wsClient) CheckClosedCleanly() {
	c.tb.Helper()
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.readErr != nil && !errors.Is(c.readErr, io.EOF) {
		c.tb.Errorf("%s: after the close frame: %v, want the server to close the TCP connection once it has the client's close frame", c.name, c.readErr)
	}
}

// failing reports whether code is one with which an endpoint fails the
// WebSocket connection (RFC 6455 §7.1.7: a protocol error, a message it
// cannot accept), closing the TCP connection without waiting for the
// other's close frame.
func failing(code ws.StatusCode) bool {
	switch code {
	case ws.StatusProtocolError, ws.StatusUnsupportedData, ws.StatusInvalidFramePayloadData, ws.StatusPolicyViolation, ws.StatusMessageTooBig:
		return true
	}
	return false
}

// ExpectEnd reads the messages left and the close frame and checks them:
// want are the messages the server sends last, in order (a stream error
// is matched by its condition, given as "error:CONDITION"; the server's
// <open/> by "open"; anything else by its exact text, as serverClose),
// then the close frame with code, and, unless code is one that fails the
// connection, a clean close of the TCP connection (CheckClosedCleanly).
// Stanzas still queued before them are let go; anything else before them
// fails tb.
func (c *wsClient) ExpectEnd(code ws.StatusCode, want ...string) {
	c.tb.Helper()
	got, reason := c.WaitClosed()
	if !failing(code) {
		c.CheckClosedCleanly()
	}
	msgs := c.Queued()
	if len(msgs) < len(want) {
		c.tb.Fatalf("%s: the session ended with the messages %s, want %q last (close %d %q)", c.name, rawOf(msgs), want, got, reason)
	}
	before, last := msgs[:len(msgs)-len(want)], msgs[len(msgs)-len(want):]
	for _, m := range before {
		if m.El == nil || m.El.Name.Space != nsClient {
			c.tb.Errorf("%s: %s before the end %q", c.name, m.Raw, want)
		}
	}
	for i, w := range want {
		m := last[i]
		if cond, ok := strings.CutPrefix(w, "error:"); ok {
			if m.El == nil || !m.El.Is(nsStream, "error") || m.El.Child(nsStreams, cond) == nil {
				c.tb.Errorf("%s: message %d of the end is %s, want a <stream:error/> with <%s/>", c.name, i, m.Raw, cond)
			}
		} else if w == "open" {
			if m.El == nil || !m.El.Is(nsFraming, "open") {
				c.tb.Errorf("%s: message %d of the end is %s, want <open/>", c.name, i, m.Raw)
			}
		} else if m.Raw != w {
			c.tb.Errorf("%s: message %d of the end is %s, want exactly %s", c.name, i, m.Raw, w)
		}
	}
	if got != code {
		c.tb.Errorf("%s: close code %d (%q), want %d", c.name, got, reason, code)
	}
}

// rawOf lists messages as they came.
func rawOf(msgs []*wsMessage) string {
	parts := make([]string, len(msgs))
	for i, m := range msgs {
		parts[i] = m.Raw
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// Cut closes the TCP connection at once, with a reset and no close frame,
// as a client losing its network or killed does, and waits for the
// reader to stop.
func (c *wsClient) Cut() {
	if tcp, ok := c.conn.(*net.TCPConn); ok {
		tcp.SetLinger(0)
	}
	c.conn.Close()
	<-c.done
}

// Kill is Cut without waiting: for cleanups.
func (c *wsClient) Kill() { c.conn.Close() }

// H returns how many stanzas the client received since stream
// management was enabled or resumed, counting from SetH.
func (c *wsClient) H() uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.h
}

// SetH sets the count of stanzas handled, before a <resume/>: the count
// of the session resumed.
func (c *wsClient) SetH(h uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.h = h
}

// Open sends <open/> for domain and returns the features that follow
// the server's <open/>.
func (c *wsClient) Open(domain string) (open, features *Element) {
	c.tb.Helper()
	c.Send(fmt.Sprintf(`<open xmlns="%s" to="%s" version="1.0"/>`, nsFraming, domain))
	open = c.WaitFor("<open/>", func(e *Element) bool { return e.Is(nsFraming, "open") })
	features = c.WaitFor("<stream:features/>", isFeatures)
	return open, features
}

// wsLogin is what Login saw on the way.
type wsLogin struct {
	JID             string   // the bound full JID; empty if not bound
	Features        *Element // before authentication
	RestartFeatures *Element // after the restart
}

// Authenticate opens the stream to domain and authenticates with SASL,
// restarting the stream after success (RFC 7395 §3.7); it returns what it
// saw, not yet bound.
func (c *wsClient) Authenticate(domain, mechanism, user, password string) wsLogin {
	c.tb.Helper()
	var res wsLogin
	_, res.Features = c.Open(domain)
	final := authenticate(c.tb, c.name, c, res.Features, mechanism, user, password)
	if !final.Is(nsSASL, "success") {
		c.tb.Fatalf("%s: SASL %s failed: %s", c.name, mechanism, final)
	}
	_, res.RestartFeatures = c.Open(domain)
	return res
}

// Login authenticates user to p and binds resource.
func (c *wsClient) Login(p *prosody, mechanism, user, resource string) wsLogin {
	c.tb.Helper()
	res := c.Authenticate(p.Domain, mechanism, user, p.Passwords[user])
	if res.RestartFeatures.Child(nsBind, "bind") == nil {
		c.tb.Fatalf("%s: no <bind/> after the restart: %s", c.name, res.RestartFeatures)
	}
	reply := c.MustIQ("set", "", fmt.Sprintf("<bind xmlns='%s'><resource>%s</resource></bind>", nsBind, escape(resource)))
	res.JID = strings.TrimSpace(reply.Child(nsBind, "bind").ChildText(nsBind, "jid"))
	if res.JID == "" {
		c.tb.Fatalf("%s: bind result without jid: %s", c.name, reply)
	}
	return res
}

// IQ sends an iq of type typ (to may be empty) with the inner XML and
// waits for its result or error.
func (c *wsClient) IQ(typ, to, inner string) *Element {
	c.tb.Helper()
	return sendIQ(c, typ, to, inner)
}

// MustIQ is IQ failing tb unless the reply is a result.
func (c *wsClient) MustIQ(typ, to, inner string) *Element {
	c.tb.Helper()
	return mustResult(c.tb, c.name, typ, inner, c.IQ(typ, to, inner))
}

// Sync makes sure the server has processed everything sent so far.
func (c *wsClient) Sync() {
	c.tb.Helper()
	c.MustIQ("get", prosodyDomain, "<ping xmlns='"+nsPing+"'/>")
}

// EnableSM enables resumable stream management and returns the stream
// id to resume (XEP-0198 §3).
func (c *wsClient) EnableSM() string {
	c.tb.Helper()
	c.Send("<enable xmlns='" + nsSM3 + "' resume='true'/>")
	e := c.WaitFor("<enabled/> or <failed/>", func(e *Element) bool { return e.Is(nsSM3, "enabled") || e.Is(nsSM3, "failed") })
	if !e.Is(nsSM3, "enabled") || e.Attr("id") == "" {
		c.tb.Fatalf("%s: stream management not enabled for resumption: %s", c.name, e)
	}
	if r := e.Attr("resume"); r != "true" && r != "1" {
		c.tb.Fatalf("%s: <enabled/> without resume: %s", c.name, e)
	}
	return e.Attr("id")
}

// Resume resumes the stream previd with the count h (XEP-0198 §5) on a
// stream already authenticated and restarted, and returns <resumed/>.
func (c *wsClient) Resume(previd string, h uint32) *Element {
	c.tb.Helper()
	c.SetH(h)
	c.Send(fmt.Sprintf("<resume xmlns='%s' previd='%s' h='%d'/>", nsSM3, escape(previd), h))
	e := c.WaitFor("<resumed/> or <failed/>", func(e *Element) bool { return e.Is(nsSM3, "resumed") || e.Is(nsSM3, "failed") })
	if !e.Is(nsSM3, "resumed") {
		c.tb.Fatalf("%s: resumption refused: %s", c.name, e)
	}
	if got, err := strconv.ParseUint(e.Attr("h"), 10, 32); err != nil {
		c.tb.Errorf("%s: <resumed/> with h %q: %v", c.name, e.Attr("h"), err)
	} else {
		c.tb.Logf("%s: resumed; the server had %d of ours", c.name, got)
	}
	return e
}
