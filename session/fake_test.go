package session

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/boshd/boshd/internal/wait"
)

// fakeClock is a Clock whose time moves only when Advance is called.
type fakeClock struct {
	// bomb, when set, makes the next Now panic with errBomb: a bug in a
	// session's locked section, which asks the time in most of them.
	bomb atomic.Bool

	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

// errBomb is the panic of an armed fakeClock.
var errBomb = errors.New("bomb under the session's lock")

type fakeTimer struct {
	c    *fakeClock
	when time.Time
	f    func()
	done bool
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1e9, 0)} }

func (c *fakeClock) Now() time.Time {
	if c.bomb.CompareAndSwap(true, false) {
		panic(errBomb)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, when: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.done
	t.done = true
	return was
}

// pending reports whether a timer is due d from now.
func (c *fakeClock) pending(d time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.timers {
		if !t.done && t.when.Equal(c.now.Add(d)) {
			return true
		}
	}
	return false
}

// Advance moves time forward by d, running due timers in order, in the
// caller's goroutine.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		sort.SliceStable(c.timers, func(i, j int) bool { return c.timers[i].when.Before(c.timers[j].when) })
		var due *fakeTimer
		for _, t := range c.timers {
			if !t.done && !t.when.After(end) {
				due = t
				break
			}
		}
		if due == nil {
			c.now = end
			c.mu.Unlock()
			return
		}
		due.done = true
		c.now = due.when
		c.mu.Unlock()
		due.f()
	}
}

// fakeUpstream is an Upstream scripted by the test: elements sent on in
// come out of Next; writes are recorded.
type fakeUpstream struct {
	in chan []byte
	// end, when closed, makes Next return endErr.
	end    chan struct{}
	endErr error

	mu       sync.Mutex
	writes   []string // written stanzas, "<restart>" and "<close>"
	closed   chan struct{}
	closeOne sync.Once
	writeErr error
}

func newFakeUpstream() *fakeUpstream {
	return &fakeUpstream{in: make(chan []byte), end: make(chan struct{}), closed: make(chan struct{})}
}

func (u *fakeUpstream) Next() ([]byte, error) {
	select {
	case el := <-u.in:
		return el, nil
	case <-u.end:
		return nil, u.endErr
	case <-u.closed:
		return nil, io.EOF
	}
}

func (u *fakeUpstream) Write(p ...[]byte) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.writeErr != nil {
		return u.writeErr
	}
	for _, b := range p {
		u.writes = append(u.writes, string(b))
	}
	return nil
}

func (u *fakeUpstream) Restart() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.writes = append(u.writes, "<restart>")
	return nil
}

func (u *fakeUpstream) Close() error {
	u.closeOne.Do(func() {
		u.mu.Lock()
		u.writes = append(u.writes, "<close>")
		u.mu.Unlock()
		close(u.closed)
	})
	return nil
}

// fail makes Next return err.
func (u *fakeUpstream) fail(err error) {
	u.endErr = err
	close(u.end)
}

func (u *fakeUpstream) written() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.writes...)
}

// send delivers one element from the server, waiting until the session's
// reader has taken it.
func (u *fakeUpstream) send(t *testing.T, el string) {
	t.Helper()
	select {
	case u.in <- []byte(el):
	case <-time.After(5 * time.Second):
		t.Fatal("session reader did not take the element")
	}
}

// harness is one session under test.
type harness struct {
	t     *testing.T
	clock *fakeClock
	up    *fakeUpstream
	reg   *Registry
	s     *Session
}

const firstRID = 1000

// newHarness returns a session created with p, on a fakeUpstream.
func newHarness(t *testing.T, p Params) *harness {
	t.Helper()
	return newHarnessOn(t, p, newFakeUpstream())
}

// scripted is a fakeUpstream, or an Upstream built on one.
type scripted interface {
	Upstream
	fake() *fakeUpstream
}

func (u *fakeUpstream) fake() *fakeUpstream { return u }

// newHarnessOn returns a session created with p, on up.
func newHarnessOn(t *testing.T, p Params, up scripted) *harness {
	t.Helper()
	h := &harness{t: t, clock: newFakeClock(), up: up.fake()}
	h.reg = NewRegistry(slog.New(slog.DiscardHandler), h.clock)
	s, err := h.reg.Create(p, up, firstRID)
	if err != nil {
		t.Fatal(err)
	}
	h.s = s
	t.Cleanup(func() { up.Close() })
	return h
}

