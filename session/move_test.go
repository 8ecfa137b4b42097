package session

import (
	"errors"
	"os"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/boshd/boshd/internal/wait"
	"github.com/boshd/boshd/xmpp"
)

// handingUpstream is a fakeUpstream that parks, as xmpp.Conn does, and
// hands its connection over (a pipe stands for the socket): Handoff
// succeeds only while parked, and cancels the park.
type handingUpstream struct {
	*fakeUpstream
	secure bool
	sock   *os.File // the "socket" handed over

	pmu     sync.Mutex
	resume  func() // set while parked
	parks   int    // Parks that took over waiting
	dropped bool
}

func newHandingUpstream(t *testing.T) *handingUpstream {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return &handingUpstream{fakeUpstream: newFakeUpstream(), sock: r}
}

func (u *handingUpstream) Park(resume func()) bool {
	u.pmu.Lock()
	defer u.pmu.Unlock()
	u.resume = resume
	u.parks++
	return true
}

func (u *handingUpstream) Secure() bool { return u.secure }

func (u *handingUpstream) Handoff() (xmpp.ConnState, int, error) {
	u.pmu.Lock()
	defer u.pmu.Unlock()
	if u.resume == nil {
		return xmpp.ConnState{}, -1, xmpp.ErrNotIdle
	}
	u.resume = nil
	fd, err := syscall.Dup(int(u.sock.Fd()))
	return xmpp.ConnState{ID: "stream-1", Version: "1.0"}, fd, err
}

func (u *handingUpstream) Drop() {
	u.pmu.Lock()
	u.dropped = true
	u.pmu.Unlock()
	u.fakeUpstream.closeOne.Do(func() { close(u.fakeUpstream.closed) })
}

// sendParked wakes the parked reader and sends el.
func (u *handingUpstream) sendParked(t *testing.T, el string) {
	t.Helper()
	u.pmu.Lock()
	resume := u.resume
	u.resume = nil
	u.pmu.Unlock()
	if resume == nil {
		t.Fatal("the upstream is not parked")
	}
	resume()
	u.send(t, el)
}

func (u *handingUpstream) parked() bool {
	u.pmu.Lock()
	defer u.pmu.Unlock()
	return u.resume != nil
}

func (u *handingUpstream) parkCount() int {
	u.pmu.Lock()
	defer u.pmu.Unlock()
	return u.parks
}

// frozenHarness returns a session on a handingUpstream, parked, with a
// request held.
func frozenHarness(t *testing.T) (*harness, *handingUpstream, *call) {
	up := newHandingUpstream(t)
	h := newHarnessOn(t, defaultParams(), up)
	if !wait.For(wait.Deadline, up.parked) {
		t.Fatal("the upstream did not park")
	}
	c := h.hold(firstRID + 1)
	return h, up, c
}

func TestFreezeRefuses(t *testing.T) {
	t.Run("TLS", func(t *testing.T) {
		up := newHandingUpstream(t)
		up.secure = true
		h := newHarnessOn(t, defaultParams(), up)
		if _, err := h.s.Freeze(nil); !errors.Is(err, ErrCannotMove) {
			t.Fatalf("Freeze over TLS: %v, want ErrCannotMove", err)
		}
		if h.s.Movable() {
			t.Error("Movable over TLS")
		}
	})
	t.Run("not an upstream that hands over", func(t *testing.T) {
		h := newHarness(t, defaultParams())
		if _, err := h.s.Freeze(nil); !errors.Is(err, ErrCannotMove) {
			t.Fatalf("Freeze: %v, want ErrCannotMove", err)
		}
	})
	t.Run("not parked", func(t *testing.T) {
		h, up, c := frozenHarness(t)
		parks := up.parkCount()
		up.sendParked(t, "<message/>")
		c.wait(t)
		if !wait.For(wait.Deadline, func() bool { return up.parkCount() > parks }) {
			t.Fatal("the reader did not park again")
		}
		up.pmu.Lock()
		up.resume = nil // as if it had not parked again yet
		up.pmu.Unlock()
		if _, err := h.s.Freeze(nil); !errors.Is(err, ErrBusy) {
			t.Fatalf("Freeze of a stream not parked: %v, want ErrBusy", err)
		}
		if ok, _ := h.s.Enter(); ok {
			t.Fatal("a request let into a session Freeze closed")
		}
		h.s.Thaw()
		if ok, _ := h.s.Enter(); !ok {
			t.Fatal("a request kept out after Thaw")
		}
		h.s.Leave()
		// Nothing changed: a request is served as before.
		h.start(Request{RID: firstRID + 2, Payload: [][]byte{[]byte("<presence/>")}})
		h.waitWritten("<presence/>")
	})
	t.Run("frozen already", func(t *testing.T) {
		h, _, _ := frozenHarness(t)
		if _, err := h.s.Freeze(nil); err != nil {
			t.Fatal(err)
		}
		if _, err := h.s.Freeze(nil); !errors.Is(err, ErrBusy) {
			t.Fatalf("Freeze twice: %v, want ErrBusy", err)
		}
	})
}

