package session

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/boshd/boshd/internal/wait"
)

// sessionFields says, for every field of Session, the field of State that
// carries it, or why none does. A field added to Session fails
// TestStateCoversSession until it is named here: a state field forgotten
// in a hand-over would be lost silently.
var sessionFields = map[string]string{
	"ID":         "ID",
	"Params":     "Params",
	"last":       "Last",
	"skipped":    "Skipped",
	"abandoned":  "Abandoned",
	"held":       "Held",
	"streams":    "Streams",
	"turn":       "Turn",
	"cache":      "Cache",
	"answered":   "Answered",
	"key":        "Key",
	"report":     "Report",
	"lastPoll":   "LastPoll",
	"idleSince":  "IdleSince",
	"idleFor":    "IdleFor",
	"pause":      "Pause",
	"unattached": "Unattached",
	// Not carried:
	"queueBytes": "- derived from the streams' queues",
	"log":        "- the new process's logger",
	"clock":      "- the new process's clock",
	"reg":        "- the registry restoring it",
	"mu":         "- a lock",
	"pending":    "- empty when quiet (Snapshot refuses)",
	"gap":        "- runs only while pending is not empty",
	"ops":        "- empty when quiet (Snapshot refuses)",
	"writing":    "- false when quiet (Snapshot refuses)",
	"events":     "- empty outside a locked section",
	"lastSent":   "- closed when quiet (Snapshot refuses)",
	"idle":       "- re-armed from IdleSince and IdleFor",
	"idleAt":     "- re-armed from IdleSince and IdleFor",
	"idleGen":    "- a new timer's",
	"wait":       "- re-armed from the held requests' Due",
	"waitAt":     "- re-armed from the held requests' Due",
	"waitGen":    "- a new timer's",
	"final":      "- nil when quiet: an ended session does not move (Snapshot refuses)",
	"told":       "- goes with final",
	"frozen":     "- false in the new process: set by Freeze, which takes the state",
	"moved":      "- false in the new process: set once it has the session",
	"thawed":     "- nil when not frozen",
	"handing":    "- false in the new process: set by Freeze, which takes the state",
	"users":      "- zero when frozen (Freeze refuses)",
}

// streamFields is sessionFields for a stream and StreamState.
var streamFields = map[string]string{
	"name":       "Name",
	"queue":      "Queue",
	"queuedAt":   "QueuedAt",
	"closed":     "Closed",
	"final":      "Final",
	"up":         "- the upstream's connection moves beside the state",
	"resume":     "- set by the reader started on the restored upstream",
	"unreleased": "- the reader's, cleared before it waits: false while parked",
}

// requestFields is sessionFields for a held request and HeldState.
var requestFields = map[string]string{
	"Request": "- RID and Stream (HeldState); the rest was processed when it was accepted",
	"due":     "Due",
	"done":    "- a new channel",
	"gone":    "- a request whose client left is not carried",
	"notify":  "- set by the new process's handler",
	"call":    "- a new Call, returned by Restore",
}

func TestStateCoversSession(t *testing.T) {
	for _, tc := range []struct {
		typ    reflect.Type
		state  reflect.Type
		fields map[string]string
	}{
		{reflect.TypeFor[Session](), reflect.TypeFor[State](), sessionFields},
		{reflect.TypeFor[stream](), reflect.TypeFor[StreamState](), streamFields},
		{reflect.TypeFor[request](), reflect.TypeFor[HeldState](), requestFields},
	} {
		seen := map[string]bool{}
		for f := range tc.typ.Fields() {
			to, ok := tc.fields[f.Name]
			if !ok {
				t.Errorf("%s.%s: not in the state, nor said why not: add it to the state (state.go) and here", tc.typ.Name(), f.Name)
				continue
			}
			seen[f.Name] = true
			if strings.HasPrefix(to, "- ") {
				continue
			}
			if _, ok := tc.state.FieldByName(to); !ok {
				t.Errorf("%s.%s: carried by %s.%s, which does not exist", tc.typ.Name(), f.Name, tc.state.Name(), to)
			}
		}
		for name := range tc.fields {
			if !seen[name] {
				t.Errorf("%s has no field %s any more: remove it here", tc.typ.Name(), name)
			}
		}
	}
}