func defaultParams() Params {
	return Params{Wait: 60 * time.Second, Hold: 1, Requests: 2, Inactivity: 30 * time.Second}
}

// call is a request in flight.
type call struct {
	rid  uint64
	resp chan *Response
	err  chan error
}

// start sends req without waiting for its answer.
func (h *harness) start(req Request) *call {
	return h.startCtx(context.Background(), req)
}

// hold sends an empty request with rid and waits until it is held.
func (h *harness) hold(rid uint64) *call {
	h.t.Helper()
	c := h.start(Request{RID: rid})
	h.waitHeld(1)
	return c
}

// startCtx is start with the request's context ctx: its client goes away
// when ctx ends.
func (h *harness) startCtx(ctx context.Context, req Request) *call {
	c := &call{rid: req.RID, resp: make(chan *Response, 1), err: make(chan error, 1)}
	go func() {
		r, sent, err := h.s.Handle(ctx, req)
		sent()
		if err != nil {
			c.err <- err
			return
		}
		c.resp <- r
	}()
	return c
}

// request sends req and returns its response.
func (h *harness) request(req Request) *Response {
	h.t.Helper()
	return h.start(req).wait(h.t)
}

// wait returns the call's response, failing the test after a deadline.
func (c *call) wait(t *testing.T) *Response {
	t.Helper()
	select {
	case r := <-c.resp:
		if r.RID != c.rid {
			t.Fatalf("response for rid %d carries rid %d", c.rid, r.RID)
		}
		return r
	case err := <-c.err:
		t.Fatalf("rid %d: %v", c.rid, err)
	case <-time.After(5 * time.Second):
		t.Fatalf("rid %d: no response", c.rid)
	}
	return nil
}

// pending asserts the call has no response yet. The session answers under
// its lock, so after waitHeld observed the state, no answer is in flight.
func (c *call) pending(t *testing.T) {
	t.Helper()
	select {
	case r := <-c.resp:
		t.Fatalf("rid %d answered early: %+v", c.rid, r)
	case err := <-c.err:
		t.Fatalf("rid %d failed early: %v", c.rid, err)
	default:
	}
}

// stillHeld fails unless the request rid is the only one held, now.
func (h *harness) stillHeld(rid uint64) {
	h.t.Helper()
	var held []uint64
	h.s.do(func() {
		for _, r := range h.s.held {
			held = append(held, r.RID)
		}
	})
	if len(held) != 1 || held[0] != rid {
		h.t.Fatalf("held rids %v, want only %d", held, rid)
	}
}

// queue puts el in the first stream's queue, as if it had come from the
// server, without answering a held request.
func (h *harness) queue(el string) {
	h.s.deliver(h.firstStream(), []byte(el), false)
}

// waitQueued waits until n elements wait in the first stream's queue.
func (h *harness) waitQueued(n int) {
	h.t.Helper()
	h.waitFor(func(s *Session) bool { return len(s.streams[0].queue) == n }, "%d queued", n)
}

// waitHeld waits until n requests are held.
func (h *harness) waitHeld(n int) {
	h.t.Helper()
	h.waitFor(func(s *Session) bool { return len(s.held) == n }, "%d held requests", n)
}

// waitFor waits until cond holds of the session, under its lock.
func (h *harness) waitFor(cond func(*Session) bool, what string, args ...any) {
	h.t.Helper()
	if !wait.For(wait.Deadline, func() (ok bool) {
		h.s.do(func() { ok = cond(h.s) })
		return ok
	}) {
		h.t.Fatalf("timed out waiting for "+what, args...)
	}
}

// waitWritten waits until the first upstream has seen want, in order.
func (h *harness) waitWritten(want ...string) {
	h.t.Helper()
	h.up.waitWritten(h.t, want...)
}

// waitWritten waits until u has seen want, in order.
func (u *fakeUpstream) waitWritten(t *testing.T, want ...string) {
	t.Helper()
	if !wait.For(wait.Deadline, func() bool { return slices.Equal(u.written(), want) }) {
		t.Fatalf("upstream got %q, want %q", u.written(), want)
	}
}

// carries fails unless r's payload is want, in order.
func carries(t *testing.T, r *Response, want ...string) {
	t.Helper()
	if got := payload(r); !slices.Equal(got, want) {
		t.Fatalf("rid %d carried %q, want %q", r.RID, got, want)
	}
}

func payload(r *Response) []string {
	var out []string
	for _, p := range r.Payload {
		out = append(out, string(p))
	}
	return out
}

var errLost = errors.New("connection reset by peer")
