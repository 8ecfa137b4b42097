package session

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"testing"
	"time"
)

func TestHoldTwo(t *testing.T) {
	// Issue 3.1, R-HOLD-5: with hold=2, two requests stay held; data goes
	// on the oldest; a third releases the oldest.
	p := defaultParams()
	p.Hold, p.Requests = 2, 3
	h := newHarness(t, p)
	c1 := h.start(context.Background(), Request{RID: firstRID + 1})
	h.waitHeld(1)
	c2 := h.start(context.Background(), Request{RID: firstRID + 2})
	h.waitHeld(2)
	c1.pending(t)
	h.up.send(t, "<a/>")
	if got := payload(c1.wait(t)); !equal(got, []string{"<a/>"}) {
		t.Fatalf("oldest got %q", got)
	}
	c2.pending(t)
	c3 := h.start(context.Background(), Request{RID: firstRID + 3})
	h.waitHeld(2)
	c2.pending(t)
	c4 := h.start(context.Background(), Request{RID: firstRID + 4})
	if r := c2.wait(t); len(r.Payload) != 0 {
		t.Fatalf("released got %q", payload(r))
	}
	h.waitHeld(2)
	c3.pending(t)
	c4.pending(t)
}

func TestOveractivity(t *testing.T) {
	// R-OVER-1: more than requests open → policy-violation, except one
	// extra pause or terminate.
	p := defaultParams()
	p.Hold, p.Requests = 1, 2
	h := newHarness(t, p)
	h.start(context.Background(), Request{RID: firstRID + 1})
	h.waitHeld(1)
	// N+3 waits for N+2: two open.
	h.start(context.Background(), Request{RID: firstRID + 3})
	h.waitFor(func(s *Session) bool { return len(s.pending) == 1 }, "pending")
	r := h.start(context.Background(), Request{RID: firstRID + 2}).wait(t)
	if r.Condition != PolicyViolation {
		t.Fatalf("third open request got %+v", r)
	}

	h = newHarness(t, p)
	c1 := h.start(context.Background(), Request{RID: firstRID + 1})
	h.waitHeld(1)
	h.start(context.Background(), Request{RID: firstRID + 3})
	h.waitFor(func(s *Session) bool { return len(s.pending) == 1 }, "pending")
	term := h.start(context.Background(), Request{RID: firstRID + 2, Terminate: true})
	if r := term.wait(t); r.Type != TypeTerminate || r.Condition != "" {
		t.Fatalf("extra terminate got %+v", r)
	}
	c1.wait(t)
}

func TestPollingTooOften(t *testing.T) {
	// R-POLL-2: two empty polls closer than polling → policy-violation;
	// farther apart, or with data, fine.
	p := defaultParams()
	p.Wait, p.Hold, p.Requests, p.Polling = 0, 0, 1, 5*time.Second
	h := newHarness(t, p)
	h.start(context.Background(), Request{RID: firstRID + 1}).wait(t)
	h.clock.Advance(6 * time.Second)
	h.start(context.Background(), Request{RID: firstRID + 2}).wait(t)
	h.clock.Advance(time.Second)
	if r := h.start(context.Background(), Request{RID: firstRID + 3, Payload: [][]byte{[]byte("<m/>")}}).wait(t); r.Type != "" {
		t.Fatalf("poll with data got %+v", r)
	}
	if r := h.start(context.Background(), Request{RID: firstRID + 4}).wait(t); r.Type != "" {
		t.Fatalf("poll after a poll with data got %+v", r)
	}
	h.clock.Advance(time.Second)
	if r := h.start(context.Background(), Request{RID: firstRID + 5}).wait(t); r.Condition != PolicyViolation {
		t.Fatalf("poll 1 s after an empty poll got %+v", r)
	}
}

