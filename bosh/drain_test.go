package bosh

import (
	"net/http"
	"strings"
	"testing"
)

// TestDrainRefusesCreation checks design 004's drain for BOSH: while the
// gateway drains, a creation gets 503 with Retry-After: 1 before the
// upstream is dialled or a session counted, a session opened before goes
// on, and undoing the drain admits creations again.
func TestDrainRefusesCreation(t *testing.T) {
	e := newEnv(t, nil)
	sid, held := e.holdOne(100)
	waitHeld(t, e.h, 1)
	dials := e.up.Accepts()

	if !e.h.Gateway().Drain() {
		t.Fatal("Drain reported the gateway draining already")
	}
	for _, tc := range []struct {
		name string
		body string
	}{
		{"creation", sprintf(creationBody, 500, 5)},
		{"legacy creation", `<body xmlns='http://jabber.org/protocol/httpbind' content='text/xml; charset=utf-8' hold='1' rid='600' to='example.org' wait='5'/>`},
	} {
		status, header, body := e.post(tc.body)
		if status != http.StatusServiceUnavailable || header.Get("Retry-After") != "1" {
			t.Errorf("%s while draining: status %d, Retry-After %q, want 503 and 1: %s", tc.name, status, header.Get("Retry-After"), body)
		}
		if strings.Contains(body, "sid=") {
			t.Errorf("%s while draining: a session in %s", tc.name, body)
		}
	}
	if got := e.up.Accepts(); got != dials {
		t.Errorf("the upstream was dialled %d times while draining", got-dials)
	}
	if total, _ := e.h.g.Sessions("127.0.0.1"); total != 1 {
		t.Errorf("%d sessions counted while draining, want the 1 opened before", total)
	}
	if m := scrape(t, e.h); !strings.Contains(m, `boshd_requests_total{outcome="refused"} 2`) {
		t.Errorf("refusals not counted as refused:\n%s", m)
	}

	// The session opened before draining goes on: the upstream's push
	// answers its held request, and its next request is served.
	e.up.Push(t, "<message xmlns='jabber:client'><body>still here</body></message>")
	if got := receive(t, held); !strings.Contains(got, "still here") {
		t.Fatalf("held request of the session opened before draining: %s", got)
	}
	next := e.postAsync(emptyBody(sid, 102))
	waitHeld(t, e.h, 1)
	e.up.Push(t, "<message xmlns='jabber:client'><body>and here</body></message>")
	if got := receive(t, next); !strings.Contains(got, "and here") {
		t.Fatalf("next request of the session opened before draining: %s", got)
	}

	if !e.h.Gateway().Undrain() {
		t.Fatal("Undrain reported the gateway not draining")
	}
	if status, _, body := e.post(sprintf(creationBody, 700, 5)); status != http.StatusOK || attrs(body)["sid"] == "" {
		t.Fatalf("creation after undoing the drain: %d %s", status, body)
	}
}
