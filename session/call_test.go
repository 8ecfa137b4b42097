package session

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/boshd/boshd/internal/wait"
)

func TestStartAnsweredAtOnce(t *testing.T) {
	// A request whose answer is ready at once (here: from the queue) is
	// Ready when Start returns, and notify is not called.
	h := newHarness(t, defaultParams())
	h.up.send(t, "<message id='q'/>")
	h.waitQueued(1)
	var notified atomic.Int32
	c := h.s.Start(Request{RID: firstRID + 1}, func() { notified.Add(1) })
	if !c.Ready() {
		t.Fatal("not ready with a stanza queued")
	}
	resp, sent, err := c.Wait(context.Background())
	if err != nil || !slices.Equal(payload(resp), []string{"<message id='q'/>"}) {
		t.Fatalf("Wait = %+v, %v", resp, err)
	}
	sent()
	if n := notified.Load(); n != 0 {
		t.Fatalf("notify called %d times for an answer ready at once", n)
	}
}

func TestStartNotifiesOnce(t *testing.T) {
	// A held request is not Ready; notify is called once, when the
	// answer comes, and the answer is then Ready without blocking.
	h := newHarness(t, defaultParams())
	notified := make(chan struct{}, 2)
	c := h.s.Start(Request{RID: firstRID + 1}, func() { notified <- struct{}{} })
	if c.Ready() {
		t.Fatal("ready with nothing to send")
	}
	h.waitHeld(1)
	h.up.send(t, "<message id='n'/>")
	select {
	case <-notified:
	case <-time.After(5 * time.Second):
		t.Fatal("notify not called")
	}
	if !c.Ready() {
		t.Fatal("not ready after notify")
	}
	resp, sent, _ := c.Wait(context.Background())
	sent()
	if !slices.Equal(payload(resp), []string{"<message id='n'/>"}) {
		t.Fatalf("payload %q", payload(resp))
	}
	// More from the server, and the end of the session, would answer the
	// request again if it were still held; the callbacks of an entry
	// point have run when it returns.
	h.up.send(t, "<message id='later'/>")
	h.waitQueued(1)
	h.s.End(SystemShutdown)
	select {
	case <-notified:
		t.Fatal("notify called twice")
	default:
	}
}

func TestAbandonCachesEmptyAnswer(t *testing.T) {
	// XEP-0124 §14.3: an abandoned held request leaves the held set with
	// nothing put on it; a resend of its rid (XEP-0124 §14.3) gets the
	// empty answer it would have had, and what arrives later waits for
	// the next request.
	h := newHarness(t, defaultParams())
	c := h.s.Start(Request{RID: firstRID + 1}, nil)
	h.waitHeld(1)
	c.Abandon()
	h.waitHeld(0)
	h.up.send(t, "<message id='later'/>")
	h.waitQueued(1)

	resp, _, err := h.s.Handle(context.Background(), Request{RID: firstRID + 1})
	if err != nil || resp.Type != "" || len(resp.Payload) != 0 {
		t.Fatalf("resent rid answered %+v, %v; want an empty body", resp, err)
	}
	resp, _, err = h.s.Handle(context.Background(), Request{RID: firstRID + 2})
	if err != nil || !slices.Equal(payload(resp), []string{"<message id='later'/>"}) {
		t.Fatalf("next rid answered %+v, %v", resp, err)
	}
}

func TestWaitContextEndsAbandons(t *testing.T) {
	// Wait with a context that ends is Abandon: the request is no longer
	// held, and ctx's error is returned.
	h := newHarness(t, defaultParams())
	c := h.s.Start(Request{RID: firstRID + 1}, nil)
	h.waitHeld(1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := c.Wait(ctx); err != context.Canceled {
		t.Fatalf("Wait = %v, want context.Canceled", err)
	}
	h.waitHeld(0)
}

func TestWaitReady(t *testing.T) {
	// WaitReady returns false when stop delivers or ctx ends with the
	// request still held, and true, with the answer then taken by Wait,
	// once the answer comes.
	h := newHarness(t, defaultParams())
	c := h.s.Start(Request{RID: firstRID + 1}, nil)
	h.waitHeld(1)
	if c.WaitReady(context.Background(), time.After(10*time.Millisecond)) {
		t.Fatal("ready after stop with nothing to send")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if c.WaitReady(ctx, nil) {
		t.Fatal("ready after ctx ended with nothing to send")
	}
	h.up.send(t, "<message id='w'/>")
	if !c.WaitReady(context.Background(), time.After(5*time.Second)) {
		t.Fatal("not ready after the answer came")
	}
	if !c.Ready() || !c.WaitReady(context.Background(), nil) {
		t.Fatal("Ready or WaitReady false once ready")
	}
	resp, sent, err := c.Wait(context.Background())
	sent()
	if err != nil || !slices.Equal(payload(resp), []string{"<message id='w'/>"}) {
		t.Fatalf("Wait = %+v, %v", resp, err)
	}
}

func TestAnswersHandedOutInWriteOrder(t *testing.T) {
	// XEP-0124 §8 on the wire: the answer to rid N+1 is handed to its
	// request only after the answer to rid N has been written, or after
	// writeOrderWait by the session's clock if it never is.
	for _, tc := range []struct {
		name string
		// turn ends the wait of rid N+1's answer; sent says rid N's
		// was written.
		turn func(h *harness, sent func())
	}{
		{"written", func(h *harness, sent func()) { sent() }},
		{"never written", func(h *harness, sent func()) { h.clock.Advance(writeOrderWait) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, defaultParams())
			first := h.s.Start(Request{RID: firstRID + 1}, nil)
			h.waitHeld(1)
			second := h.s.Start(Request{RID: firstRID + 2}, nil)
			h.up.send(t, "<m/>") // answers rid N+1 while N's answer is not yet written
			_, sent, err := first.Wait(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			got := make(chan *Response, 1)
			go func() {
				resp, sent, _ := second.Wait(context.Background())
				sent()
				got <- resp
			}()
			if !wait.For(wait.Deadline, func() bool { return h.clock.pending(writeOrderWait) }) {
				t.Fatal("rid N+1 not waiting for its turn on the session's clock")
			}
			select {
			case resp := <-got:
				t.Fatalf("rid N+1 handed out before its turn: %+v", resp)
			default:
			}
			tc.turn(h, sent)
			select {
			case resp := <-got:
				carries(t, resp, "<m/>")
			case <-time.After(5 * time.Second):
				t.Fatal("rid N+1 not handed out in its turn")
			}
		})
	}
}
