package integration

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// How many tests run at once. go test's default, -parallel GOMAXPROCS,
// suits tests that compute; these mostly wait (for Prosody, boshd,
// Chromium), and a test waiting for a browser slot would hold one of the
// two places of a two-core machine. So TestMain lifts go test's limit, and
// the tests share out the machine themselves:
//
//   - a browser test runs Chromium only in one of browserParallel slots
//     (runBrowser);
//   - any other test calls parallel(t), which runs it in one of
//     serverSlots slots;
//   - a test whose assertions measure time (a bound on a round trip or on
//     a shutdown) calls parallelQuiet(t) instead: it runs with no other
//     test of the second kind and with at most one Chromium, as with go
//     test's default on two cores.
//
// The two tests that count the goroutines and descriptors of the whole
// process (TestFaultProsodyKilled, TestFaultClientsVanish) are not
// parallel at all: go test runs them before any parallel test starts.

const (
	// testParallel is go test's -parallel for this package unless the
	// command line gives one: more than there are tests, so that only the
	// slots below limit them.
	testParallel = 64
	// serverSlots is how many tests other than browser tests run at once.
	serverSlots = 2
)

var servers = newSlots(serverSlots)

func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		if err := flag.Set("test.parallel", fmt.Sprint(testParallel)); err != nil {
			panic(err)
		}
	}
	os.Exit(m.Run())
}

// parallel marks t parallel and waits for one of the serverSlots, which it
// holds until t and its subtests are done. A test whose subtests call
// parallel calls t.Parallel itself, not parallel.
func parallel(t *testing.T) {
	t.Helper()
	t.Parallel()
	servers.acquire(priorityScenario, 1, 0)
	t.Cleanup(func() { servers.release(1) })
}

var (
	// browserSlots limits the Chromiums running at once to
	// browserParallel.
	browserSlots = newSlots(browserParallel)
	// browserTests holds the names of the top-level tests that have run
	// a browser scenario.
	browserTests sync.Map
)

// slotWait bounds the wait for a browser slot. Every other browser test
// may run before this one gets its slot, on a slow machine for longer
// than one run's bound (browserRunTimeout); the bound is only there to
// fail cleanly before go test's -timeout (scripts/test: 15 minutes).
const slotWait = 12 * time.Minute

// takeBrowserSlot waits up to slotWait for a browser slot for t, failing t
// if there is none, and returns the function that gives it back.
// A test of several scenarios (they are in subtests) goes first: the
// longest chains should not be left for last.
func takeBrowserSlot(t *testing.T) (release func()) {
	t.Helper()
	priority := priorityScenario
	top, _, sub := strings.Cut(t.Name(), "/")
	if _, again := browserTests.LoadOrStore(top, true); again || sub {
		priority = priorityContinue
	}
	if !browserSlots.acquire(priority, 1, slotWait) {
		t.Fatalf("no browser slot free within %v", slotWait)
	}
	return func() { browserSlots.release(1) }
}

// The quiet tests run one after the other, and hold one browser slot from
// the first one's start to the last one's end: taking it for each would
// leave each waiting for a scenario to end, with the slot idle meanwhile.
var (
	quietRun     sync.Mutex   // held by the quiet test running
	quietPending atomic.Int32 // quiet tests started and not done
	quietSlot    bool         // the quiet tests hold a browser slot (under quietRun)
)

// parallelQuiet marks t parallel and waits until it is the only test
// other than browser tests, and holds one of the browser slots, so that
// at most browserParallel-1 Chromiums run beside it. The quiet tests go
// before any browser scenario waiting for a slot: otherwise they would
// wait for most scenarios and run last.
func parallelQuiet(t *testing.T) {
	t.Helper()
	t.Parallel()
	quietPending.Add(1)
	quietRun.Lock()
	// The server slots first: other tests give them back within seconds,
	// and a browser slot taken first would stand idle meanwhile.
	servers.acquire(priorityQuiet, serverSlots, 0)
	if !quietSlot {
		browserSlots.acquire(priorityQuiet, 1, 0)
		quietSlot = true
	}
	t.Cleanup(func() {
		servers.release(serverSlots)
		if quietPending.Add(-1) == 0 {
			browserSlots.release(1)
			quietSlot = false
		}
		quietRun.Unlock()
	})
}

