package session

import (
	"testing"
	"time"
)

func TestPause(t *testing.T) {
	// XEP-0124 §10: held requests answered at once without the
	// queued data; the session survives the pause, not a second longer;
	// the next request restores normal inactivity (XEP-0124 §10).
	h := newHarness(t, defaultParams())
	held := h.hold(firstRID + 1)
	h.queue("<later/>")
	pause := h.start(Request{RID: firstRID + 2, Pause: 120 * time.Second})
	for _, c := range []*call{held, pause} {
		if r := c.wait(t); len(r.Payload) != 0 {
			t.Fatalf("rid %d carried %q during pause", c.rid, payload(r))
		}
	}
	h.clock.Advance(119 * time.Second)
	if h.reg.Get(h.s.ID) == nil {
		t.Fatal("paused session ended early")
	}
	carries(t, h.request(Request{RID: firstRID + 3}), "<later/>")
	h.clock.Advance(30 * time.Second)
	if h.reg.Get(h.s.ID) != nil {
		t.Fatal("normal inactivity not restored after the pause")
	}
}
