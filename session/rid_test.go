package session

import (
	"context"
	"testing"
	"time"
)

func TestOutOfOrderForwardedInOrder(t *testing.T) {
	// XEP-0124 §14.2: rid N+2 before N+1: N+1's payload goes upstream first and
	// N+1 is answered first.
	h := newHarness(t, defaultParams())
	c2 := h.start(Request{RID: firstRID + 2, Payload: [][]byte{[]byte("<second/>")}})
	h.waitFor(func(s *Session) bool { return len(s.pending) == 1 }, "pending N+2")
	if w := h.up.written(); len(w) != 0 {
		t.Fatalf("forwarded ahead of the gap: %q", w)
	}
	c1 := h.start(Request{RID: firstRID + 1, Payload: [][]byte{[]byte("<first/>")}})
	c1.wait(t)
	h.waitWritten("<first/>", "<second/>")
	h.waitHeld(1)
	c2.pending(t)
}

func TestRIDBeyondWindow(t *testing.T) {
	// XEP-0124 §14.2
	h := newHarness(t, defaultParams())
	r := h.request(Request{RID: firstRID + 3})
	if r.Type != TypeTerminate || r.Condition != ItemNotFound {
		t.Fatalf("got %+v", r)
	}
	h.waitWritten("<close>")
}

func TestResentHeldRIDReplacesOlderCopy(t *testing.T) {
	// XEP-0124 §14.3: the older copy gets a recoverable error, the new one is
	// held and gets the data.
	h := newHarness(t, defaultParams())
	old := h.hold(firstRID + 1)
	again := h.start(Request{RID: firstRID + 1})
	if r := old.wait(t); r.Type != TypeError {
		t.Fatalf("older copy got %+v, want type=error", r)
	}
	h.waitHeld(1)
	h.up.send(t, "<x/>")
	carries(t, again.wait(t), "<x/>")
}

func TestOveractivity(t *testing.T) {
	// XEP-0124 §11: more than requests open → policy-violation, except one
	// extra pause or terminate.
	p := defaultParams()
	p.Hold, p.Requests = 1, 2
	h := newHarness(t, p)
	h.hold(firstRID + 1)
	// N+3 waits for N+2: two open.
	h.start(Request{RID: firstRID + 3})
	h.waitFor(func(s *Session) bool { return len(s.pending) == 1 }, "pending")
	r := h.request(Request{RID: firstRID + 2})
	if r.Condition != PolicyViolation {
		t.Fatalf("third open request got %+v", r)
	}

	h = newHarness(t, p)
	c1 := h.hold(firstRID + 1)
	h.start(Request{RID: firstRID + 3})
	h.waitFor(func(s *Session) bool { return len(s.pending) == 1 }, "pending")
	term := h.start(Request{RID: firstRID + 2, Terminate: true})
	if r := term.wait(t); r.Type != TypeTerminate || r.Condition != "" {
		t.Fatalf("extra terminate got %+v", r)
	}
	c1.wait(t)
}

func TestRIDGapGivenUp(t *testing.T) {
	// A rid lost with a reloaded page must not hang the session: the old
	// page's held request went away, so after GapWait the requests above
	// the gap go on; the lost rid, should it come after all, is forwarded
	// and answered empty.
	h := newHarness(t, defaultParams())
	ctx, cancel := context.WithCancel(context.Background())
	h.startCtx(ctx, Request{RID: firstRID + 1})
	h.waitHeld(1)
	cancel() // the old page goes away
	h.waitHeld(0)
	c3 := h.start(Request{RID: firstRID + 3, Payload: [][]byte{[]byte("<after-gap/>")}})
	h.waitFor(func(s *Session) bool { return len(s.pending) == 1 }, "pending")
	h.clock.Advance(DefaultGapWait - time.Millisecond)
	c3.pending(t)
	h.clock.Advance(time.Millisecond)
	h.waitHeld(1)
	h.waitWritten("<after-gap/>")
	h.up.send(t, "<m/>")
	carries(t, c3.wait(t), "<m/>")
	late := h.request(Request{RID: firstRID + 2, Payload: [][]byte{[]byte("<late/>")}})
	if late.Type != "" || len(late.Payload) != 0 {
		t.Fatalf("late rid got %+v", late)
	}
	h.waitWritten("<after-gap/>", "<late/>")
	if h.s.Ended() {
		t.Fatal("session ended")
	}
}

func TestRIDGapWaitsLongerWithoutReload(t *testing.T) {
	// With no client gone, a missing rid may just be slow (an overloaded
	// path): it keeps its place for Wait, so stanzas stay in order.
	h := newHarness(t, defaultParams())
	c2 := h.start(Request{RID: firstRID + 2, Payload: [][]byte{[]byte("<second/>")}})
	h.waitFor(func(s *Session) bool { return len(s.pending) == 1 }, "pending")
	h.clock.Advance(10 * DefaultGapWait)
	c2.pending(t)
	h.start(Request{RID: firstRID + 1, Payload: [][]byte{[]byte("<first/>")}})
	h.waitWritten("<first/>", "<second/>")

	h2 := newHarness(t, defaultParams())
	c := h2.start(Request{RID: firstRID + 2})
	h2.waitFor(func(s *Session) bool { return len(s.pending) == 1 }, "pending")
	h2.clock.Advance(defaultParams().Wait)
	h2.waitHeld(1)
	c.pending(t)
}

// TestWaiting checks that Waiting counts the requests that wait for a
// missing lower rid, and none once it arrives.
func TestWaiting(t *testing.T) {
	p := defaultParams()
	p.Requests = 3
	h := newHarness(t, p)
	if n := h.s.Waiting(); n != 0 {
		t.Fatalf("Waiting() = %d before any request", n)
	}
	ahead := h.start(Request{RID: firstRID + 2})
	h.waitFor(func(s *Session) bool { return len(s.pending) == 1 }, "a pending request")
	if n := h.s.Waiting(); n != 1 {
		t.Errorf("Waiting() = %d with rid %d ahead of a gap, want 1", n, firstRID+2)
	}
	// rid+1 fills the gap: it is answered when rid+2, processed after
	// it, is held in its place (hold=1).
	h.request(Request{RID: firstRID + 1})
	ahead.pending(t)
	if n := h.s.Waiting(); n != 0 {
		t.Errorf("Waiting() = %d once the gap is filled, want 0", n)
	}
}