// Priorities for browser slots: among the waiters, the highest goes
// first, then the earliest.
const (
	priorityScenario = iota // a test's first browser scenario
	// priorityContinue is a scenario of a test of several (a subtest),
	// or a test's next one: finishing a test that has begun lets its
	// Prosody, boshd, nginx or scripts/demo go, and the longest chains of
	// scenarios should not be left for last.
	priorityContinue
	priorityQuiet // parallelQuiet
)

// slots is a counting semaphore that lets its waiters in by priority,
// then in order of arrival. A waiter that wants more than is free holds
// back those behind it, so that it is not passed over for good.
type slots struct {
	mu      sync.Mutex
	free    int
	seq     int
	waiting []*slotWaiter
}

type slotWaiter struct {
	priority, seq, n int
	admitted         chan struct{}
}

func newSlots(n int) *slots { return &slots{free: n} }

// acquire waits for n slots, up to timeout if it is not 0, and reports
// whether it got them.
func (s *slots) acquire(priority, n int, timeout time.Duration) bool {
	s.mu.Lock()
	s.seq++
	w := &slotWaiter{priority: priority, seq: s.seq, n: n, admitted: make(chan struct{})}
	s.waiting = append(s.waiting, w)
	s.admitLocked()
	s.mu.Unlock()
	var expired <-chan time.Time
	if timeout > 0 {
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		expired = timer.C
	}
	select {
	case <-w.admitted:
		return true
	case <-expired:
		s.mu.Lock()
		defer s.mu.Unlock()
		i := slices.Index(s.waiting, w)
		if i < 0 {
			return true // admitted meanwhile
		}
		s.waiting = slices.Delete(s.waiting, i, i+1)
		s.admitLocked()
		return false
	}
}

// release gives n slots back.
func (s *slots) release(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.free += n
	s.admitLocked()
}

// admitLocked lets waiters in, first by priority then by arrival, while
// there are slots for the first.
func (s *slots) admitLocked() {
	for len(s.waiting) > 0 {
		first := 0
		for i, w := range s.waiting {
			if f := s.waiting[first]; w.priority > f.priority || w.priority == f.priority && w.seq < f.seq {
				first = i
			}
		}
		w := s.waiting[first]
		if w.n > s.free {
			return
		}
		s.free -= w.n
		s.waiting = slices.Delete(s.waiting, first, first+1)
		close(w.admitted)
	}
}

// TestSlotsPriority checks the order in which slots admits its waiters,
// and that a wait can time out.
func TestSlotsPriority(t *testing.T) {
	t.Parallel()
	s := newSlots(1)
	if !s.acquire(priorityScenario, 1, 0) {
		t.Fatal("the free slot was not taken")
	}
	if s.acquire(priorityQuiet, 1, time.Millisecond) {
		t.Fatal("a second slot was taken from a semaphore of one")
	}
	admitted := make(chan int, 4)
	queued := func(n int) func() bool {
		return func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			return len(s.waiting) == n
		}
	}
	for i, priority := range []int{priorityScenario, priorityQuiet, priorityContinue, priorityScenario} {
		go func() {
			s.acquire(priority, 1, 0)
			admitted <- i
		}()
		eventually(t, eventTimeout, "the waiter queued", queued(i+1))
	}
	var order []int
	for range 4 {
		s.release(1)
		order = append(order, <-admitted)
	}
	if want := []int{1, 2, 0, 3}; !slices.Equal(order, want) {
		t.Errorf("waiters admitted in the order %v, want %v (by priority, then first come)", order, want)
	}
}

// TestSlotsMany checks that a waiter for several slots is not passed over
// by waiters for one that come after it.
func TestSlotsMany(t *testing.T) {
	t.Parallel()
	s := newSlots(2)
	s.acquire(priorityScenario, 1, 0)
	admitted := make(chan string, 2)
	go func() {
		s.acquire(priorityQuiet, 2, 0)
		admitted <- "both"
	}()
	eventually(t, eventTimeout, "the waiter for two queued", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.waiting) == 1
	})
	if s.acquire(priorityScenario, 1, 10*time.Millisecond) {
		t.Fatal("a waiter for one passed the waiter for two")
	}
	s.release(1)
	if got := <-admitted; got != "both" {
		t.Fatalf("admitted %s", got)
	}
	if s.acquire(priorityScenario, 1, 10*time.Millisecond) {
		t.Fatal("a slot was taken while the waiter for two holds both")
	}
	s.release(2)
	if !s.acquire(priorityScenario, 1, eventTimeout) {
		t.Fatal("no slot after both were released")
	}
}
