package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/boshd/boshd/internal/rawxml"
	"github.com/gobwas/ws"
)

// Failure kinds of XMPP over WebSocket only.
const (
	kindStreamError = "stream-error" // a <stream:error/>; detail is the condition
	kindClosed      = "closed"       // the server ended the stream or the connection; detail says how
)

// maxAwaitMessages bounds the messages read while waiting for one answer
// during setup.
const maxAwaitMessages = 16

// subprotocol is the WebSocket subprotocol of XMPP (RFC 7395 §3.1).
const subprotocol = "xmpp"

// wsClient is one XMPP over WebSocket (RFC 7395) session: one WebSocket
// connection, set up and logged in as a BOSH session is (the same
// stanzas, each a message of its own), then idle or chatting until the
// load ends, and ended with <close/>.
//
// The session's goroutine sets it up and then reads it; while chatting,
// a second goroutine writes the messages due (chat, wsrun.go). Fields
// other than ws are the session goroutine's alone; ws orders writes
// itself.
type wsClient struct {
	sessionHooks
	cfg   *config // immutable
	index int     // from 1; immutable
	dial  dialFunc

	ws            *wsConn // set by setup
	in            inspector
	authenticated bool          // login completed
	jid           string        // the full JID bound at login
	endLatency    time.Duration // from our <close/> to the server's
}

// newWSClient returns session index i's client, dialling with dial.
func newWSClient(cfg *config, i int, dial dialFunc) *wsClient {
	return &wsClient{cfg: cfg, index: i, dial: dial}
}

// answerTimeout bounds each answer awaited, as a BOSH request's deadline
// (wait plus requestSlack) does.
func (c *wsClient) answerTimeout() time.Duration {
	return time.Duration(c.cfg.wait)*time.Second + requestSlack
}

// close closes the connection, if any.
func (c *wsClient) close() {
	if c.ws != nil {
		c.ws.conn.Close()
	}
}

// terminateLatency is the time from our <close/> to the server's.
func (c *wsClient) terminateLatency() time.Duration { return c.endLatency }

// poll is BOSH only; parseFlags refuses --poll with --transport
// websocket.
func (c *wsClient) poll(context.Context, context.Context, *hub, bool) (bool, error) {
	return false, errors.New("polling is BOSH only")
}

// setup dials, upgrades with the subprotocol xmpp, opens the stream and,
// with --login, logs in. ctx ending interrupts it.
func (c *wsClient) setup(ctx context.Context) error {
	var status int
	var statusBody []byte
	d := ws.Dialer{
		NetDial:   c.dial,
		Protocols: []string{subprotocol},
		Timeout:   c.answerTimeout(),
		// The response's body is not read: the server may keep the
		// connection open after it.
		OnStatusError: func(code int, reason []byte, _ io.Reader) {
			status = code
			statusBody = append([]byte(nil), reason...)
		},
	}
	conn, br, hs, err := d.Dial(ctx, c.cfg.url.String())
	if err != nil {
		if status != 0 {
			return httpFailure(phaseCreate, status, statusBody)
		}
		return networkFailure(phaseCreate, err)
	}
	c.ws = newWSConn(conn, br)
	if hs.Protocol != subprotocol {
		return protocolFailure(phaseCreate, "no xmpp subprotocol",
			fmt.Errorf("the server chose subprotocol %q, not %q (RFC 7395 §3.1)", hs.Protocol, subprotocol))
	}
	// ctx's end interrupts a read or write in progress.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	features, err := c.open(phaseCreate)
	if err == nil && c.cfg.loginUser != "" {
		err = c.login(features)
	}
	if !stop() {
		return networkFailure(phaseCreate, ctx.Err())
	}
	if err != nil {
		return err
	}
	conn.SetDeadline(time.Time{})
	return nil
}

// open writes <open/> and returns the stream features that follow the
// server's <open/>. phase labels a failure.
func (c *wsClient) open(phase string) (*element, error) {
	if err := c.ws.writeText([]byte(openMessage(c.cfg.domain))); err != nil {
		return nil, networkFailure(phase, err)
	}
	if _, err := c.await(phase, "<open/>", func(el rawxml.Element) bool { return isElement(el, nsFraming, "open") }); err != nil {
		return nil, err
	}
	el, err := c.await(phase, "stream features", func(el rawxml.Element) bool { return isElement(el, nsStream, "features") })
	if err != nil {
		return nil, err
	}
	features, err := decodeElement(el)
	if err != nil {
		return nil, protocolFailure(phase, "malformed features", err)
	}
	return features, nil
}