// roundTrip encodes st with gob and decodes it, as it crosses processes.
func roundTrip(t *testing.T, st State) State {
	t.Helper()
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(st); err != nil {
		t.Fatal(err)
	}
	var out State
	if err := gob.NewDecoder(&buf).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// restore restores st, as another process would after gob, in a new
// registry on the same clock, on a new upstream; onEnd is its OnEnd.
func restore(t *testing.T, h *harness, st State, onEnd func()) (*Registry, *Session, []*Call, *fakeUpstream) {
	t.Helper()
	moved := roundTrip(t, st)
	if !reflect.DeepEqual(moved, roundTrip(t, st)) || moved.ID != h.s.ID {
		t.Fatalf("the state did not cross gob whole: %+v", moved)
	}
	reg := NewRegistry(slog.New(slog.DiscardHandler), h.clock)
	up := newFakeUpstream()
	t.Cleanup(func() { up.Close() })
	s, calls, err := reg.Restore(moved, []Upstream{up}, onEnd)
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if got := roundTrip(t, again); !reflect.DeepEqual(got, moved) {
		t.Errorf("restored state differs:\n got %+v\nwant %+v", got, moved)
	}
	if reg.Get(h.s.ID) != s {
		t.Error("the restored session is not registered under its ID")
	}
	if got, want := reg.Stats(), h.reg.Stats(); got.Live != 1 || got.Held != want.Held || got.Queued != want.Queued || got.QueuedBytes != want.QueuedBytes {
		t.Errorf("restored registry stats %+v, want those of the session's %+v", got, want)
	}
	return reg, s, calls, up
}

// TestSnapshotRestore moves a session twice: with an element queued from
// the server, then with a request held. The restored session has the
// same state and stats, answers a resend from its cache, gives the
// queued element to the next request, answers the held request with what
// its new upstream sends, and ends with the new OnEnd.
func TestSnapshotRestore(t *testing.T) {
	h := newHarness(t, defaultParams())
	c := h.start(Request{RID: firstRID + 1, Payload: [][]byte{[]byte("<message/>")}})
	h.waitWritten("<message/>")
	h.up.send(t, "<presence from='a'/>")
	first := c.wait(t)
	h.up.send(t, "<presence from='b'/>")
	h.waitQueued(1)

	// Moved with an element queued.
	st, err := h.s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Streams) != 1 || len(st.Streams[0].Queue) != 1 || len(st.Cache) == 0 || st.IdleSince.IsZero() {
		t.Fatalf("state %+v: want one element queued, a cached response, the inactivity clock running", st)
	}
	_, s, _, _ := restore(t, h, st, nil)
	resend, sent, err := s.Handle(context.Background(), Request{RID: firstRID + 1})
	sent()
	if err != nil || !reflect.DeepEqual(resend.Payload, first.Payload) {
		t.Errorf("resent rid answered %+v, %v; want the cached %+v", resend, err, first)
	}
	next, sent, err := s.Handle(context.Background(), Request{RID: firstRID + 2})
	sent()
	if err != nil || len(next.Payload) != 1 || !strings.Contains(string(next.Payload[0]), "from='b'") {
		t.Errorf("the next request answered %+v, %v; want the queued element", next, err)
	}

	// Moved with a request held.
	if r := h.request(Request{RID: firstRID + 2}); len(r.Payload) != 1 {
		t.Fatalf("the next request did not take the queued element: %+v", r)
	}
	h.hold(firstRID + 3)
	st, err = h.s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Held) != 1 || st.Held[0].RID != firstRID+3 || st.Held[0].Due.IsZero() {
		t.Fatalf("state %+v: want rid %d held, due", st, firstRID+3)
	}
	ended := make(chan struct{}, 1)
	_, s, calls, up := restore(t, h, st, func() { ended <- struct{}{} })
	if len(calls) != 1 {
		t.Fatalf("Restore returned %d calls, want 1", len(calls))
	}
	up.send(t, "<message from='new'/>")
	resp, sent, err := calls[0].Wait(context.Background())
	sent()
	if err != nil || resp.RID != firstRID+3 || len(resp.Payload) != 1 || !strings.Contains(string(resp.Payload[0]), "from='new'") {
		t.Fatalf("held request answered %+v, %v; want the new upstream's message", resp, err)
	}
	r, sent, err := s.Handle(context.Background(), Request{RID: firstRID + 4, Terminate: true})
	sent()
	if err != nil || r.Type != TypeTerminate || r.Condition != "" {
		t.Errorf("terminate after the restore answered %+v, %v", r, err)
	}
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Error("the restored session's end did not call the new OnEnd")
	}
}

// TestRestoreRefuses: a state of another version, without its
// upstreams, or under an ID taken, is not restored.
func TestRestoreRefuses(t *testing.T) {
	h := newHarness(t, defaultParams())
	st, err := h.s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	up := newFakeUpstream()
	t.Cleanup(func() { up.Close() })
	old := st
	old.Version = StateVersion + 1
	for name, tc := range map[string]struct {
		reg *Registry
		st  State
		ups []Upstream
	}{
		"version":     {NewRegistry(nil, h.clock), old, []Upstream{up}},
		"no upstream": {NewRegistry(nil, h.clock), st, nil},
		"ID taken":    {h.reg, st, []Upstream{up}},
	} {
		if s, _, err := tc.reg.Restore(tc.st, tc.ups, nil); err == nil || s != nil {
			t.Errorf("%s: restored (%v)", name, err)
		}
	}
}

// TestSnapshotBusy: a session that is not quiet is not taken.
func TestSnapshotBusy(t *testing.T) {
	h := newHarness(t, defaultParams())
	h.start(Request{RID: firstRID + 2}) // ahead of a missing rid: pending
	h.waitFor(func(s *Session) bool { return len(s.pending) == 1 }, "a pending request")
	if _, err := h.s.Snapshot(); !errors.Is(err, ErrBusy) {
		t.Errorf("Snapshot with a request pending: %v, want ErrBusy", err)
	}

	h2 := newHarness(t, defaultParams())
	h2.request(Request{RID: firstRID + 1, Terminate: true})
	if _, err := h2.s.Snapshot(); !errors.Is(err, ErrBusy) {
		t.Errorf("Snapshot of an ended session: %v, want ErrBusy", err)
	}
}

// TestRestoreKeepsInactivity: the inactivity clock runs on from where it
// stood, not from the restore.
func TestRestoreKeepsInactivity(t *testing.T) {
	h := newHarness(t, defaultParams()) // inactivity 30 s
	h.clock.Advance(20 * time.Second)
	st, err := h.s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	_, s, _, _ := restore(t, h, st, nil)
	h.clock.Advance(9 * time.Second)
	if s.Ended() {
		t.Fatal("the restored session ended 29 s into a 30 s inactivity period")
	}
	h.clock.Advance(2 * time.Second)
	if !wait.For(wait.Deadline, s.Ended) {
		t.Error("the restored session did not end 31 s into a 30 s inactivity period")
	}
}
