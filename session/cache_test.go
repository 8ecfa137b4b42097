package session

import (
	"testing"
	"time"
)

func TestResentRIDGetsCachedResponse(t *testing.T) {
	// XEP-0124 §14.3: the same response again, and the payload is not forwarded
	// twice.
	h := newHarness(t, defaultParams())
	c1 := h.start(Request{RID: firstRID + 1, Payload: [][]byte{[]byte("<m/>")}})
	h.waitHeld(1)
	h.up.send(t, "<reply/>")
	first := c1.wait(t)
	again := h.request(Request{RID: firstRID + 1, Payload: [][]byte{[]byte("<m/>")}})
	if again != first {
		t.Fatalf("resent rid got %+v, want the cached %+v", again, first)
	}
	h.waitWritten("<m/>")
}

func TestResentRIDNoLongerCached(t *testing.T) {
	// XEP-0124 §14.3
	h := newHarness(t, defaultParams())
	for rid := uint64(firstRID + 1); rid <= firstRID+4; rid++ {
		h.start(Request{RID: rid})
		h.waitFor(func(s *Session) bool { return s.last == rid }, "rid %d processed", rid)
	}
	r := h.request(Request{RID: firstRID + 1})
	if r.Type != TypeTerminate || r.Condition != ItemNotFound {
		t.Fatalf("got %+v", r)
	}
}

func TestAcks(t *testing.T) {
	// XEP-0124 §9.1: ack names the highest rid received in order,
	// omitted when it is the rid answered.
	p := defaultParams()
	p.Acks = true
	h := newHarness(t, p)
	c1 := h.hold(firstRID + 1)
	c2 := h.start(Request{RID: firstRID + 2, Ack: firstRID})
	if r := c1.wait(t); r.Ack != firstRID+2 {
		t.Fatalf("ack %d, want %d", r.Ack, firstRID+2)
	}
	h.up.send(t, "<m/>")
	if r := c2.wait(t); r.Ack != 0 {
		t.Fatalf("ack %d on the response to the latest rid, want none", r.Ack)
	}
	// XEP-0124 §9.2: acknowledged responses leave the cache; unacknowledged
	// ones stay beyond Params.Requests.
	h.waitFor(func(s *Session) bool { return len(s.cache) == 2 }, "2 cached")

	// XEP-0124 §9.2: an ack below the last answered rid gets a report of the
	// first missing response with its age.
	h.clock.Advance(1500 * time.Millisecond)
	r := h.request(Request{RID: firstRID + 3, Ack: firstRID + 1})
	if r.Report != firstRID+2 || r.Time != 1500 {
		t.Fatalf("report %d time %d, want %d 1500", r.Report, r.Time, firstRID+2)
	}
	h.waitFor(func(s *Session) bool { return s.cachedLocked(firstRID+1) == nil && s.cachedLocked(firstRID+2) != nil }, "rid+1 dropped, rid+2 kept")
}
