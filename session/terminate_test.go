package session

import "testing"

func TestClientTerminate(t *testing.T) {
	// XEP-0124 §13: payload forwarded before the stream closes; the
	// held request gets an empty body and the terminate request
	// type='terminate'; later requests item-not-found (XEP-0124 §13).
	h := newHarness(t, defaultParams())
	held := h.hold(firstRID + 1)
	term := h.start(Request{RID: firstRID + 2, Terminate: true, Payload: [][]byte{[]byte("<presence type='unavailable'/>")}})
	if r := held.wait(t); r.Type != "" {
		t.Fatalf("held got %+v", r)
	}
	if r := term.wait(t); r.Type != TypeTerminate || r.Condition != "" {
		t.Fatalf("terminate got %+v", r)
	}
	h.waitWritten("<presence type='unavailable'/>", "<close>")
	if r := h.request(Request{RID: firstRID + 3}); r.Condition != ItemNotFound {
		t.Fatalf("after terminate: %+v", r)
	}
}

// TestFailAnswersOthers checks that when a request ends the session, the
// requests held and those waiting behind a missing rid are answered
// other-request (XEP-0124 §17.2), and the request itself carries the
// reason.
func TestFailAnswersOthers(t *testing.T) {
	p := defaultParams()
	p.Requests = 3
	h := newHarness(t, p)
	held := h.hold(firstRID + 1)
	ahead := h.start(Request{RID: firstRID + 3}) // waits for firstRID+2
	h.waitFor(func(s *Session) bool { return len(s.pending) == 1 }, "a pending request")
	resp := h.s.Fail(firstRID+2, BadRequest)
	if resp.RID != firstRID+2 || resp.Type != TypeTerminate || resp.Condition != BadRequest {
		t.Errorf("the failing request got %+v, want terminate bad-request", resp)
	}
	for _, c := range []*call{held, ahead} {
		if r := c.wait(t); r.Type != TypeTerminate || r.Condition != OtherRequest {
			t.Errorf("rid %d got %+v, want terminate other-request", c.rid, r)
		}
	}
	h.waitWritten("<close>")
}
