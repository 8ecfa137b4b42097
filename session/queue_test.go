package session

import (
	"context"
	"testing"
)

func TestQueueWhileNothingHeld(t *testing.T) {
	// R-HOLD-6: stanzas arriving with nothing held wait, in order, and
	// all go out in one body on the next request.
	h := newHarness(t, defaultParams())
	for _, el := range []string{"<a/>", "<b/>", "<c/>"} {
		h.up.send(t, el)
	}
	h.waitFor(func(s *Session) bool { return len(s.streams[0].queue) == 3 }, "3 queued")
	r := h.start(context.Background(), Request{RID: firstRID + 1}).wait(t)
	if got := payload(r); !equal(got, []string{"<a/>", "<b/>", "<c/>"}) {
		t.Fatalf("payload %q", got)
	}
}

func TestQueueLimit(t *testing.T) {
	p := defaultParams()
	p.MaxQueueBytes = 10
	h := newHarness(t, p)
	h.up.send(t, "<12345678/>")
	h.waitFor(func(s *Session) bool { return s.final != nil }, "session end")
	if r := h.start(context.Background(), Request{RID: firstRID + 1}).wait(t); r.Condition != UndefinedCondition {
		t.Fatalf("got %+v", r)
	}
}