// TestFreezeThaw: a frozen session's timers fire to no effect; thawed,
// it answers its held request as it would have, and parks its upstream
// again.
func TestFreezeThaw(t *testing.T) {
	h, up, c := frozenHarness(t)
	f, err := h.s.Freeze(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.FDs) != 1 || f.FDs[0] < 0 || len(f.State.Held) != 1 || f.Conns[0].ID != "stream-1" {
		t.Fatalf("Frozen %+v: want one socket, one held request, the stream's state", f)
	}
	syscall.Close(f.FDs[0])
	parks := up.parkCount()
	h.clock.Advance(2 * time.Minute) // past the wait and the inactivity
	c.pending(t)
	if h.s.Ended() {
		t.Fatal("a frozen session ended of inactivity")
	}
	h.s.Thaw()
	h.clock.Advance(time.Millisecond) // the fake clock fires what is due on a move
	if r := c.wait(t); r.RID != firstRID+1 || len(r.Payload) != 0 {
		t.Errorf("held request answered %+v after the thaw, want empty at its due time", r)
	}
	if !wait.For(wait.Deadline, func() bool { return up.parkCount() > parks && up.parked() }) {
		t.Error("the upstream did not park again after the thaw")
	}
	h.clock.Advance(31 * time.Second)
	if !wait.For(wait.Deadline, h.s.Ended) {
		t.Error("the thawed session did not end of inactivity")
	}
}

// TestMoved: a moved session leaves the registry and the stats, its
// slot is given back (OnEnd), but it has not ended (no Registry.OnEnd),
// its held request is not answered, and its upstream is dropped, not
// closed: nothing is written to the server.
func TestMoved(t *testing.T) {
	up := newHandingUpstream(t)
	var mu sync.Mutex
	var events []string
	p := defaultParams()
	p.OnEnd = func() { mu.Lock(); events = append(events, "OnEnd"); mu.Unlock() }
	h := &harness{t: t, clock: newFakeClock(), up: up.fakeUpstream}
	h.reg = NewRegistry(nil, h.clock)
	h.reg.OnEnd = func(Condition) { mu.Lock(); events = append(events, "Registry.OnEnd"); mu.Unlock() }
	s, err := h.reg.Create(p, up, firstRID)
	if err != nil {
		t.Fatal(err)
	}
	h.s = s
	if !wait.For(wait.Deadline, up.parked) {
		t.Fatal("the upstream did not park")
	}
	c := h.hold(firstRID + 1)
	f, err := s.Freeze(nil)
	if err != nil {
		t.Fatal(err)
	}
	syscall.Close(f.FDs[0])
	s.Moved()
	if h.reg.Get(s.ID) != nil || h.reg.Len() != 0 {
		t.Error("a moved session is still registered")
	}
	if st := h.reg.Stats(); st != (Stats{}) {
		t.Errorf("stats after the move %+v, want zero", st)
	}
	mu.Lock()
	got := slices.Clone(events)
	mu.Unlock()
	if !slices.Equal(got, []string{"OnEnd"}) {
		t.Errorf("callbacks %v, want OnEnd only", got)
	}
	up.pmu.Lock()
	dropped := up.dropped
	up.pmu.Unlock()
	if !dropped || slices.Contains(up.written(), "<close>") {
		t.Errorf("upstream dropped %v, written %v: want dropped, nothing written", dropped, up.written())
	}
	h.clock.Advance(2 * time.Minute)
	c.pending(t)
}

// TestRestoreNotify: a restored request's Notify is called once it is
// answered, or at once if it was already.
func TestRestoreNotify(t *testing.T) {
	h := newHarness(t, defaultParams())
	h.hold(firstRID + 1)
	st, err := h.s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	_, _, calls, up := restore(t, h, st, nil)
	notified := make(chan struct{}, 2)
	calls[0].Notify(func() { notified <- struct{}{} })
	select {
	case <-notified:
		t.Fatal("notified before the answer")
	case <-time.After(50 * time.Millisecond):
	}
	up.send(t, "<message/>")
	select {
	case <-notified:
	case <-time.After(5 * time.Second):
		t.Fatal("not notified of the answer")
	}
	calls[0].Notify(func() { notified <- struct{}{} })
	select {
	case <-notified:
	default:
		t.Fatal("Notify after the answer did not call at once")
	}
}

// TestFreezeAnswersHeld: a held request that cannot move (keep says no)
// is answered first, and the session moves once the answer is written,
// no request coming in meanwhile.
func TestFreezeAnswersHeld(t *testing.T) {
	h, _, c := frozenHarness(t)
	_, err := h.s.Freeze(func(uint64) bool { return false })
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("Freeze with a held request not kept: %v, want ErrBusy", err)
	}
	if r := c.wait(t); r.RID != firstRID+1 || len(r.Payload) != 0 {
		t.Fatalf("the held request answered %+v, want empty", r)
	}
	ok, thawed := h.s.Enter()
	if ok {
		t.Fatal("a request let in between two Freezes")
	}
	f, err := h.s.Freeze(func(uint64) bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	if len(f.State.Held) != 0 || f.State.Answered != firstRID+1 {
		t.Errorf("state %+v: want nothing held, rid %d answered", f.State, firstRID+1)
	}
	syscall.Close(f.FDs[0])
	h.s.Moved()
	select {
	case <-thawed:
	case <-time.After(5 * time.Second):
		t.Fatal("a request waiting to enter not told of the move")
	}
	if !h.s.MovedAway() {
		t.Error("MovedAway false after Moved")
	}
}
