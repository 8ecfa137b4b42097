package session

import (
	"testing"
	"time"
)

func TestInactivity(t *testing.T) {
	// XEP-0124 §10: the clock runs only while nothing is held.
	h := newHarness(t, defaultParams())
	c := h.hold(firstRID + 1)
	h.clock.Advance(45 * time.Second) // beyond inactivity, within wait
	c.pending(t)
	h.clock.Advance(15 * time.Second) // wait expires; idle clock starts
	c.wait(t)
	h.endsAfterInactivity()
	h.waitWritten("<close>")
}

// endsAfterInactivity checks that the session, idle from now, is still
// registered a second before Params.Inactivity and gone after it.
func (h *harness) endsAfterInactivity() {
	h.t.Helper()
	d := h.s.Params.Inactivity
	h.clock.Advance(d - time.Second)
	if h.reg.Get(h.s.ID) == nil {
		h.t.Fatalf("session ended %v after its last answer, before its inactivity period", d-time.Second)
	}
	h.clock.Advance(time.Second)
	if h.reg.Get(h.s.ID) != nil {
		h.t.Fatalf("session still registered %v after its last answer", d)
	}
}

func TestInactivityCountsFromTheLastAnswer(t *testing.T) {
	// The inactivity timer outlives short busy spells (it is lazy):
	// whatever timers are left from earlier idle periods, a session
	// ends exactly Inactivity after its last request was answered, and
	// not while one is held.
	h := newHarness(t, defaultParams()) // Inactivity 30 s, Wait 60 s
	rid := uint64(firstRID)
	poll := func() {
		t.Helper()
		rid++
		c := h.start(Request{RID: rid})
		h.waitHeld(1)
		h.up.send(t, "<m/>")
		c.wait(t)
	}
	h.clock.Advance(10 * time.Second)
	poll() // idle again from t=10, with the first timer due at t=30
	h.clock.Advance(19 * time.Second)
	poll()                            // from t=29
	h.clock.Advance(25 * time.Second) // t=54: the t=30 timer fired early
	if h.reg.Get(h.s.ID) == nil {
		t.Fatal("session ended 25 s after its last answer")
	}
	rid++
	c := h.hold(rid)
	h.clock.Advance(40 * time.Second) // held: no inactivity, within wait
	if h.reg.Get(h.s.ID) == nil {
		t.Fatal("session ended while a request was held")
	}
	h.clock.Advance(20 * time.Second) // wait expires at t=114
	c.wait(t)
	h.endsAfterInactivity()
}
