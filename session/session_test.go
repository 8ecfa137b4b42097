package session

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/boshd/boshd/xmpp"
)

func TestHoldOneReleasesOldest(t *testing.T) {
	// R-HOLD-4, R-HOLD-5: with hold=1, the next request answers the held
	// one, in rid order.
	h := newHarness(t, defaultParams())
	c1 := h.start(context.Background(), Request{RID: firstRID + 1})
	h.waitHeld(1)
	c1.pending(t)
	c2 := h.start(context.Background(), Request{RID: firstRID + 2, Payload: [][]byte{[]byte("<message/>")}})
	if r := c1.wait(t); r.Type != "" || len(r.Payload) != 0 {
		t.Fatalf("released request got %+v, want an empty body", r)
	}
	h.waitHeld(1)
	c2.pending(t)
	h.waitWritten("<message/>")
}

func TestDataGoesToHeldRequest(t *testing.T) {
	h := newHarness(t, defaultParams())
	c1 := h.start(context.Background(), Request{RID: firstRID + 1})
	h.waitHeld(1)
	h.up.send(t, "<message id='1'/>")
	if got := payload(c1.wait(t)); !equal(got, []string{"<message id='1'/>"}) {
		t.Fatalf("payload %q", got)
	}
}

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

func TestWaitExpires(t *testing.T) {
	// R-HOLD-3: a held request is answered empty after wait.
	h := newHarness(t, defaultParams())
	c := h.start(context.Background(), Request{RID: firstRID + 1})
	h.waitHeld(1)
	h.clock.Advance(59 * time.Second)
	c.pending(t)
	h.clock.Advance(time.Second)
	if r := c.wait(t); r.Type != "" || len(r.Payload) != 0 {
		t.Fatalf("got %+v", r)
	}
}