func TestAcks(t *testing.T) {
	// R-ACK-2, R-ACK-3: ack names the highest rid received in order,
	// omitted when it is the rid answered.
	p := defaultParams()
	p.Acks = true
	h := newHarness(t, p)
	c1 := h.start(context.Background(), Request{RID: firstRID + 1})
	h.waitHeld(1)
	c2 := h.start(context.Background(), Request{RID: firstRID + 2, Ack: firstRID})
	if r := c1.wait(t); r.Ack != firstRID+2 {
		t.Fatalf("ack %d, want %d", r.Ack, firstRID+2)
	}
	h.up.send(t, "<m/>")
	if r := c2.wait(t); r.Ack != 0 {
		t.Fatalf("ack %d on the response to the latest rid, want none", r.Ack)
	}
	// R-ACK-4: acknowledged responses leave the cache; unacknowledged
	// ones stay beyond Params.Requests.
	h.waitFor(func(s *Session) bool { return len(s.cache) == 2 }, "2 cached")

	// R-ACK-5: an ack below the last answered rid gets a report of the
	// first missing response with its age.
	h.clock.Advance(1500 * time.Millisecond)
	r := h.start(context.Background(), Request{RID: firstRID + 3, Ack: firstRID + 1}).wait(t)
	if r.Report != firstRID+2 || r.Time != 1500 {
		t.Fatalf("report %d time %d, want %d 1500", r.Report, r.Time, firstRID+2)
	}
	h.waitFor(func(s *Session) bool { return s.cachedLocked(firstRID+1) == nil && s.cachedLocked(firstRID+2) != nil }, "rid+1 dropped, rid+2 kept")
}

func TestKeySequence(t *testing.T) {
	// R-KEY-1, R-KEY-2, R-KEY-3, R-KEY-4
	k := func(s string) string { sum := sha1.Sum([]byte(s)); return hex.EncodeToString(sum[:]) }
	// Chain: K2 = sha1(K3), K1 = sha1(K2); creation sends newkey K1.
	k3 := "seed"
	k2 := k(k3)
	k1 := k(k2)
	p := defaultParams()
	p.Wait = 0
	p.Key = k1
	h := newHarness(t, p)
	if r := h.start(context.Background(), Request{RID: firstRID + 1, Key: k2}).wait(t); r.Type != "" {
		t.Fatalf("good key got %+v", r)
	}
	// Switch chains: key k3 checks the old chain, newkey starts a new one.
	n1 := k("other")
	if r := h.start(context.Background(), Request{RID: firstRID + 2, Key: k3, NewKey: n1}).wait(t); r.Type != "" {
		t.Fatalf("key with newkey got %+v", r)
	}
	// A resent rid does not move the chain on.
	h.start(context.Background(), Request{RID: firstRID + 2, Key: "anything"}).wait(t)
	if r := h.start(context.Background(), Request{RID: firstRID + 3, Key: "wrong"}).wait(t); r.Condition != ItemNotFound {
		t.Fatalf("bad key got %+v", r)
	}

	h = newHarness(t, p)
	if r := h.start(context.Background(), Request{RID: firstRID + 1}).wait(t); r.Condition != ItemNotFound {
		t.Fatalf("missing key got %+v", r)
	}

	p.Key = ""
	h = newHarness(t, p)
	if r := h.start(context.Background(), Request{RID: firstRID + 1, Key: "ignored"}).wait(t); r.Type != "" {
		t.Fatalf("key without newkey at creation got %+v", r)
	}
}

