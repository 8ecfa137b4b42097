package session

import (
	"strings"
	"testing"
	"time"

	"github.com/boshd/boshd/internal/wait"
)

func TestShutdown(t *testing.T) {
	h := newHarness(t, defaultParams())
	c := h.hold(firstRID + 1)
	h.reg.Shutdown()
	if r := c.wait(t); r.Condition != SystemShutdown {
		t.Fatalf("got %+v", r)
	}
	if _, err := h.reg.Create(defaultParams(), newFakeUpstream(), 1); err != ErrShutdown {
		t.Fatalf("Create after Shutdown: %v", err)
	}
}

func TestIDsAreUnique(t *testing.T) {
	// XEP-0124 §19.3
	seen := make(map[string]bool)
	for range 10000 {
		id := newID("")
		if len(id) < 22 || seen[id] {
			t.Fatalf("bad or repeated id %q", id)
		}
		seen[id] = true
	}
}

// TestNodeIDs checks that a registry with a Node gives IDs of that node:
// the name, a dot, then the same 144 random bits as a single node's, and
// that logs show the name and eight random characters.
func TestNodeIDs(t *testing.T) {
	for _, tc := range []struct {
		node, prefix string
	}{
		{"", ""},
		{"n1", "n1."},
		{"node-with-a-long-name-0123456789", "node-with-a-long-name-0123456789."},
	} {
		t.Run(tc.node, func(t *testing.T) {
			reg := NewRegistry(nil, nil)
			reg.Node = tc.node
			p := defaultParams()
			s, err := reg.Create(p, newFakeUpstream(), firstRID)
			if err != nil {
				t.Fatal(err)
			}
			defer s.End(SystemShutdown)
			random, ok := strings.CutPrefix(s.ID, tc.prefix)
			if !ok || len(random) != 24 || strings.Trim(random, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
				t.Errorf("ID = %q, want %q and 24 base64url characters", s.ID, tc.prefix)
			}
			if reg.Get(s.ID) != s {
				t.Errorf("Get(%q) does not find the session", s.ID)
			}
			if want := tc.prefix + random[:8] + "…"; s.LogID() != want {
				t.Errorf("LogID() = %q, want %q", s.LogID(), want)
			}
		})
	}
}

func TestStats(t *testing.T) {
	h := newHarness(t, defaultParams())
	ended := make(chan Condition, 2)
	h.reg.OnEnd = func(c Condition) { ended <- c }
	if st := h.reg.Stats(); st.Live != 1 || st.Held != 0 {
		t.Fatalf("after create: %+v", st)
	}
	c := h.hold(firstRID + 1)
	if st := h.reg.Stats(); st.Held != 1 {
		t.Fatalf("with one held: %+v", st)
	}
	h.up.send(t, "<m/>")
	c.wait(t)
	h.up.send(t, "<queued/>")
	h.waitQueued(1)
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

// TestCreateShortInactivity checks that a session whose inactivity ends at
// once is registered, with its ID and logger, before its timer can fire:
// the timer runs on another goroutine (the system clock's).
func TestCreateShortInactivity(t *testing.T) {
	reg := NewRegistry(nil, nil)
	for range 20 {
		p := defaultParams()
		p.Inactivity = time.Nanosecond
		up := newFakeUpstream()
		s, err := reg.Create(p, up, firstRID)
		if err != nil {
			t.Fatal(err)
		}
		if !wait.For(wait.Deadline, s.Ended) {
			t.Fatal("the session did not end after its inactivity")
		}
		up.Close()
	}
}
