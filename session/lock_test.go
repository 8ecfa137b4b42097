package session

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/boshd/boshd/internal/wait"
)

// TestPanicLeavesSessionUnlocked makes every entry point of a session
// panic in its locked section (the fake clock panics when asked the time,
// as a bug there would) and shows that the session is left unlocked, with
// no write believed under way, and can then be ended as bosh does after a
// panic: the client told, the upstream closed.
func TestPanicLeavesSessionUnlocked(t *testing.T) {
	const wait = 60 * time.Second // defaultParams().Wait
	for _, tc := range []struct {
		name string
		// enter brings the session to where the entry point has work
		// under the lock and returns the call that panics there.
		enter func(h *harness) func()
	}{
		{"Session.Start", func(h *harness) func() {
			return func() { h.s.Start(Request{RID: firstRID + 1}, nil) }
		}},
		{"Session.Handle", func(h *harness) func() {
			return func() { h.s.Handle(context.Background(), Request{RID: firstRID + 1}) }
		}},
		{"Call.Abandon", func(h *harness) func() {
			c := h.s.Start(Request{RID: firstRID + 1}, nil)
			h.waitHeld(1)
			return c.Abandon
		}},
		{"Session.End", func(h *harness) func() {
			return func() { h.s.End(SystemShutdown) }
		}},
		{"Session.Fail", func(h *harness) func() {
			return func() { h.s.Fail(firstRID+1, BadRequest) }
		}},
		{"Registry.Shutdown", func(h *harness) func() {
			return h.reg.Shutdown
		}},
		{"Registry.EndIf", func(h *harness) func() {
			return func() { h.reg.EndIf(func(*Session) bool { return true }, HostGone) }
		}},
		{"gapExpired", func(h *harness) func() {
			h.s.Start(Request{RID: firstRID + 2}, nil) // waits for firstRID+1
			return func() { h.clock.Advance(wait) }
		}},
		{"waitExpired", func(h *harness) func() {
			h.s.Start(Request{RID: firstRID + 1}, nil)
			h.waitHeld(1)
			return func() { h.clock.Advance(wait) }
		}},
		{"idleExpired", func(h *harness) func() {
			return func() { h.clock.Advance(h.s.Params.Inactivity) }
		}},
		{"deliver", func(h *harness) func() {
			st := h.firstStream()
			return func() { h.s.deliver(st, []byte("<m/>"), true) }
		}},
		{"releaseBatch", func(h *harness) func() {
			h.s.Start(Request{RID: firstRID + 1}, nil)
			h.waitHeld(1)
			h.queue("<m/>")
			st := h.firstStream()
			st.unreleased = true // as the reader leaves it
			return func() { h.s.releaseBatch(st) }
		}},
		{"upstreamEnded", func(h *harness) func() {
			st := h.firstStream()
			return func() { h.s.upstreamEnded(st, io.EOF) }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, defaultParams())
			enter := tc.enter(h)
			h.clock.bomb.Store(true)
			h.mustPanic(enter)
			h.unlocked()
			if resp := h.s.Fail(firstRID+3, InternalServerError); resp.Type != TypeTerminate {
				t.Fatalf("Fail after the panic answered %+v", resp)
			}
			if !h.s.Ended() {
				t.Fatal("session not ended by Fail")
			}
			h.waitWritten("<close>")
		})
	}
}

func TestPanicInRegistryCreate(t *testing.T) {
	// A session whose creation panics is not left registered, without
	// an inactivity clock to end it.
	h := newHarness(t, defaultParams())
	h.clock.bomb.Store(true)
	h.mustPanic(func() { h.reg.Create(defaultParams(), newFakeUpstream(), firstRID) })
	if n := h.reg.Len(); n != 1 {
		t.Fatalf("%d sessions registered, want only the harness's", n)
	}
}

