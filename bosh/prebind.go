package bosh

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/boshd/boshd/gateway"
	"github.com/boshd/boshd/session"
	"github.com/boshd/boshd/xmpp"
)

// prebindWait and prebindHold are the BOSH wait and hold of a pre-bound
// session: those Strophe.js's attach() and Converse.js assume, the wait
// bounded by max_wait.
const (
	prebindWait = 60 * time.Second
	prebindHold = 1
)

// PrebindRequest says whom Handler.Prebind logs in. The JSON request of
// the HTTP endpoint (PrebindHandler) carries the same fields.
type PrebindRequest struct {
	// JID is the account's bare JID, such as alice@example.org; its
	// domain must be served (upstreams). Required.
	JID string
	// Resource is the resource to bind; empty lets the server pick one.
	Resource string
	// Password is the account's password, or a token the server takes
	// as one (ejabberd's JWT authentication, Prosody's token modules).
	// Required. It goes to the upstream server and nowhere else.
	Password string
	// Mechanism is the SASL mechanism, one of xmpp.Mechanisms(); empty
	// picks the strongest the server offers.
	Mechanism string
	// ClientIP is the address of the browser the session is for: the
	// session counts against max_sessions_per_ip for it, and logs show
	// it. Empty counts every such session under one empty address.
	ClientIP string
}

// PrebindSession is a pre-bound session, for the browser to attach to
// (Strophe.js: connection.attach(JID, SID, RID)).
type PrebindSession struct {
	// JID is the full JID bound.
	JID string
	// SID is the BOSH session ID.
	SID string
	// RID is the request ID of the browser's first request.
	RID uint64
	// Wait is the longest boshd holds a request of this session.
	Wait time.Duration
}

// A PrebindError is why Prebind made no session.
type PrebindError struct {
	// Status is the HTTP status that says it: 400 (bad input), 401 (the
	// server refused the credentials), 429 (a session limit), 502 (the
	// upstream server is unreachable or failed), 503 (shutting down).
	Status int
	// Field names the request field at fault (its JSON name, such as
	// "jid"), when Status is 400.
	Field string
	// Msg says what went wrong, in words fit for the caller: never a
	// password, and for 401 nothing but that the login failed.
	Msg string
	// Err is the error behind it, if any, for the logs of the caller.
	// It carries no password either.
	Err error
}

