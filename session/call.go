package session

import (
	"context"
	"sync"
	"time"
)

// Handle processes one request of this session and returns its response,
// blocking while the request is held. If ctx ends first (the client went
// away), the request is forgotten and ctx's error returned; whatever
// response it would have had stays cached for a resend of the same rid.
//
// The caller must call sent once it has written the response to the
// client (or failed to): Handle returns a response only after the one
// answered before it was written, so that responses reach the wire in rid
// order (XEP-0124 §8) even though each is written by its own goroutine. A
// writer that takes longer than writeOrderWait is not waited for.
func (s *Session) Handle(ctx context.Context, req Request) (resp *Response, sent func(), err error) {
	return s.Start(req, nil).Wait(ctx)
}

// Call is a request being handled by its session, for a caller that does
// not block while the request is held: see Start. A Call is used by one
// goroutine at a time.
type Call struct {
	s *Session // immutable
	r *request // immutable; nil if answered at once
	// a is the answer, once got; owned by the Call's user.
	a   answer
	got bool
}

// Start processes req like Handle but returns at once, the request held
// if it is to be held. The response is ready when Ready reports so; Wait
// returns it. If the response is not ready when Start returns, notify (if
// not nil) is called once it is, by the goroutine that answered the
// request, after it released the session's lock: notify must be quick.
func (s *Session) Start(req Request, notify func()) *Call {
	var (
		r    *request
		resp *Response
	)
	s.do(func() {
		r, resp = s.acceptLocked(req)
		if r != nil {
			r.notify = notify
		}
	})
	if resp != nil {
		req.Add.close()
		return &Call{s: s, a: answer{resp: resp}, got: true}
	}
	return &r.call
}

// Ready reports whether the response is ready.
func (c *Call) Ready() bool {
	if c.got {
		return true
	}
	select {
	case c.a = <-c.r.done:
		c.got = true
	default:
	}
	return c.got
}

// WaitReady waits until the response is ready, ctx ends or stop
// delivers, and reports whether the response is ready.
func (c *Call) WaitReady(ctx context.Context, stop <-chan time.Time) bool {
	if c.got {
		return true
	}
	select {
	case c.a = <-c.r.done:
		c.got = true
	case <-ctx.Done():
	case <-stop:
	}
	return c.got
}

// Wait returns the response once it is ready and every response answered
// before it has been written, as Handle does; sent must be called once it
// has been written. If ctx ends first, the call is abandoned (see Abandon)
// and ctx's error returned.
func (c *Call) Wait(ctx context.Context) (resp *Response, sent func(), err error) {
	if !c.got {
		select {
		case c.a = <-c.r.done:
			c.got = true
		case <-ctx.Done():
			c.Abandon()
			return nil, func() {}, ctx.Err()
		}
	}
	if c.a.once == nil {
		return c.a.resp, func() {}, nil // answered at once
	}
	c.waitTurn(ctx)
	return c.a.resp, c.a.written, nil
}

// Abandon tells the session that the request's client went away: a held
// request is no longer held, and its response, if any, stays cached for
// a resend of the same rid.
func (c *Call) Abandon() {
	if c.r == nil {
		return
	}
	c.s.do(func() { c.s.abandonLocked(c.r) })
	if c.Ready() && c.a.once != nil {
		c.a.written() // answered as it went away: nobody writes it
	}
}

// writeOrderWait bounds how long a response waits for the one before it to
// be written.
const writeOrderWait = 2 * time.Second

// answer is a response handed to a request, in the order of answering.
// Immutable; sent is closed once, through once.
type answer struct {
	resp *Response
	prev <-chan struct{} // closed once the answer before is written; nil if none
	sent chan struct{}   // closed once this answer is written
	once *sync.Once
}

// sendLocked answers r with resp, after every answer given before.
func (s *Session) sendLocked(r *request, resp *Response) {
	a := answer{resp: resp, prev: s.lastSent, sent: make(chan struct{}), once: new(sync.Once)}
	s.lastSent = a.sent
	if r.gone {
		a.written() // its client left: nothing will be written
	}
	r.done <- a
	if r.notify != nil {
		s.queueLocked(event{f: r.notify})
	}
}

// waitTurn waits until the answer before c's has been written, for
// writeOrderWait at most by the session's clock.
func (c *Call) waitTurn(ctx context.Context) {
	prev := c.a.prev
	if prev == nil {
		return
	}
	select {
	case <-prev:
		return
	default:
	}
	late := make(chan struct{})
	t := c.s.clock.AfterFunc(writeOrderWait, func() { close(late) })
	defer t.Stop()
	select {
	case <-prev:
	case <-late:
	case <-ctx.Done():
	}
}

// written marks a as written. It may be called more than once.
func (a answer) written() { a.once.Do(func() { close(a.sent) }) }
