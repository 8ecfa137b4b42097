package session

import (
	"slices"
	"testing"
)

// addStream adds a second stream to h's session and returns its name and
// fake upstream.
func (h *harness) addStream(rid uint64) (string, *fakeUpstream) {
	h.t.Helper()
	up := newFakeUpstream()
	h.t.Cleanup(func() { up.Close() })
	r := h.request(Request{RID: rid, Add: &NewStream{Up: up, From: "other.org", Payload: [][]byte{[]byte("<stream:features/>")}}})
	if r.Stream == "" || r.From != "other.org" || !slices.Equal(payload(r), []string{"<stream:features/>"}) {
		h.t.Fatalf("add stream answered %+v", r)
	}
	return r.Stream, up
}

func multiParams() Params {
	p := defaultParams()
	p.MultiStream = true
	return p
}

func TestMultiStreamRouting(t *testing.T) {
	// XEP-0124 §16.3, §16.4
	h := newHarness(t, multiParams())
	first := h.s.Stream()
	if first == "" {
		t.Fatal("first stream has no name")
	}
	second, up2 := h.addStream(firstRID + 1)
	if second == first {
		t.Fatal("stream names collide")
	}
	// Named stream: payload goes there only.
	c := h.start(Request{RID: firstRID + 2, Stream: second, Payload: [][]byte{[]byte("<to2/>")}})
	h.waitHeld(1)
	up2.waitWritten(t, "<to2/>")
	if w := h.up.written(); len(w) != 0 {
		t.Fatalf("first stream got %q", w)
	}
	// No stream: broadcast.
	c3 := h.start(Request{RID: firstRID + 3, Payload: [][]byte{[]byte("<all/>")}})
	c.wait(t)
	h.waitWritten("<all/>")
	up2.waitWritten(t, "<to2/>", "<all/>")
	// Responses name their stream and never mix streams.
	h.queue("<from1/>")
	up2.send(t, "<from2/>")
	r := c3.wait(t)
	c4 := h.start(Request{RID: firstRID + 4})
	r4 := c4.wait(t)
	got := map[string][]string{r.Stream: payload(r), r4.Stream: payload(r4)}
	if !slices.Equal(got[first], []string{"<from1/>"}) || !slices.Equal(got[second], []string{"<from2/>"}) {
		t.Fatalf("responses by stream: %q", got)
	}
	// XEP-0124 §16.4: an unknown stream is item-not-found.
	if r := h.request(Request{RID: firstRID + 5, Stream: "nope"}); r.Condition != ItemNotFound {
		t.Fatalf("unknown stream got %+v", r)
	}
}

func TestMultiStreamTerminateOne(t *testing.T) {
	// XEP-0124 §16.5: terminate with stream closes only that stream.
	h := newHarness(t, multiParams())
	second, up2 := h.addStream(firstRID + 1)
	r := h.request(Request{RID: firstRID + 2, Stream: second, Terminate: true, Payload: [][]byte{[]byte("<bye/>")}})
	if r.Type != TypeTerminate || r.Stream != second || r.Condition != "" {
		t.Fatalf("got %+v", r)
	}
	up2.waitWritten(t, "<bye/>", "<close>")
	if h.s.Ended() {
		t.Fatal("session ended with one of two streams")
	}
	h.up.send(t, "<still/>")
	carries(t, h.request(Request{RID: firstRID + 3}), "<still/>")
	// Terminating the last stream ends the session.
	if r := h.request(Request{RID: firstRID + 4, Stream: h.s.Stream(), Terminate: true}); r.Type != TypeTerminate {
		t.Fatalf("got %+v", r)
	}
	if !h.s.Ended() {
		t.Fatal("session lives on without streams")
	}
}

func TestMultiStreamUpstreamFailure(t *testing.T) {
	// K: a terminal error with stream set closes only that stream.
	h := newHarness(t, multiParams())
	second, up2 := h.addStream(firstRID + 1)
	c := h.hold(firstRID + 2)
	up2.fail(errLost)
	r := c.wait(t)
	if r.Type != TypeTerminate || r.Condition != RemoteConnectionFailed || r.Stream != second {
		t.Fatalf("got %+v", r)
	}
	if h.s.Ended() {
		t.Fatal("session ended with one of two streams")
	}
	if r := h.request(Request{RID: firstRID + 3, Stream: second}); r.Condition != ItemNotFound {
		t.Fatalf("request for the failed stream: %+v", r)
	}
}

func TestMultiStreamAddFails(t *testing.T) {
	h := newHarness(t, multiParams())
	r := h.request(Request{RID: firstRID + 1, Add: &NewStream{Failed: RemoteConnectionFailed}})
	if r.Type != TypeTerminate || r.Condition != RemoteConnectionFailed || r.Stream == "" || r.Stream == h.s.Stream() {
		t.Fatalf("got %+v", r)
	}
	if h.s.Ended() {
		t.Fatal("a failed new stream ended the session")
	}
}
