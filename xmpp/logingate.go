package xmpp

import (
	"bytes"
	"context"
)

// A LoginGate bounds how many SASL exchanges are in progress at once on
// the streams of the Dialers that share it. A server such as Prosody
// hashes the password of each login on its one thread: when thousands of
// clients come back at once after a restart, their logins would queue
// there in front of every stanza of the sessions already established. A
// stream that is about to send a client's <auth/> waits at the gate
// instead, and the logins reach the server a few at a time, as fast as it
// completes them.
//
// The gate is best effort: it delays a login, never refuses one.
type LoginGate interface {
	// Enter waits until one more login may begin. It reports false if
	// ctx ended first or the gate gave up waiting (it bounds the wait
	// itself); the login then goes ahead all the same, without a
	// place.
	Enter(ctx context.Context) bool
	// Leave ends a login that Enter let in.
	Leave()
}

// isSASLAuth reports whether el, a whole element as a client sends it,
// is a SASL <auth/> (RFC 6120 §6.4.2): its start tag named auth, with
// the SASL namespace declared on it, as every client does.
func isSASLAuth(el []byte) bool {
	el = bytes.TrimLeft(el, " \t\r\n")
	rest, ok := bytes.CutPrefix(el, []byte("<auth"))
	if !ok || len(rest) == 0 {
		return false
	}
	switch rest[0] {
	case ' ', '\t', '\r', '\n':
	default:
		return false
	}
	end := bytes.IndexByte(rest, '>')
	if end < 0 {
		return false
	}
	return bytes.Contains(rest[:end], []byte(nsSASL))
}

// awaitLogin waits at c's LoginGate when p starts a SASL exchange. It
// returns at once when there is no gate, p holds no <auth/>, or c is in
// a login already. Close and Drop end the wait.
func (c *Conn) awaitLogin(p [][]byte) {
	if c.logins == nil {
		return
	}
	auth := false
	for _, el := range p {
		if isSASLAuth(el) {
			auth = true
			break
		}
	}
	if !auth {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c.mu.Lock()
	if c.inLogin || c.closing || c.sockClosed || c.isDropped() {
		c.mu.Unlock()
		return
	}
	c.cancelLogin = cancel
	c.mu.Unlock()

	entered := c.logins.Enter(ctx)

	c.mu.Lock()
	defer c.mu.Unlock()
	c.cancelLogin = nil
	if !entered {
		return
	}
	if c.closing || c.sockClosed || c.isDropped() {
		c.logins.Leave()
		return
	}
	c.inLogin = true
}

// endLogin gives c's place at the LoginGate back, if it holds one: the
// server answered the exchange (<success/> or <failure/>), or the stream
// ended. It also ends a wait at the gate (Close, Drop).
func (c *Conn) endLogin() {
	if c.logins == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancelLogin != nil {
		c.cancelLogin()
	}
	if c.inLogin {
		c.inLogin = false
		c.logins.Leave()
	}
}
