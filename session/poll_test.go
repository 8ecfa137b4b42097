package session

import (
	"testing"
	"time"
)

func TestPollingAnsweredAtOnce(t *testing.T) {
	// XEP-0124 §12: wait=0 or hold=0 makes every request come back at
	// once, with what is queued or empty.
	polling := map[string]func(*Params){
		"wait 0": func(p *Params) { p.Wait = 0 },
		"hold 0": func(p *Params) { p.Hold, p.Requests = 0, 1 },
	}
	for name, change := range polling {
		t.Run(name, func(t *testing.T) {
			p := defaultParams()
			change(&p)
			h := newHarness(t, p)
			if r := h.request(Request{RID: firstRID + 1}); r.Type != "" || len(r.Payload) != 0 {
				t.Fatalf("empty poll got %+v", r)
			}
			h.queue("<message id='q'/>")
			r := h.request(Request{RID: firstRID + 2, Payload: [][]byte{[]byte("<m/>")}})
			if r.Type != "" {
				t.Fatalf("poll got %+v", r)
			}
			carries(t, r, "<message id='q'/>")
		})
	}
}

func TestPollingTooOften(t *testing.T) {
	// XEP-0124 §12: two empty polls closer than polling → policy-violation;
	// farther apart, or with data, fine.
	p := defaultParams()
	p.Wait, p.Hold, p.Requests, p.Polling = 0, 0, 1, 5*time.Second
	h := newHarness(t, p)
	h.request(Request{RID: firstRID + 1})
	h.clock.Advance(6 * time.Second)
	h.request(Request{RID: firstRID + 2})
	h.clock.Advance(time.Second)
	if r := h.request(Request{RID: firstRID + 3, Payload: [][]byte{[]byte("<m/>")}}); r.Type != "" {
		t.Fatalf("poll with data got %+v", r)
	}
	if r := h.request(Request{RID: firstRID + 4}); r.Type != "" {
		t.Fatalf("poll after a poll with data got %+v", r)
	}
	h.clock.Advance(time.Second)
	if r := h.request(Request{RID: firstRID + 5}); r.Condition != PolicyViolation {
		t.Fatalf("poll 1 s after an empty poll got %+v", r)
	}
}
