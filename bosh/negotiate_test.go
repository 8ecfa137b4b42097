package bosh

import (
	"testing"

	"github.com/boshd/boshd/config"
)

// TestNegotiate checks the session parameters a creation request gets
// (XEP-0124 §7.1, §12): hold lowered to max_hold, hold='0' kept (a polling
// session), the minor version compared as a number, and only ack='1'
// turning acknowledgements on.
func TestNegotiate(t *testing.T) {
	t.Parallel()
	_, h := newHandler(t, nil, func(cfg *config.Config) { cfg.MaxHold = 2 }, nil)
	for _, tc := range []struct {
		name     string
		change   func(*body)
		hold     int
		requests int
		ver      string
		legacy   bool
		acks     bool
	}{
		{name: "defaults", hold: 1, requests: 2, ver: version},
		{name: "hold above max_hold is lowered", change: func(b *body) { b.hasHold, b.hold = true, "5" }, hold: 2, requests: 3, ver: version},
		{name: "hold at max_hold", change: func(b *body) { b.hasHold, b.hold = true, "2" }, hold: 2, requests: 3, ver: version},
		{name: "hold 0 makes a polling session", change: func(b *body) { b.hasHold, b.hold = true, "0" }, hold: 0, requests: 1, ver: version},
		{name: "ver 1.6 is older", change: func(b *body) { b.ver = "1.6" }, hold: 1, requests: 2, ver: "1.6"},
		{name: "ver 1.10 is older than 1.11, not newer than 1.9", change: func(b *body) { b.ver = "1.10" }, hold: 1, requests: 2, ver: "1.10"},
		{name: "ver 1.9 is older", change: func(b *body) { b.ver = "1.9" }, hold: 1, requests: 2, ver: "1.9"},
		{name: "ver 1.12 gets ours", change: func(b *body) { b.ver = "1.12" }, hold: 1, requests: 2, ver: version},
		{name: "ver 2.0 gets ours", change: func(b *body) { b.ver = "2.0" }, hold: 1, requests: 2, ver: version},
		{name: "no ver is legacy", change: func(b *body) { b.ver = "" }, hold: 1, requests: 2, ver: version, legacy: true},
		{name: "ack 1", change: func(b *body) { b.ack = "1" }, hold: 1, requests: 2, ver: version, acks: true},
		{name: "ack 0, as gloox sends", change: func(b *body) { b.ack = "0" }, hold: 1, requests: 2, ver: version},
		{name: "ack true", change: func(b *body) { b.ack = "true" }, hold: 1, requests: 2, ver: version},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &body{rid: 1, to: "example.org", hasTo: true, hasWait: true, wait: "60", ver: version}
			if tc.change != nil {
				tc.change(b)
			}
			c, err := h.negotiate(b)
			if err != nil {
				t.Fatal(err)
			}
			p := c.params
			if p.Hold != tc.hold || p.Requests != tc.requests || c.ver != tc.ver || p.Legacy != tc.legacy || p.Acks != tc.acks {
				t.Errorf("hold %d, requests %d, ver %q, legacy %v, acks %v; want %d, %d, %q, %v, %v",
					p.Hold, p.Requests, c.ver, p.Legacy, p.Acks, tc.hold, tc.requests, tc.ver, tc.legacy, tc.acks)
			}
		})
	}
}
