package session

import "testing"

func TestQueueWhileNothingHeld(t *testing.T) {
	// XEP-0124 §8: stanzas arriving with nothing held wait, in order, and
	// all go out in one body on the next request.
	h := newHarness(t, defaultParams())
	for _, el := range []string{"<a/>", "<b/>", "<c/>"} {
		h.up.send(t, el)
	}
	h.waitQueued(3)
	r := h.request(Request{RID: firstRID + 1})
	carries(t, r, "<a/>", "<b/>", "<c/>")
}

func TestQueueLimit(t *testing.T) {
	p := defaultParams()
	p.MaxQueueBytes = 10
	h := newHarness(t, p)
	h.up.send(t, "<12345678/>")
	h.waitFor(func(s *Session) bool { return s.final != nil }, "session end")
	if r := h.request(Request{RID: firstRID + 1}); r.Condition != UndefinedCondition {
		t.Fatalf("got %+v", r)
	}
}