func TestWaitCountsFromEachRequest(t *testing.T) {
	// R-HOLD-3 with one wait timer per session: each held request waits
	// its own wait, counted from when it was held, however many came and
	// went before it. (The fake clock runs timers before Advance returns,
	// so what is held then is exact.)
	t.Run("one after another", func(t *testing.T) {
		h := newHarness(t, defaultParams())
		a := h.start(context.Background(), Request{RID: firstRID + 1})
		h.waitHeld(1)
		h.clock.Advance(30 * time.Second)
		h.up.send(t, "<message id='a'/>")
		if r := a.wait(t); !equal(payload(r), []string{"<message id='a'/>"}) {
			t.Fatalf("first: %+v", r)
		}
		b := h.start(context.Background(), Request{RID: firstRID + 2})
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
		a := h.start(context.Background(), Request{RID: firstRID + 1})
		h.waitHeld(1)
		h.clock.Advance(10 * time.Second)
		b := h.start(context.Background(), Request{RID: firstRID + 2})
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

func TestPollingAnsweredAtOnce(t *testing.T) {
	// R-POLL-1: wait=0 makes every request come back at once.
	p := defaultParams()
	p.Wait = 0
	h := newHarness(t, p)
	if r := h.start(context.Background(), Request{RID: firstRID + 1}).wait(t); r.Type != "" {
		t.Fatalf("got %+v", r)
	}
}

func TestOutOfOrderForwardedInOrder(t *testing.T) {
	// R-RID-4: rid N+2 before N+1: N+1's payload goes upstream first and
	// N+1 is answered first.
	h := newHarness(t, defaultParams())
	c2 := h.start(context.Background(), Request{RID: firstRID + 2, Payload: [][]byte{[]byte("<second/>")}})
	h.waitFor(func(s *Session) bool { return len(s.pending) == 1 }, "pending N+2")
	if w := h.up.written(); len(w) != 0 {
		t.Fatalf("forwarded ahead of the gap: %q", w)
	}
	c1 := h.start(context.Background(), Request{RID: firstRID + 1, Payload: [][]byte{[]byte("<first/>")}})
	c1.wait(t)
	h.waitWritten("<first/>", "<second/>")
	h.waitHeld(1)
	c2.pending(t)
}

func TestRIDBeyondWindow(t *testing.T) {
	// R-RID-5
	h := newHarness(t, defaultParams())
	r := h.start(context.Background(), Request{RID: firstRID + 3}).wait(t)
	if r.Type != TypeTerminate || r.Condition != ItemNotFound {
		t.Fatalf("got %+v", r)
	}
	h.waitWritten("<close>")
}

func TestResentRIDGetsCachedResponse(t *testing.T) {
	// R-RID-7: the same response again, and the payload is not forwarded
	// twice.
	h := newHarness(t, defaultParams())
	c1 := h.start(context.Background(), Request{RID: firstRID + 1, Payload: [][]byte{[]byte("<m/>")}})
	h.waitHeld(1)
	h.up.send(t, "<reply/>")
	first := c1.wait(t)
	again := h.start(context.Background(), Request{RID: firstRID + 1, Payload: [][]byte{[]byte("<m/>")}}).wait(t)
	if again != first {
		t.Fatalf("resent rid got %+v, want the cached %+v", again, first)
	}
	h.waitWritten("<m/>")
}

func TestResentHeldRIDReplacesOlderCopy(t *testing.T) {
	// R-RID-8: the older copy gets a recoverable error, the new one is
	// held and gets the data.
	h := newHarness(t, defaultParams())
	old := h.start(context.Background(), Request{RID: firstRID + 1})
	h.waitHeld(1)
	again := h.start(context.Background(), Request{RID: firstRID + 1})
	if r := old.wait(t); r.Type != TypeError {
		t.Fatalf("older copy got %+v, want type=error", r)
	}
	h.waitHeld(1)
	h.up.send(t, "<x/>")
	if got := payload(again.wait(t)); !equal(got, []string{"<x/>"}) {
		t.Fatalf("payload %q", got)
	}
}

func TestResentRIDNoLongerCached(t *testing.T) {
	// R-RID-10
	h := newHarness(t, defaultParams())
	for rid := uint64(firstRID + 1); rid <= firstRID+4; rid++ {
		h.start(context.Background(), Request{RID: rid})
		h.waitFor(func(s *Session) bool { return s.last == rid }, "rid %d processed", rid)
	}
	r := h.start(context.Background(), Request{RID: firstRID + 1}).wait(t)
	if r.Type != TypeTerminate || r.Condition != ItemNotFound {
		t.Fatalf("got %+v", r)
	}
}

func TestClientTerminate(t *testing.T) {
	// R-TERM-1, R-TERM-2: payload forwarded before the stream closes; the
	// held request gets an empty body and the terminate request
	// type='terminate'; later requests item-not-found (R-TERM-3).
	h := newHarness(t, defaultParams())
	held := h.start(context.Background(), Request{RID: firstRID + 1})
	h.waitHeld(1)
	term := h.start(context.Background(), Request{RID: firstRID + 2, Terminate: true, Payload: [][]byte{[]byte("<presence type='unavailable'/>")}})
	if r := held.wait(t); r.Type != "" {
		t.Fatalf("held got %+v", r)
	}
	if r := term.wait(t); r.Type != TypeTerminate || r.Condition != "" {
		t.Fatalf("terminate got %+v", r)
	}
	h.waitWritten("<presence type='unavailable'/>", "<close>")
	if r := h.start(context.Background(), Request{RID: firstRID + 3}).wait(t); r.Condition != ItemNotFound {
		t.Fatalf("after terminate: %+v", r)
	}
}

func TestUpstreamEnds(t *testing.T) {
	streamErr := &xmpp.StreamError{Condition: "conflict", Raw: []byte("<stream:error><conflict/></stream:error>")}
	for _, tc := range []struct {
		name    string
		err     error
		cond    Condition
		payload []string
	}{
		{"R-XMPP-10 stream error", streamErr, RemoteStreamError, []string{"<queued/>", "<stream:error><conflict/></stream:error>"}},
		{"clean close", io.EOF, "", []string{"<queued/>"}},
		{"connection lost", errLost, RemoteConnectionFailed, []string{"<queued/>"}},
	} {
		t.Run(tc.name+" while held", func(t *testing.T) {
			h := newHarness(t, defaultParams())
			c := h.start(context.Background(), Request{RID: firstRID + 1})
			h.waitHeld(1)
			h.s.mu.Lock()
			h.s.streams[0].queue = append(h.s.streams[0].queue, []byte("<queued/>")) // as if it raced in
			h.s.mu.Unlock()
			h.up.fail(tc.err)
			r := c.wait(t)
			if r.Type != TypeTerminate || r.Condition != tc.cond || !equal(payload(r), tc.payload) {
				t.Fatalf("got %+v %q", r, payload(r))
			}
		})
		t.Run(tc.name+" told on next request", func(t *testing.T) {
			// R-TERM-5: never a silent close.
			h := newHarness(t, defaultParams())
			h.up.send(t, "<queued/>")
			h.up.fail(tc.err)
			h.waitFor(func(s *Session) bool { return s.final != nil }, "session end")
			r := h.start(context.Background(), Request{RID: firstRID + 1}).wait(t)
			if r.Type != TypeTerminate || r.Condition != tc.cond || !equal(payload(r), tc.payload) {
				t.Fatalf("got %+v %q", r, payload(r))
			}
			if r := h.start(context.Background(), Request{RID: firstRID + 2}).wait(t); r.Condition != ItemNotFound {
				t.Fatalf("after end: %+v", r)
			}
		})
	}
}

func TestInactivity(t *testing.T) {
	// R-INACT-1, R-INACT-2: the clock runs only while nothing is held.
	h := newHarness(t, defaultParams())
	c := h.start(context.Background(), Request{RID: firstRID + 1})
	h.waitHeld(1)
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
		c := h.start(context.Background(), Request{RID: rid})
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
	c := h.start(context.Background(), Request{RID: rid})
	h.waitHeld(1)
	h.clock.Advance(40 * time.Second) // held: no inactivity, within wait
	if h.reg.Get(h.s.ID) == nil {
		t.Fatal("session ended while a request was held")
	}
	h.clock.Advance(20 * time.Second) // wait expires at t=114
	c.wait(t)
	h.endsAfterInactivity()
}

func TestRestartNotForwarded(t *testing.T) {
	// R-XMPP-6, R-XMPP-7
	h := newHarness(t, defaultParams())
	h.start(context.Background(), Request{RID: firstRID + 1, Restart: true, Payload: [][]byte{[]byte("<ignored/>")}})
	h.waitWritten("<restart>")
}

func TestAbandonedRequestKeepsData(t *testing.T) {
	// R-HOLD-8: a held request whose client left gets no data; the data
	// waits for the next request.
	h := newHarness(t, defaultParams())
	ctx, cancel := context.WithCancel(context.Background())
	c := h.start(ctx, Request{RID: firstRID + 1})
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
	h.waitFor(func(s *Session) bool { return len(s.streams[0].queue) == 1 }, "queued")
	if got := payload(h.start(context.Background(), Request{RID: firstRID + 2}).wait(t)); !equal(got, []string{"<kept/>"}) {
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

func TestShutdown(t *testing.T) {
	h := newHarness(t, defaultParams())
	c := h.start(context.Background(), Request{RID: firstRID + 1})
	h.waitHeld(1)
	h.reg.Shutdown()
	if r := c.wait(t); r.Condition != SystemShutdown {
		t.Fatalf("got %+v", r)
	}
	if _, err := h.reg.Create(defaultParams(), newFakeUpstream(), 1); err != ErrShutdown {
		t.Fatalf("Create after Shutdown: %v", err)
	}
}

func TestWriteFailure(t *testing.T) {
	h := newHarness(t, defaultParams())
	h.up.mu.Lock()
	h.up.writeErr = errLost
	h.up.mu.Unlock()
	r := h.start(context.Background(), Request{RID: firstRID + 1, Payload: [][]byte{[]byte("<m/>")}}).wait(t)
	if r.Condition != RemoteConnectionFailed {
		t.Fatalf("got %+v", r)
	}
}

func TestIDsAreUnique(t *testing.T) {
	// R-RESP-1
	seen := make(map[string]bool)
	for range 10000 {
		id := newID()
		if len(id) < 22 || seen[id] {
			t.Fatalf("bad or repeated id %q", id)
		}
		seen[id] = true
	}
}

func TestPause(t *testing.T) {
	// R-PAUSE-2, R-PAUSE-3: held requests answered at once without the
	// queued data; the session survives the pause, not a second longer;
	// the next request restores normal inactivity (R-PAUSE-4).
	h := newHarness(t, defaultParams())
	held := h.start(context.Background(), Request{RID: firstRID + 1})
	h.waitHeld(1)
	h.s.mu.Lock()
	h.s.streams[0].queue = append(h.s.streams[0].queue, []byte("<later/>"))
	h.s.mu.Unlock()
	pause := h.start(context.Background(), Request{RID: firstRID + 2, Pause: 120 * time.Second})
	for _, c := range []*call{held, pause} {
		if r := c.wait(t); len(r.Payload) != 0 {
			t.Fatalf("rid %d carried %q during pause", c.rid, payload(r))
		}
	}
	h.clock.Advance(119 * time.Second)
	if h.reg.Get(h.s.ID) == nil {
		t.Fatal("paused session ended early")
	}
	if got := payload(h.start(context.Background(), Request{RID: firstRID + 3}).wait(t)); !equal(got, []string{"<later/>"}) {
		t.Fatalf("after pause: %q", got)
	}
	h.clock.Advance(30 * time.Second)
	if h.reg.Get(h.s.ID) != nil {
		t.Fatal("normal inactivity not restored after the pause")
	}
}
