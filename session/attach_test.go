package session

import (
	"testing"
	"time"
)

func TestAttachTimeout(t *testing.T) {
	// A session made before its client came (Params.AttachTimeout): the
	// server's stanzas wait in the queue; the session ends if no
	// request comes within AttachTimeout, and lives by Inactivity once
	// one has.
	for _, tc := range []struct {
		name         string
		attach       time.Duration
		firstRequest time.Duration // 0: none comes
	}{
		{"never attached", 10 * time.Second, 0},
		{"never attached, longer than inactivity", 50 * time.Second, 0},
		{"attached in time", 10 * time.Second, 9 * time.Second},
		{"attached after inactivity, within the attach timeout", 50 * time.Second, 40 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := defaultParams() // Inactivity 30 s
			p.AttachTimeout = tc.attach
			h := newHarness(t, p)
			h.up.send(t, "<roster-push/>")
			h.up.send(t, "<message/>")
			h.waitQueued(2)
			if tc.firstRequest == 0 {
				h.clock.Advance(tc.attach - time.Second)
				if h.reg.Get(h.s.ID) == nil {
					t.Fatalf("session ended before its attach timeout of %v", tc.attach)
				}
				h.clock.Advance(time.Second)
				if h.reg.Get(h.s.ID) != nil {
					t.Fatalf("session still registered at its attach timeout of %v", tc.attach)
				}
				h.waitWritten("<close>")
				return
			}
			h.clock.Advance(tc.firstRequest)
			r := h.request(Request{RID: firstRID + 1})
			carries(t, r, "<roster-push/>", "<message/>")
			h.endsAfterInactivity()
			h.waitWritten("<close>")
		})
	}
}