func (e *PrebindError) Error() string {
	msg := "bosh: prebind: " + e.Msg
	if e.Field != "" {
		msg = "bosh: prebind: " + e.Field + ": " + e.Msg
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *PrebindError) Unwrap() error { return e.Err }

// badField returns the error of a bad request field.
func badField(field, format string, args ...any) *PrebindError {
	return &PrebindError{Status: http.StatusBadRequest, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Prebind logs a user in upstream and makes a BOSH session for a browser
// to attach to: single sign-on for a web application that knows its user
// already. The session is made as a client's would be (served domains,
// limits, dialling and STARTTLS as configured), then Prebind logs in with
// SASL (xmpp.Conn.Login) and binds the resource. The session waits
// prebind_attach_timeout for its first request, queueing what the server
// sends meanwhile.
//
// ctx bounds the whole, along with connect_timeout for dialling and again
// for logging in. The error is a *PrebindError.
func (h *Handler) Prebind(ctx context.Context, req PrebindRequest) (*PrebindSession, error) {
	user, target, err := h.checkPrebind(req)
	if err != nil {
		return nil, err
	}
	if h.g.Stopping() {
		return nil, &PrebindError{Status: http.StatusServiceUnavailable, Msg: "shutting down"}
	}
	release, err := h.g.Acquire(req.ClientIP)
	if err != nil {
		h.g.LogRefusal(ctx, req.ClientIP, false, err)
		return nil, &PrebindError{Status: http.StatusTooManyRequests, Msg: err.Error(), Err: err}
	}
	// Until the session is registered, the slot and the stream are
	// this function's to give back, on every path out of it.
	created := false
	var conn *xmpp.Conn
	defer func() {
		if !created {
			release()
			if conn != nil {
				conn.Close()
			}
		}
	}()
	conn, err = h.g.Dial(ctx, target)
	if err != nil {
		h.log.Warn("prebind: upstream connection failed", "domain", target.Domain, "addr", target.Addr, "err", err)
		return nil, &PrebindError{Status: http.StatusBadGateway, Msg: "the XMPP server could not be reached", Err: err}
	}
	lctx, cancel := context.WithTimeout(ctx, h.cfg.ConnectTimeout)
	full, err := conn.Login(lctx, xmpp.Login{Username: user, Password: req.Password, Mechanism: req.Mechanism, Resource: req.Resource})
	cancel()
	if err != nil {
		return nil, h.loginError(target.Domain, req.ClientIP, req.Mechanism, err)
	}
	wait := min(prebindWait, h.cfg.MaxWait.Truncate(time.Second))
	p := session.Params{
		Wait:          wait,
		Hold:          prebindHold,
		Requests:      prebindHold + 1,
		Inactivity:    h.cfg.Inactivity,
		AttachTimeout: h.cfg.PrebindAttachTimeout,
		MaxQueueBytes: h.cfg.MaxQueueBytes,
		ContentType:   defaultContentType,
		Domain:        target.Domain,
		Client:        req.ClientIP,
		Polling:       h.cfg.Polling,
		OnEnd:         release,
	}
	rid := firstRID()
	s, err := h.sessions.Create(p, conn, rid)
	if err != nil {
		return nil, &PrebindError{Status: http.StatusServiceUnavailable, Msg: "shutting down", Err: err}
	}
	h.metrics.SessionCreated()
	created = true
	h.log.Info("session pre-bound", "sid", s.LogID(), "ip", req.ClientIP, "domain", target.Domain, "attach_timeout", p.AttachTimeout)
	return &PrebindSession{JID: full, SID: s.ID, RID: rid + 1, Wait: wait}, nil
}

// checkPrebind validates req and returns the localpart to log in with and
// where the stream goes. It dials nothing.
func (h *Handler) checkPrebind(req PrebindRequest) (user string, target xmpp.Target, err error) {
	if req.JID == "" {
		return "", target, badField("jid", "missing")
	}
	j, perr := jid.Parse(req.JID)
	switch {
	case perr != nil:
		return "", target, badField("jid", "not a JID")
	case j.Localpart() == "":
		return "", target, badField("jid", "has no localpart: a user's JID is needed, such as alice@%s", j.Domainpart())
	case j.Resourcepart() != "":
		return "", target, badField("jid", "must be a bare JID: give the resource in resource")
	}
	if req.Resource != "" {
		if _, err := jid.New(j.Localpart(), j.Domainpart(), req.Resource); err != nil {
			return "", target, badField("resource", "not a valid resource")
		}
	}
	if req.Password == "" {
		return "", target, badField("password", "missing")
	}
	if req.Mechanism != "" && !slices.Contains(xmpp.Mechanisms(), req.Mechanism) {
		return "", target, badField("mechanism", "must be one of %s", strings.Join(xmpp.Mechanisms(), ", "))
	}
	if req.ClientIP != "" {
		if _, err := netip.ParseAddr(req.ClientIP); err != nil {
			return "", target, badField("client_ip", "not an IP address")
		}
	}
	target, err = h.g.Target(j.Domainpart(), "")
	if err != nil {
		var te *gateway.TargetError
		if errors.As(err, &te) {
			return "", target, badField("jid", "domain %q is not served here", j.Domainpart())
		}
		return "", target, err
	}
	return j.Localpart(), target, nil
}

// loginError returns the PrebindError for an error of xmpp.Conn.Login,
// and logs it.
func (h *Handler) loginError(domain, ip, mechanism string, err error) *PrebindError {
	var (
		ae *xmpp.AuthError
		be *xmpp.BindError
	)
	switch {
	case errors.As(err, &ae):
		h.log.Info("prebind: the server refused the credentials", "domain", domain, "ip", ip, "condition", ae.Condition)
		return &PrebindError{Status: http.StatusUnauthorized, Msg: "login failed", Err: err}
	case errors.Is(err, xmpp.ErrNoMechanism) && mechanism != "":
		h.log.Info("prebind: no common SASL mechanism", "domain", domain, "err", err)
		return &PrebindError{Status: http.StatusBadRequest, Field: "mechanism", Msg: "the XMPP server does not offer it", Err: err}
	case errors.As(err, &be) && (be.Condition == "bad-request" || be.Condition == "not-allowed" || be.Condition == "conflict"):
		h.log.Info("prebind: the server refused the resource", "domain", domain, "condition", be.Condition)
		return &PrebindError{Status: http.StatusBadRequest, Field: "resource", Msg: "refused by the XMPP server: " + be.Condition, Err: err}
	}
	h.log.Warn("prebind: login failed upstream", "domain", domain, "err", err)
	return &PrebindError{Status: http.StatusBadGateway, Msg: "the XMPP server failed the login", Err: err}
}

// firstRID returns the rid a pre-bound session starts from, as a client
// would pick it (XEP-0124 §14.1): random, and far enough below MaxRID
// for any session's life.
func firstRID() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return 1 + binary.BigEndian.Uint64(b[:])%(1<<32)
}
