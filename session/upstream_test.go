package session

import (
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boshd/boshd/internal/wait"
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
		{"XEP-0206 §6 stream error", streamErr, RemoteStreamError, []string{"<queued/>", "<stream:error><conflict/></stream:error>"}},
		{"clean close", io.EOF, "", []string{"<queued/>"}},
		{"connection lost", errLost, RemoteConnectionFailed, []string{"<queued/>"}},
	} {
		t.Run(tc.name+" while held", func(t *testing.T) {
			h := newHarness(t, defaultParams())
			c := h.start(Request{RID: firstRID + 1})
			h.waitHeld(1)
			h.queue("<queued/>") // as if it raced in
			h.up.fail(tc.err)
			r := c.wait(t)
			if r.Type != TypeTerminate || r.Condition != tc.cond || !slices.Equal(payload(r), tc.payload) {
				t.Fatalf("got %+v %q", r, payload(r))
			}
		})
		t.Run(tc.name+" told on next request", func(t *testing.T) {
			// XEP-0124 §13: never a silent close.
			h := newHarness(t, defaultParams())
			h.up.send(t, "<queued/>")
			h.up.fail(tc.err)
			h.waitFor(func(s *Session) bool { return s.final != nil }, "session end")
			r := h.request(Request{RID: firstRID + 1})
			if r.Type != TypeTerminate || r.Condition != tc.cond || !slices.Equal(payload(r), tc.payload) {
				t.Fatalf("got %+v %q", r, payload(r))
			}
			if r := h.request(Request{RID: firstRID + 2}); r.Condition != ItemNotFound {
				t.Fatalf("after end: %+v", r)
			}
		})
	}
}

func TestRestartNotForwarded(t *testing.T) {
	// XEP-0206 §5
	h := newHarness(t, defaultParams())
	h.start(Request{RID: firstRID + 1, Restart: true, Payload: [][]byte{[]byte("<ignored/>")}})
	h.waitWritten("<restart>")
}

func TestWriteFailure(t *testing.T) {
	h := newHarness(t, defaultParams())
	h.up.mu.Lock()
	h.up.writeErr = errLost
	h.up.mu.Unlock()
	r := h.request(Request{RID: firstRID + 1, Payload: [][]byte{[]byte("<m/>")}})
	if r.Condition != RemoteConnectionFailed {
		t.Fatalf("got %+v", r)
	}
	h.waitWritten("<close>")
}

func TestWriteFailureSparesOtherStreams(t *testing.T) {
	// A broadcast whose write to the first stream fails still reaches
	// the second, and the session goes on with it (XEP-0124 §16.5).
	h := newHarness(t, multiParams())
	second, up2 := h.addStream(firstRID + 1)
	h.up.mu.Lock()
	h.up.writeErr = errLost
	h.up.mu.Unlock()
	h.start(Request{RID: firstRID + 2, Payload: [][]byte{[]byte("<all/>")}})
	up2.waitWritten(t, "<all/>")
	h.waitWritten("<close>")
	if h.s.Ended() {
		t.Fatal("the session ended with a stream still open")
	}
	h.start(Request{RID: firstRID + 3, Stream: second, Payload: [][]byte{[]byte("<after/>")}})
	up2.waitWritten(t, "<all/>", "<after/>")
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
	h := newHarnessOn(t, defaultParams(), up)

	// The first reader parks before the server has sent anything: a
	// session whose server is silent holds no goroutine.
	for i, el := range []string{"<a/>", "<b/>", "<c/>"} {
		if !wait.For(wait.Deadline, func() bool {
			up.mu.Lock()
			defer up.mu.Unlock()
			return up.parks == i+1
		}) {
			t.Fatalf("reader not parked before element %d", i+1)
		}
		if i == 0 && !wait.For(wait.Deadline, func() bool { return !readerRunning() }) {
			t.Fatalf("a reader goroutine is left while parked before element %d", i+1)
		}
		up.wake(t, el)
	}
	// The last element is delivered after the reader has taken it.
	h.waitQueued(3)
	carries(t, h.request(Request{RID: firstRID + 1}), "<a/>", "<b/>", "<c/>")
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

func TestBurstGoesOutInOneResponse(t *testing.T) {
	// Elements the server sent together answer the held request
	// together, not the first alone and the rest on the next request.
	for _, trailing := range []bool{false, true} {
		up := newBurstUpstream()
		up.trailing = trailing
		h := newHarnessOn(t, defaultParams(), up)
		for i, burst := range [][]string{{"<a/>", "<b/>", "<c/>"}, {"<d/>"}} {
			c := h.start(Request{RID: firstRID + 1 + uint64(i)})
			h.waitHeld(1)
			up.sendBurst(t, burst...)
			// With trailing set, the last element is followed by
			// part of another: it goes out when the reader must
			// wait for the rest.
			if got := payload(c.wait(t)); !slices.Equal(got, burst) {
				t.Fatalf("trailing=%v: burst %d: payload %q, want %q", trailing, i, got, burst)
			}
		}
	}
}

func TestBurstWithNothingHeldWaits(t *testing.T) {
	// A burst with no request held is queued whole and goes out on the
	// next request, as single elements are.
	up := newBurstUpstream()
	h := newHarnessOn(t, defaultParams(), up)
	up.sendBurst(t, "<a/>", "<b/>")
	up.sendBurst(t, "<c/>")
	h.waitQueued(3)
	r := h.request(Request{RID: firstRID + 1})
	carries(t, r, "<a/>", "<b/>", "<c/>")
}

func TestBurstThenUpstreamEnds(t *testing.T) {
	// Elements queued while more was buffered are not lost when what
	// was buffered ends the stream: the final response carries them.
	up := newBurstUpstream()
	h := newHarnessOn(t, defaultParams(), up)
	c := h.hold(firstRID + 1)
	up.sendBurst(t, "<a/>", "<b/>", endOfStream)
	r := c.wait(t)
	if got := payload(r); r.Type != TypeTerminate || !slices.Equal(got, []string{"<a/>", "<b/>"}) {
		t.Fatalf("response type %q payload %q, want terminate with <a/><b/>", r.Type, got)
	}
}
