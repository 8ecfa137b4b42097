package session

import "testing"

func TestClientTerminate(t *testing.T) {
	// R-TERM-1, R-TERM-2: payload forwarded before the stream closes; the
	// held request gets an empty body and the terminate request
	// type='terminate'; later requests item-not-found (R-TERM-3).
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
