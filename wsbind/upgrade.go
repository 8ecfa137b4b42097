package wsbind

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gobwas/ws"
)

// subprotocol is the WebSocket subprotocol of XMPP (RFC 7395 §3.1).
const subprotocol = "xmpp"

// Reasons an upgrade is refused, as upgradeError.reason gives them: the
// label of boshd_websocket_upgrades_refused_total (design 003, "Metrics
// and logs"). An admission hook names its own through refuse: the
// design's "limit" or "shutdown". An error it returns without a reason is
// refusedAdmission, which the design does not list: a hook that returns
// one has a refusal the design has no name for.
const (
	refusedHandshake   = "handshake"
	refusedSubprotocol = "subprotocol"
	refusedOrigin      = "origin"
	refusedAdmission   = "admission"
)

// An upgradeError is an upgrade request refused with an HTTP error
// response before anything was hijacked, counted or dialled.
type upgradeError struct {
	status int    // the response's status code
	reason string // what kind of refusal: refusedHandshake, …, or an admission hook's
	msg    string // the response's text
	err    error  // the cause, if any (an admission hook's error)
}

func (e *upgradeError) Error() string {
	s := fmt.Sprintf("wsbind: upgrade refused (%d %s): %s", e.status, e.reason, e.msg)
	if e.err != nil {
		s += ": " + e.err.Error()
	}
	return s
}

func (e *upgradeError) Unwrap() error { return e.err }

// refuse returns the error an admission hook returns to have the upgrade
// refused with status (429 for a client over its own limit, 503 when the
// server is full or stopping) and msg as the response's text; reason is
// the refusal's metric label, and cause, which may be nil, is kept for the
// caller's log.
func refuse(status int, reason, msg string, cause error) error {
	return &upgradeError{status: status, reason: reason, msg: msg, err: cause}
}

// An upgrader checks an HTTP request that asks for an XMPP WebSocket
// (RFC 6455 §4.2.1, RFC 7395 §3.1) and performs the upgrade. It is a
// value: a handler makes one per request, with that request's admission
// hook.
type upgrader struct {
	// checkOrigin reports whether a request's Origin may open a session
	// (RFC 6455 §10.2). It is called only for a request with an Origin
	// header: a client that sends none is not a browser, and is allowed.
	// nil allows only an Origin whose host and port are the request's
	// Host.
	checkOrigin func(r *http.Request) bool
	// admit is called last, once the request is a valid handshake for the
	// xmpp subprotocol from an allowed origin, and before the 101: the
	// place to count the session against the limits, so that nothing is
	// counted for a request refused earlier. An error refuses the
	// upgrade: one made by refuse with its status, reason and text, any
	// other with 503, reason refusedAdmission and its text. If upgrade
	// fails after admit returned nil (the client is gone, the connection
	// could not be hijacked), the caller gives back what admit took. nil
	// admits every request.
	admit func() error
	// timeout bounds writing the 101 response; 0: no bound.
	timeout time.Duration
}

// upgrade checks r in the order of design 003 ("The path of a WebSocket
// session", step 1) and answers a refusal through w as an HTTP error
// response, returning an *upgradeError. Otherwise it answers 101
// Switching Protocols with "Sec-WebSocket-Protocol: xmpp" on the
// connection it hijacks from net/http, and returns it with the bytes the
// client had already sent beyond the request (usually none), which are to
// be read before anything else from conn. net/http's buffers for the
// connection are not kept.
func (u upgrader) upgrade(w http.ResponseWriter, r *http.Request) (conn net.Conn, buffered []byte, err error) {
	if err := u.check(r); err != nil {
		writeRefusal(w, err)
		return nil, nil, err
	}
	if u.admit != nil {
		if err := u.admit(); err != nil {
			var ue *upgradeError
			if !errors.As(err, &ue) {
				ue = &upgradeError{status: http.StatusServiceUnavailable, reason: refusedAdmission, msg: err.Error(), err: err}
			}
			writeRefusal(w, ue)
			return nil, nil, ue
		}
	}
	hu := ws.HTTPUpgrader{
		Timeout:  u.timeout,
		Protocol: func(p string) bool { return p == subprotocol },
	}
	conn, rw, hs, err := hu.Upgrade(r, w)
	if err != nil {
		// The checks above leave gobwas/ws little to refuse; what it does
		// refuse, it has answered on the hijacked connection.
		if conn != nil {
			conn.Close()
		}
		return nil, nil, fmt.Errorf("wsbind: upgrade: %w", err)
	}
	if hs.Protocol != subprotocol {
		conn.Close()
		return nil, nil, fmt.Errorf("wsbind: upgrade: subprotocol %q selected", hs.Protocol)
	}
	if n := rw.Reader.Buffered(); n > 0 {
		buffered = make([]byte, n)
		if _, err := io.ReadFull(rw.Reader, buffered); err != nil {
			conn.Close()
			return nil, nil, fmt.Errorf("wsbind: upgrade: reading bytes buffered by net/http: %w", err)
		}
	}
	return conn, buffered, nil
}

