package session

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boshd/boshd/xmpp"
)

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

func TestRestartNotForwarded(t *testing.T) {
	// R-XMPP-6, R-XMPP-7
	h := newHarness(t, defaultParams())
	h.start(context.Background(), Request{RID: firstRID + 1, Restart: true, Payload: [][]byte{[]byte("<ignored/>")}})
	h.waitWritten("<restart>")
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

// parkingUpstream is a fakeUpstream that parks (see parker) whenever
// nothing is ready: the session's reader must end, and a new one read
// once the test resumes it.
type parkingUpstream struct {
	*fakeUpstream
	mu     sync.Mutex
	resume func()
	parks  int
}

func (u *parkingUpstream) Park(resume func()) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.resume = resume
	u.parks++
	return true
}

// wake resumes the parked reader and gives it el.
func (u *parkingUpstream) wake(t *testing.T, el string) {
	t.Helper()
	u.mu.Lock()
	resume := u.resume
	u.resume = nil
	u.mu.Unlock()
	if resume == nil {
		t.Fatal("no reader parked")
	}
	resume()
	u.send(t, el)
}

func TestReaderParksBetweenElements(t *testing.T) {
	// A parker upstream is read by a goroutine only while it has
	// something: after each element the reader parks and ends, and a
	// resumed one reads the next, in order.
	up := &parkingUpstream{fakeUpstream: newFakeUpstream()}
	reg := NewRegistry(slog.New(slog.DiscardHandler), newFakeClock())
	s, err := reg.Create(defaultParams(), up, firstRID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })

	up.send(t, "<a/>") // the first reader starts with Next
	var got []string
	for i, el := range []string{"<b/>", "<c/>"} {
		deadline := time.Now().Add(5 * time.Second)
		for {
			up.mu.Lock()
			parked := up.parks == i+1
			up.mu.Unlock()
			if parked {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("reader not parked after element %d", i+1)
			}
			time.Sleep(time.Millisecond)
		}
		for i == 0 && readerRunning() {
			if time.Now().After(deadline) {
				t.Fatal("a reader goroutine is left while parked")
			}
			time.Sleep(time.Millisecond)
		}
		up.wake(t, el)
	}
	// The last element is delivered after the reader has taken it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		queued := len(s.streams[0].queue)
		s.mu.Unlock()
		if queued == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d elements queued, want 3", queued)
		}
		time.Sleep(time.Millisecond)
	}
	resp, _, err := s.Handle(context.Background(), Request{RID: firstRID + 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range resp.Payload {
		got = append(got, string(p))
	}
	if !equal(got, []string{"<a/>", "<b/>", "<c/>"}) {
		t.Fatalf("payload %q, want <a/> <b/> <c/> in order", got)
	}
}

// readerRunning reports whether some goroutine is in Session.read.
func readerRunning() bool {
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	return strings.Contains(string(buf[:n]), "session.(*Session).read(")
}

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

func (u *burstUpstream) Buffered() bool { return len(u.pending) > 0 || u.trailing }

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
