package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// maxResponseBytes bounds how much of one response boshload reads.
const maxResponseBytes = 1 << 20

// maxAwaitPolls bounds the requests sent while waiting for one answer
// during login (each may come back empty after wait seconds).
const maxAwaitPolls = 5

// client is one BOSH session, driven by its own goroutine, the only one
// that changes its fields. While a request is held, idle runs post on a
// helper goroutine; post reads only fields that never change (cfg, http).
type client struct {
	cfg   *config
	index int // from 1
	// http posts the requests: at most two connections to the manager,
	// like a browser tab (BOSH requests='2'), never shared with another
	// session, so that every session's requests travel on connections
	// of its own source address. Keep-alive is on: the held request
	// reuses the connection of the previous one.
	http *httpClient

	rid           uint64 // the next request's rid
	sid           string // set by create
	authenticated bool   // login completed
	jid           string // the full JID bound at login
	// endLatency is how long the terminate request took, once answered.
	endLatency time.Duration
	// chatState is the chat kept across a relogin; nil until chat.
	chatState *chatState

	// sessionHooks: onHeld and onReleased are called when a request of
	// the idle loop is sent and when it comes back, to count held
	// requests; endSlots bounds the terminate requests.
	sessionHooks
}

// newClient returns session index i's client.
func newClient(cfg *config, i int, dial dialFunc) *client {
	return &client{
		cfg:   cfg,
		index: i,
		http:  newHTTPClient(cfg.url, dial),
		rid:   randomRID(),
	}
}

// close releases the client's connections.
func (c *client) close() {
	c.http.close()
	if c.onResends != nil {
		c.onResends(c.http.resends.Load())
	}
}

// relogin replaces a session that failed with a new one, logged in as
// the same user (--relogin): new connections, a new sid, the same
// resource bound.
func (c *client) relogin(ctx context.Context) error {
	c.close()
	c.http = newHTTPClient(c.cfg.url, c.http.dial)
	c.sid, c.jid, c.authenticated = "", "", false
	return c.setup(ctx)
}

// setup creates the session and, with --login, logs in.
func (c *client) setup(ctx context.Context) error {
	resp, err := c.create(ctx)
	if err == nil && c.cfg.loginUser != "" {
		err = c.login(ctx, resp.find(isFeatures))
	}
	return err
}

// terminateLatency is how long the terminate request took.
func (c *client) terminateLatency() time.Duration { return c.endLatency }

// randomRID returns a random initial rid low enough that a long session
// never reaches 2^53 (XEP-0124 §14.1).
func randomRID() uint64 {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // never fails on Linux
	}
	return uint64(binary.BigEndian.Uint32(b[:]))
}

// nextRID returns the rid of the next request and advances it. Only the
// session's own goroutine calls it.
func (c *client) nextRID() uint64 {
	rid := c.rid
	c.rid++
	return rid
}

// post sends one request body and parses the response. Its deadline is
// the session's wait plus some slack. phase labels a failure.
func (c *client) post(ctx context.Context, phase, body string) (*response, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(c.cfg.wait)*time.Second+requestSlack)
	defer cancel()
	// A push has reached the client when its response's first byte is
	// read (res.first), not when this goroutine gets to run again.
	res, err := c.http.post(ctx, body)
	if err != nil {
		return nil, networkFailure(phase, err)
	}
	data := res.body
	if res.status != http.StatusOK {
		return nil, httpFailure(phase, res.status, data)
	}
	r, err := parseResponse(data)
	if err != nil {
		return nil, protocolFailure(phase, "malformed response", err)
	}
	r.arrived = res.first
	if r.terminated() {
		return r, terminateFailure(phase, r.Condition)
	}
	return r, nil
}

// create opens the session and returns the creation response.
func (c *client) create(ctx context.Context) (*response, error) {
	r, err := c.post(ctx, phaseCreate, createBody(c.nextRID(), c.cfg.domain, c.cfg.wait, c.cfg.hold))
	if err != nil {
		return nil, err
	}
	if r.SID == "" {
		return nil, protocolFailure(phaseCreate, "no sid", errors.New("creation response without sid"))
	}
	c.sid = r.SID
	return r, nil
}

// await sends the request body first and then empty polls until a
// response carries a child for which match holds, at most maxAwaitPolls
// requests in all. what names the awaited element in a failure.
func (c *client) await(ctx context.Context, what string, first string, match func(*element) bool) (*element, error) {
	body := first
	for range maxAwaitPolls {
		r, err := c.post(ctx, phaseLogin, body)
		if err != nil {
			return nil, err
		}
		if e := r.find(match); e != nil {
			return e, nil
		}
		body = sessionBody(c.nextRID(), c.sid, "")
	}
	return nil, protocolFailure(phaseLogin, "no "+what, fmt.Errorf("no %s after %d requests", what, maxAwaitPolls))
}