// check returns the first reason to refuse r as an *upgradeError, or nil.
func (u upgrader) check(r *http.Request) *upgradeError {
	bad := func(msg string) *upgradeError {
		return &upgradeError{status: http.StatusBadRequest, reason: refusedHandshake, msg: msg}
	}
	if r.Method != http.MethodGet {
		return &upgradeError{status: http.StatusMethodNotAllowed, reason: refusedHandshake,
			msg: "a WebSocket handshake is a GET request"}
	}
	if r.ProtoMajor != 1 || r.ProtoMinor < 1 {
		return bad("a WebSocket handshake needs HTTP/1.1")
	}
	if !hasToken(r.Header, "Upgrade", "websocket") {
		return bad("not a WebSocket handshake: Upgrade: websocket is required")
	}
	if !hasToken(r.Header, "Connection", "upgrade") {
		return bad("not a WebSocket handshake: Connection: Upgrade is required")
	}
	switch v := r.Header.Values("Sec-WebSocket-Version"); {
	case len(v) == 0:
		return bad("not a WebSocket handshake: Sec-WebSocket-Version is missing")
	case len(v) > 1 || v[0] != "13":
		return &upgradeError{status: http.StatusUpgradeRequired, reason: refusedHandshake,
			msg: "unsupported WebSocket version: only 13 is supported"}
	}
	if k := r.Header.Values("Sec-WebSocket-Key"); len(k) != 1 || !validKey(k[0]) {
		return bad("not a WebSocket handshake: Sec-WebSocket-Key must be 16 bytes in base64")
	}
	if !hasProtocol(r.Header, subprotocol) {
		return &upgradeError{status: http.StatusBadRequest, reason: refusedSubprotocol,
			msg: "the xmpp subprotocol is required"}
	}
	if origin := r.Header.Values("Origin"); len(origin) > 0 {
		allowed := u.checkOrigin
		if allowed == nil {
			allowed = sameHost
		}
		if len(origin) > 1 || !allowed(r) {
			return &upgradeError{status: http.StatusForbidden, reason: refusedOrigin,
				msg: "origin not allowed: " + quoteShort(origin[0])}
		}
	}
	return nil
}

// writeRefusal answers a refused upgrade request with e's status and text,
// and the headers RFC 6455 §4.2.2 and RFC 9110 ask of some of them.
func writeRefusal(w http.ResponseWriter, e *upgradeError) {
	h := w.Header()
	switch e.status {
	case http.StatusMethodNotAllowed:
		h.Set("Allow", http.MethodGet)
	case http.StatusUpgradeRequired:
		// RFC 6455 §4.4: the versions the server understands; RFC 9110
		// §15.5.22: the protocol to upgrade to.
		h.Set("Sec-WebSocket-Version", "13")
		h.Set("Upgrade", "websocket")
		h.Set("Connection", "Upgrade")
	}
	http.Error(w, e.msg, e.status)
}

// hasToken reports whether one of the comma-separated values of the
// header name is token, compared without case (RFC 9110 §5.6.1: Upgrade
// and Connection are such lists).
func hasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// hasProtocol reports whether the client offers the subprotocol p, which
// is compared exactly (RFC 6455 §4.1: the header is a list of tokens, and
// registered names are matched as they are registered).
func hasProtocol(h http.Header, p string) bool {
	for _, v := range h.Values("Sec-WebSocket-Protocol") {
		for t := range strings.SplitSeq(v, ",") {
			if strings.TrimSpace(t) == p {
				return true
			}
		}
	}
	return false
}

// validKey reports whether k is a Sec-WebSocket-Key: 16 bytes in base64
// (RFC 6455 §4.1, item 7).
func validKey(k string) bool {
	if len(k) != 24 {
		return false
	}
	b, err := base64.StdEncoding.DecodeString(k)
	return err == nil && len(b) == 16
}

// sameHost is the origin check when none is given: the Origin's host and
// port are the request's Host (the scheme is ignored, as behind a proxy
// that terminates TLS).
func sameHost(r *http.Request) bool {
	u, err := url.Parse(r.Header.Get("Origin"))
	if err != nil || u.Host == "" {
		return false
	}
	return strings.EqualFold(u.Host, r.Host)
}

// quoteShort quotes s for an error message, cut to 100 bytes: the value
// is the client's.
func quoteShort(s string) string {
	if len(s) > 100 {
		return fmt.Sprintf("%q…", s[:100])
	}
	return fmt.Sprintf("%q", s)
}
