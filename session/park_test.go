package session

import (
	"context"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

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