// await reads messages until one for which match holds, at most
// maxAwaitMessages, each within answerTimeout, and returns it (valid
// until the next read). A stream error or the end of the stream fails.
func (c *wsClient) await(phase, what string, match func(rawxml.Element) bool) (rawxml.Element, error) {
	for range maxAwaitMessages {
		c.ws.conn.SetReadDeadline(time.Now().Add(c.answerTimeout()))
		msg, _, err := c.ws.readMessage()
		if err != nil {
			return rawxml.Element{}, readFailure(phase, err)
		}
		el, err := parseMessage(msg)
		if err != nil {
			return rawxml.Element{}, protocolFailure(phase, "malformed message", fmt.Errorf("%w: %q", err, clip(msg)))
		}
		if match(el) {
			return el, nil
		}
		if f := c.streamEnd(phase, el); f != nil {
			return rawxml.Element{}, f
		}
	}
	return rawxml.Element{}, protocolFailure(phase, "no "+what, fmt.Errorf("no %s in %d messages", what, maxAwaitMessages))
}

// streamEnd returns the failure that el, a stream error or <close/>,
// is; nil for any other element. After a stream error or the server's
// <close/>, the stream is over: the connection is closed.
func (c *wsClient) streamEnd(phase string, el rawxml.Element) *failure {
	switch {
	case isElement(el, nsStream, "error"):
		cond := c.in.firstChild(el.Raw, nsStreams)
		if cond == "" {
			cond = "(no condition)"
		}
		c.ws.conn.Close()
		return &failure{phase: phase, kind: kindStreamError, detail: cond, err: fmt.Errorf("stream error: %q", clip(el.Raw))}
	case isElement(el, nsFraming, "close"):
		c.ws.conn.Close()
		return &failure{phase: phase, kind: kindClosed, detail: "server <close/>"}
	}
	return nil
}

// readFailure classifies an error reading a message.
func readFailure(phase string, err error) *failure {
	var ce *closeError
	if errors.As(err, &ce) {
		return &failure{phase: phase, kind: kindClosed, detail: "close frame " + strconv.Itoa(int(ce.code)), err: err}
	}
	if errors.Is(err, errProtocol) {
		return protocolFailure(phase, "websocket", err)
	}
	return networkFailure(phase, err)
}

// clip shortens b for an error message.
func clip(b []byte) []byte {
	const max = 200
	if len(b) > max {
		return b[:max]
	}
	return b
}

// login authenticates with SASL PLAIN, restarts the stream with a new
// <open/> (RFC 7395 §3.5), binds a resource and starts a session if the
// server requires one: as client.login does over BOSH.
func (c *wsClient) login(features *element) error {
	if !offersPlain(features) {
		return protocolFailure(phaseLogin, "PLAIN not offered", errors.New("the server does not offer SASL PLAIN"))
	}
	user := c.cfg.userName(c.index)
	if err := c.ws.writeText([]byte(plainAuth(user, c.cfg.loginPass))); err != nil {
		return networkFailure(phaseLogin, err)
	}
	outcome, err := c.await(phaseLogin, "SASL outcome", func(el rawxml.Element) bool {
		return isElement(el, nsSASL, "success") || isElement(el, nsSASL, "failure")
	})
	if err != nil {
		return err
	}
	if isElement(outcome, nsSASL, "failure") {
		cond := c.in.firstChild(outcome.Raw, nsSASL)
		if cond == "" {
			cond = "failure"
		}
		return &failure{phase: phaseLogin, kind: kindSASL, detail: cond, err: fmt.Errorf("SASL PLAIN as %s failed: %s", user, cond)}
	}

	features, err = c.open(phaseLogin)
	if err != nil {
		return err
	}
	if features.child(nsBind, "bind") == nil {
		return protocolFailure(phaseLogin, "no bind feature", errors.New("no <bind/> after the restart"))
	}
	bound, err := c.awaitResult("bind", bindID, bindRequest)
	if err != nil {
		return err
	}
	if j := bound.child(nsBind, "bind").child(nsBind, "jid"); j != nil {
		c.jid = strings.TrimSpace(j.Text)
	}
	if c.jid == "" {
		return protocolFailure(phaseLogin, "no bound jid", errors.New("bind result without a <jid/>"))
	}
	if s := features.child(nsSession, "session"); s != nil && s.child(nsSession, "optional") == nil {
		if _, err := c.awaitResult("session", sessionID, sessionRequest); err != nil {
			return err
		}
	}
	c.authenticated = true
	return nil
}

// awaitResult sends iq and waits for its result (or error) by id.
func (c *wsClient) awaitResult(what, id, iq string) (*element, error) {
	if err := c.ws.writeText([]byte(iq)); err != nil {
		return nil, networkFailure(phaseLogin, err)
	}
	var reply *element
	var decodeErr error
	_, err := c.await(phaseLogin, what+" result", func(el rawxml.Element) bool {
		if !isElement(el, nsClient, "iq") {
			return false
		}
		e, err := decodeElement(el)
		if err != nil {
			decodeErr = err
			return true
		}
		if e.attr("id") != id {
			return false
		}
		reply = e
		return true
	})
	if err != nil {
		return nil, err
	}
	if decodeErr != nil {
		return nil, protocolFailure(phaseLogin, "malformed iq", decodeErr)
	}
	if reply.attr("type") != "result" {
		return nil, protocolFailure(phaseLogin, what+" refused", fmt.Errorf("%s: iq type %q", what, reply.attr("type")))
	}
	return reply, nil
}