func TestStats(t *testing.T) {
	h := newHarness(t, defaultParams())
	ended := make(chan Condition, 2)
	h.reg.OnEnd = func(c Condition) { ended <- c }
	if st := h.reg.Stats(); st.Live != 1 || st.Held != 0 {
		t.Fatalf("after create: %+v", st)
	}
	c := h.start(context.Background(), Request{RID: firstRID + 1})
	h.waitHeld(1)
	if st := h.reg.Stats(); st.Held != 1 {
		t.Fatalf("with one held: %+v", st)
	}
	h.up.send(t, "<m/>")
	c.wait(t)
	h.up.send(t, "<queued/>")
	h.waitFor(func(s *Session) bool { return len(s.streams[0].queue) == 1 }, "queued")
	if st := h.reg.Stats(); st.Held != 0 || st.Queued != 1 || st.QueuedBytes != int64(len("<queued/>")) {
		t.Fatalf("with one queued: %+v", st)
	}
	h.up.fail(errLost)
	select {
	case c := <-ended:
		if c != RemoteConnectionFailed {
			t.Fatalf("ended with %q, want %q", c, RemoteConnectionFailed)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OnEnd not called")
	}
	if st := h.reg.Stats(); st.Live != 0 || st.Queued != 0 || len(ended) != 0 {
		t.Fatalf("after the end: %+v, %d more ends", st, len(ended))
	}
}

func TestRIDGapGivenUp(t *testing.T) {
	// A rid lost with a reloaded page must not hang the session: the old
	// page's held request went away, so after GapWait the requests above
	// the gap go on; the lost rid, should it come after all, is forwarded
	// and answered empty.
	h := newHarness(t, defaultParams())
	ctx, cancel := context.WithCancel(context.Background())
	h.start(ctx, Request{RID: firstRID + 1})
	h.waitHeld(1)
	cancel() // the old page goes away
	h.waitHeld(0)
	c3 := h.start(context.Background(), Request{RID: firstRID + 3, Payload: [][]byte{[]byte("<after-gap/>")}})
	h.waitFor(func(s *Session) bool { return len(s.pending) == 1 }, "pending")
	h.clock.Advance(DefaultGapWait - time.Millisecond)
	c3.pending(t)
	h.clock.Advance(time.Millisecond)
	h.waitHeld(1)
	h.waitWritten("<after-gap/>")
	h.up.send(t, "<m/>")
	if got := payload(c3.wait(t)); !equal(got, []string{"<m/>"}) {
		t.Fatalf("request after the gap got %q", got)
	}
	late := h.start(context.Background(), Request{RID: firstRID + 2, Payload: [][]byte{[]byte("<late/>")}}).wait(t)
	if late.Type != "" || len(late.Payload) != 0 {
		t.Fatalf("late rid got %+v", late)
	}
	h.waitWritten("<after-gap/>", "<late/>")
	if h.s.Ended() {
		t.Fatal("session ended")
	}
}

func TestRIDGapWaitsLongerWithoutReload(t *testing.T) {
	// With no client gone, a missing rid may just be slow (an overloaded
	// path): it keeps its place for Wait, so stanzas stay in order.
	h := newHarness(t, defaultParams())
	c2 := h.start(context.Background(), Request{RID: firstRID + 2, Payload: [][]byte{[]byte("<second/>")}})
	h.waitFor(func(s *Session) bool { return len(s.pending) == 1 }, "pending")
	h.clock.Advance(10 * DefaultGapWait)
	c2.pending(t)
	h.start(context.Background(), Request{RID: firstRID + 1, Payload: [][]byte{[]byte("<first/>")}})
	h.waitWritten("<first/>", "<second/>")

	h2 := newHarness(t, defaultParams())
	c := h2.start(context.Background(), Request{RID: firstRID + 2})
	h2.waitFor(func(s *Session) bool { return len(s.pending) == 1 }, "pending")
	h2.clock.Advance(defaultParams().Wait)
	h2.waitHeld(1)
	c.pending(t)
}

func TestAnswersHandedOutInWriteOrder(t *testing.T) {
	// R-HOLD-5 on the wire: the answer to rid N+1 is handed to its
	// request only after the answer to rid N has been written.
	h := newHarness(t, defaultParams())
	type got struct {
		resp *Response
		sent func()
	}
	handle := func(req Request) chan got {
		ch := make(chan got, 1)
		go func() {
			r, sent, err := h.s.Handle(context.Background(), req)
			if err != nil {
				t.Error(err)
			}
			ch <- got{r, sent}
		}()
		return ch
	}
	first := handle(Request{RID: firstRID + 1})
	h.waitHeld(1)
	second := handle(Request{RID: firstRID + 2})
	h.waitFor(func(s *Session) bool { return s.last == firstRID+2 && len(s.held) == 1 }, "rid N+1 held")
	h.up.send(t, "<m/>") // answers rid N+1 while N's answer is not yet written
	var g1 got
	select {
	case g1 = <-first:
	case <-time.After(5 * time.Second):
		t.Fatal("no answer for rid N")
	}
	select {
	case g := <-second:
		t.Fatalf("rid N+1 handed out before rid N was written: %+v", g.resp)
	case <-time.After(100 * time.Millisecond):
	}
	g1.sent()
	select {
	case g := <-second:
		if !equal(payload(g.resp), []string{"<m/>"}) {
			t.Fatalf("rid N+1 got %q", payload(g.resp))
		}
		g.sent()
	case <-time.After(5 * time.Second):
		t.Fatal("rid N+1 not handed out after rid N was written")
	}
}