func TestPanicInCallbacks(t *testing.T) {
	// Callbacks run after the unlock, in the order they were queued;
	// one that panics leaves the session unlocked and the ones after it
	// still run.
	t.Run("OnPush then notify", func(t *testing.T) {
		h := newHarness(t, defaultParams())
		h.reg.OnPush = func(time.Duration) { panic(errBomb) }
		notified := false
		h.s.Start(Request{RID: firstRID + 1}, func() { notified = true })
		h.waitHeld(1)
		st := h.firstStream()
		h.mustPanic(func() { h.s.deliver(st, []byte("<m/>"), true) })
		h.unlocked()
		if !notified {
			t.Fatal("notify not called after OnPush panicked")
		}
	})
	t.Run("Params.OnEnd then Registry.OnEnd", func(t *testing.T) {
		p := defaultParams()
		p.OnEnd = func() { panic(errBomb) }
		h := newHarness(t, p)
		var ended []Condition
		h.reg.OnEnd = func(c Condition) { ended = append(ended, c) }
		h.mustPanic(func() { h.s.End(HostGone) })
		h.unlocked()
		if len(ended) != 1 || ended[0] != HostGone {
			t.Fatalf("Registry.OnEnd got %v, want [%s]", ended, HostGone)
		}
	})
}

func TestPanicInCallbackBetweenWrites(t *testing.T) {
	// A write that fails ends the session; its callbacks run before the
	// writes queued after it (the closes). One that panics there leaves
	// the session unlocked, with no write believed under way.
	h := newHarness(t, defaultParams())
	h.reg.OnEnd = func(Condition) { panic(errBomb) }
	h.up.mu.Lock()
	h.up.writeErr = errLost
	h.up.mu.Unlock()
	h.mustPanic(func() { h.s.Start(Request{RID: firstRID + 1, Payload: [][]byte{[]byte("<m/>")}}, nil) })
	h.unlocked()
	// The closes queued behind the failure were performed before the
	// panic went on: no other call into the session is needed.
	h.waitWritten("<close>")
	if !h.s.Ended() {
		t.Fatal("session not ended by the failed write")
	}
}

func TestPanicInCallbackBeforeWrites(t *testing.T) {
	// A callback that panics when the session ends does not keep the
	// upstream from being closed before End returns.
	p := defaultParams()
	p.OnEnd = func() { panic(errBomb) }
	h := newHarness(t, p)
	h.mustPanic(func() { h.s.End(SystemShutdown) })
	h.unlocked()
	h.waitWritten("<close>")
}

// panicOnceUpstream panics on its first Write, as a bug in an Upstream
// would, and writes as usual afterwards.
type panicOnceUpstream struct {
	*fakeUpstream
	panicked bool
}

func (u *panicOnceUpstream) Write(p ...[]byte) error {
	if !u.panicked {
		u.panicked = true
		panic(errBomb)
	}
	return u.fakeUpstream.Write(p...)
}

func TestPanickingWriteLeavesSessionUsable(t *testing.T) {
	// A panic in an upstream write reaches the caller (the HTTP
	// handler recovers it); the session must not be left locked or
	// believing a write is under way, or nothing would be written
	// upstream again.
	h := newHarnessOn(t, defaultParams(), &panicOnceUpstream{fakeUpstream: newFakeUpstream()})
	h.mustPanic(func() { h.s.Start(Request{RID: firstRID + 1, Payload: [][]byte{[]byte("<lost/>")}}, nil) })
	h.unlocked()
	h.s.Start(Request{RID: firstRID + 2, Payload: [][]byte{[]byte("<after/>")}}, nil)
	h.waitWritten("<after/>")
}

// mustPanic calls f, which must panic with errBomb, and recovers.
func (h *harness) mustPanic(f func()) {
	h.t.Helper()
	defer func() {
		h.t.Helper()
		if v := recover(); v != errBomb {
			h.t.Fatalf("panic %v, want %v", v, errBomb)
		}
	}()
	f()
}

// unlocked fails unless the session's lock is free, no write is believed
// under way, and no callback is left queued. The lock is waited for: after
// a session ends, its upstream's reader (the fake's, here) takes the lock
// for an instant when it sees the stream closed, while a lock a panic left
// held would stay held.
func (h *harness) unlocked() {
	h.t.Helper()
	if !wait.For(wait.Deadline, h.s.mu.TryLock) {
		h.t.Fatal("session left locked")
	}
	writing, events, ops := h.s.writing, len(h.s.events), len(h.s.ops)
	h.s.mu.Unlock()
	if writing || events > 0 || ops > 0 {
		h.t.Fatalf("writing %v, %d callbacks and %d writes left queued", writing, events, ops)
	}
}

// firstStream returns the session's first stream.
func (h *harness) firstStream() (st *stream) {
	h.s.do(func() { st = h.s.streams[0] })
	return st
}