// login authenticates with SASL PLAIN, restarts the stream and binds a
// resource; features are the stream features of the creation response.
func (c *client) login(ctx context.Context, features *element) error {
	if features == nil {
		var err error
		features, err = c.await(ctx, "stream features", sessionBody(c.nextRID(), c.sid, ""), isFeatures)
		if err != nil {
			return err
		}
	}
	if !offersPlain(features) {
		return protocolFailure(phaseLogin, "PLAIN not offered", errors.New("the server does not offer SASL PLAIN"))
	}
	user := c.cfg.userName(c.index)
	auth := plainAuth(user, c.cfg.loginPass)
	isOutcome := func(e *element) bool { return e.is(nsSASL, "success") || e.is(nsSASL, "failure") }
	outcome, err := c.await(ctx, "SASL outcome", sessionBody(c.nextRID(), c.sid, auth), isOutcome)
	if err != nil {
		return err
	}
	if outcome.is(nsSASL, "failure") {
		cond := "failure"
		if len(outcome.Children) > 0 {
			cond = outcome.Children[0].XMLName.Local
		}
		return &failure{phase: phaseLogin, kind: kindSASL, detail: cond, err: fmt.Errorf("SASL PLAIN as %s failed: %s", user, cond)}
	}

	features, err = c.await(ctx, "features after restart", restartBody(c.nextRID(), c.sid, c.cfg.domain), isFeatures)
	if err != nil {
		return err
	}
	if features.child(nsBind, "bind") == nil {
		return protocolFailure(phaseLogin, "no bind feature", errors.New("no <bind/> after the restart"))
	}
	bound, err := c.awaitResult(ctx, "bind", bindID, bindRequest)
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
		if _, err := c.awaitResult(ctx, "session", sessionID, sessionRequest); err != nil {
			return err
		}
	}
	c.authenticated = true
	return nil
}

// awaitResult sends iq and waits for its result (or error) by id.
func (c *client) awaitResult(ctx context.Context, what, id, iq string) (*element, error) {
	reply, err := c.await(ctx, what+" result", sessionBody(c.nextRID(), c.sid, iq), func(e *element) bool {
		return e.is(nsClient, "iq") && e.attr("id") == id
	})
	if err != nil {
		return nil, err
	}
	if reply.attr("type") != "result" {
		return nil, protocolFailure(phaseLogin, what+" refused", fmt.Errorf("%s: iq type %q", what, reply.attr("type")))
	}
	return reply, nil
}

// idle keeps one request held until loadCtx ends: each time a response
// comes back (wait expired, or a stanza arrived) the next rid is posted.
// The first request carries initial presence for an authenticated
// session.
//
// When loadCtx ends with a request held, and terminate is set, the
// session is ended the way a browser library ends it: a type='terminate'
// request with the next rid, on the second connection, which makes the
// manager answer the held request too. Without terminate the held request
// is abandoned (its connection closed). runCtx bounds everything.
//
// idle returns whether the session was terminated, and the failure that
// ended it early, if any.
func (c *client) idle(loadCtx, runCtx context.Context, terminate bool) (terminated bool, err error) {
	payload := ""
	if c.authenticated {
		payload = initialPresence
	}
	type result struct {
		r   *response
		err error
	}
	for loadCtx.Err() == nil {
		body := sessionBody(c.nextRID(), c.sid, payload)
		payload = ""
		reqCtx, cancel := context.WithCancel(runCtx)
		done := make(chan result, 1)
		c.onHeld()
		go func() {
			r, err := c.post(reqCtx, phaseIdle, body)
			done <- result{r, err}
		}()
		var res result
		select {
		case res = <-done:
			cancel()
			c.onReleased()
		case <-loadCtx.Done():
			if !terminate {
				cancel()
				<-done
				c.onReleased()
				return false, nil
			}
			err := c.terminate(runCtx)
			// The held request is answered once the terminate
			// request arrives; it is no failure however it ends.
			cancel()
			<-done
			c.onReleased()
			return err == nil, err
		}
		if res.err != nil {
			if runCtx.Err() != nil {
				return false, nil // the run was stopped, and the request with it
			}
			return false, res.err
		}
		c.onStanzas(len(res.r.Children))
	}
	if !terminate || runCtx.Err() != nil {
		return false, nil
	}
	err = c.terminate(runCtx)
	return err == nil, err
}

// terminate ends the session with type='terminate'.
func (c *client) terminate(ctx context.Context) error {
	skipped := &failure{phase: phaseTerminate, kind: "skipped", detail: "the run ended first"}
	if ctx.Err() != nil {
		return skipped
	}
	if c.endSlots != nil {
		select {
		case <-ctx.Done():
			return skipped
		case c.endSlots <- struct{}{}:
		}
		defer func() { <-c.endSlots }()
	}
	start := time.Now()
	_, err := c.post(ctx, phaseTerminate, terminateBody(c.nextRID(), c.sid, c.authenticated))
	var f *failure
	if errors.As(err, &f) && f.kind == kindTerminate {
		c.endLatency = time.Since(start)
		return nil // the expected answer
	}
	if err == nil {
		return protocolFailure(phaseTerminate, "not terminated", errors.New("terminate request answered without type='terminate'"))
	}
	return err
}

// isFeatures matches <stream:features/>.
func isFeatures(e *element) bool { return e.is(nsStream, "features") }

// offersPlain reports whether features offer SASL PLAIN.
func offersPlain(features *element) bool {
	mechs := features.child(nsSASL, "mechanisms")
	if mechs == nil {
		return false
	}
	for _, m := range mechs.Children {
		if m.is(nsSASL, "mechanism") && strings.TrimSpace(m.Text) == "PLAIN" {
			return true
		}
	}
	return false
}
