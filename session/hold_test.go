package session

import (
	"context"
	"testing"
	"time"
)

func TestHoldOneReleasesOldest(t *testing.T) {
	// XEP-0124 §8: with hold=1, the next request answers the held
	// one, in rid order.
	h := newHarness(t, defaultParams())
	c1 := h.hold(firstRID + 1)
	c1.pending(t)
	c2 := h.start(Request{RID: firstRID + 2, Payload: [][]byte{[]byte("<message/>")}})
	if r := c1.wait(t); r.Type != "" || len(r.Payload) != 0 {
		t.Fatalf("released request got %+v, want an empty body", r)
	}
	h.waitHeld(1)
	c2.pending(t)
	h.waitWritten("<message/>")
}

func TestHoldTwo(t *testing.T) {
	// Issue 3.1, XEP-0124 §8: with hold=2, two requests stay held; data goes
	// on the oldest; a third releases the oldest.
	p := defaultParams()
	p.Hold, p.Requests = 2, 3
	h := newHarness(t, p)
	c1 := h.hold(firstRID + 1)
	c2 := h.start(Request{RID: firstRID + 2})
	h.waitHeld(2)
	c1.pending(t)
	h.up.send(t, "<a/>")
	carries(t, c1.wait(t), "<a/>")
	c2.pending(t)
	c3 := h.start(Request{RID: firstRID + 3})
	h.waitHeld(2)
	c2.pending(t)
	c4 := h.start(Request{RID: firstRID + 4})
	if r := c2.wait(t); len(r.Payload) != 0 {
		t.Fatalf("released got %q", payload(r))
	}
	h.waitHeld(2)
	c3.pending(t)
	c4.pending(t)
}

func TestDataGoesToHeldRequest(t *testing.T) {
	h := newHarness(t, defaultParams())
	c1 := h.hold(firstRID + 1)
	h.up.send(t, "<message id='1'/>")
	carries(t, c1.wait(t), "<message id='1'/>")
}

func TestWaitExpires(t *testing.T) {
	// XEP-0124 §8: a held request is answered empty after wait.
	h := newHarness(t, defaultParams())
	c := h.hold(firstRID + 1)
	h.clock.Advance(59 * time.Second)
	c.pending(t)
	h.clock.Advance(time.Second)
	if r := c.wait(t); r.Type != "" || len(r.Payload) != 0 {
		t.Fatalf("got %+v", r)
	}
}

func TestWaitCountsFromEachRequest(t *testing.T) {
	// XEP-0124 §8 with one wait timer per session: each held request waits
	// its own wait, counted from when it was held, however many came and
	// went before it. (The fake clock runs timers before Advance returns,
	// so what is held then is exact.)
	t.Run("one after another", func(t *testing.T) {
		h := newHarness(t, defaultParams())
		a := h.start(Request{RID: firstRID + 1})
		h.waitHeld(1)
		h.clock.Advance(30 * time.Second)
		h.up.send(t, "<message id='a'/>")
		carries(t, a.wait(t), "<message id='a'/>")
		b := h.start(Request{RID: firstRID + 2})
		h.waitHeld(1)
		h.clock.Advance(30 * time.Second) // the first request's wait ends
		h.stillHeld(firstRID + 2)
		h.clock.Advance(29 * time.Second)
		h.stillHeld(firstRID + 2)
		h.clock.Advance(time.Second)
		if r := b.wait(t); r.Type != "" || len(r.Payload) != 0 {
			t.Fatalf("second: %+v", r)
		}
	})
	t.Run("two held", func(t *testing.T) {
		p := defaultParams()
		p.Hold = 2
		p.Requests = 3
		h := newHarness(t, p)
		a := h.start(Request{RID: firstRID + 1})
		h.waitHeld(1)
		h.clock.Advance(10 * time.Second)
		b := h.start(Request{RID: firstRID + 2})
		h.waitHeld(2)
		h.clock.Advance(50 * time.Second)
		if r := a.wait(t); r.RID != firstRID+1 || len(r.Payload) != 0 {
			t.Fatalf("first: %+v", r)
		}
		h.stillHeld(firstRID + 2)
		h.clock.Advance(10 * time.Second)
		if r := b.wait(t); r.RID != firstRID+2 || len(r.Payload) != 0 {
			t.Fatalf("second: %+v", r)
		}
	})
}

func TestAbandonedRequestKeepsData(t *testing.T) {
	// XEP-0124 §14.3: a held request whose client left gets no data; the data
	// waits for the next request.
	h := newHarness(t, defaultParams())
	ctx, cancel := context.WithCancel(context.Background())
	c := h.startCtx(ctx, Request{RID: firstRID + 1})
	h.waitHeld(1)
	cancel()
	select {
	case err := <-c.err:
		if err != context.Canceled {
			t.Fatalf("err %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("abandoned request did not return")
	}
	h.waitHeld(0)
	h.up.send(t, "<kept/>")
	h.waitQueued(1)
	carries(t, h.request(Request{RID: firstRID + 2}), "<kept/>")
}
