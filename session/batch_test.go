package session

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"
)

// burstUpstream is a fakeUpstream whose server sends elements in bursts,
// as one TCP read would bring them: Buffered reports true while the burst
// has more, and Next calls the OnWait function before it waits for the
// next burst, as *xmpp.Conn does.
type burstUpstream struct {
	*fakeUpstream
	bursts chan []string
	// trailing makes Buffered true after a burst's last element too:
	// the start of an element whose rest has not come yet.
	trailing bool

	// Owned by the reader.
	pending []string
	onWait  func()
}

func newBurstUpstream() *burstUpstream {
	return &burstUpstream{fakeUpstream: newFakeUpstream(), bursts: make(chan []string)}
}

func (u *burstUpstream) Next() ([]byte, error) {
	if len(u.pending) == 0 {
		if u.onWait != nil {
			u.onWait()
		}
		select {
		case b := <-u.bursts:
			u.pending = b
		case <-u.closed:
			return nil, io.EOF
		}
	}
	el := u.pending[0]
	u.pending = u.pending[1:]
	if el == endOfStream {
		return nil, io.EOF
	}
	return []byte(el), nil
}

func (u *burstUpstream) Buffered() bool  { return len(u.pending) > 0 || u.trailing }
func (u *burstUpstream) OnWait(f func()) { u.onWait = f }

// endOfStream in a burst makes Next return io.EOF there, without waiting:
// the server's closing tag came in the same read as the elements before.
const endOfStream = "</stream:stream>"

// sendBurst gives the reader els at once.
func (u *burstUpstream) sendBurst(t *testing.T, els ...string) {
	t.Helper()
	select {
	case u.bursts <- els:
	case <-time.After(5 * time.Second):
		t.Fatal("session reader did not take the burst")
	}
}

func newBurstHarness(t *testing.T, up *burstUpstream) *harness {
	t.Helper()
	h := &harness{t: t, clock: newFakeClock(), up: up.fakeUpstream}
	h.reg = NewRegistry(slog.New(slog.DiscardHandler), h.clock)
	s, err := h.reg.Create(defaultParams(), up, firstRID)
	if err != nil {
		t.Fatal(err)
	}
	h.s = s
	t.Cleanup(func() { up.Close() })
	return h
}

func TestBurstGoesOutInOneResponse(t *testing.T) {
	// Elements the server sent together answer the held request
	// together, not the first alone and the rest on the next request.
	for _, trailing := range []bool{false, true} {
		up := newBurstUpstream()
		up.trailing = trailing
		h := newBurstHarness(t, up)
		for i, burst := range [][]string{{"<a/>", "<b/>", "<c/>"}, {"<d/>"}} {
			c := h.start(context.Background(), Request{RID: firstRID + 1 + uint64(i)})
			h.waitHeld(1)
			up.sendBurst(t, burst...)
			// With trailing set, the last element is followed by
			// part of another: it goes out when the reader must
			// wait for the rest.
			if got := payload(c.wait(t)); !equal(got, burst) {
				t.Fatalf("trailing=%v: burst %d: payload %q, want %q", trailing, i, got, burst)
			}
		}
	}
}

func TestBurstWithNothingHeldWaits(t *testing.T) {
	// A burst with no request held is queued whole and goes out on the
	// next request, as single elements are.
	up := newBurstUpstream()
	h := newBurstHarness(t, up)
	up.sendBurst(t, "<a/>", "<b/>")
	up.sendBurst(t, "<c/>")
	h.waitFor(func(s *Session) bool { return len(s.streams[0].queue) == 3 }, "3 queued")
	r := h.start(context.Background(), Request{RID: firstRID + 1}).wait(t)
	if got := payload(r); !equal(got, []string{"<a/>", "<b/>", "<c/>"}) {
		t.Fatalf("payload %q", got)
	}
}

func TestBurstThenUpstreamEnds(t *testing.T) {
	// Elements queued while more was buffered are not lost when what
	// was buffered ends the stream: the final response carries them.
	up := newBurstUpstream()
	h := newBurstHarness(t, up)
	c := h.start(context.Background(), Request{RID: firstRID + 1})
	h.waitHeld(1)
	up.sendBurst(t, "<a/>", "<b/>", endOfStream)
	r := c.wait(t)
	if got := payload(r); r.Type != TypeTerminate || !equal(got, []string{"<a/>", "<b/>"}) {
		t.Fatalf("response type %q payload %q, want terminate with <a/><b/>", r.Type, got)
	}
}
