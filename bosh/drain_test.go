package bosh

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
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

// TestDrainForwardsCreation checks the drain of a node with peers: a
// creation it gets goes to the next peer that takes it, passing over one
// that cannot be reached (n3) and one that drains too, and the session
// made there is served through the draining node by forwarding; a
// creation a peer forwarded to a draining node is refused, not forwarded
// again; when no peer takes it, the client gets 503 and Retry-After: 1.
func TestDrainForwardsCreation(t *testing.T) {
	t.Parallel()
	c := newCluster(t, nil)
	c.n1.h.Gateway().Drain()
	dials := c.n1.up.Accepts()

	// n1's peers are tried in turn from a rotating start: n3 (dead) is
	// passed over whichever comes first, and n2 takes every creation.
	for rid := 100; rid < 400; rid += 100 {
		status, _, resp := c.n1.post(sprintf(creationBody, rid, 5))
		sid := attrs(resp)["sid"]
		if status != http.StatusOK || NodeOf(sid) != "n2" {
			t.Fatalf("creation at the draining n1: %d %s, want a session of n2", status, resp)
		}
		// The session is n2's, and n1 forwards its requests there.
		held := c.n1.postAsync(emptyBody(sid, rid+1))
		waitHeld(t, c.n2.h, 1)
		c.n2.up.Push(t, "<message xmlns='jabber:client'><body>via the draining n1</body></message>")
		if got := receive(t, held); !strings.Contains(got, "via the draining n1") {
			t.Fatalf("held request through the draining n1 answered %s", got)
		}
		if _, _, resp := c.n1.post(fmt.Sprintf(`<body xmlns='http://jabber.org/protocol/httpbind' rid='%d' sid='%s' type='terminate'/>`, rid+2, sid)); attrs(resp)["type"] != "terminate" {
			t.Fatalf("terminate through the draining n1 answered %s", resp)
		}
	}
	if got := c.n1.up.Accepts(); got != dials {
		t.Errorf("the draining n1 dialled its upstream %d times", got-dials)
	}
	out := scrape(t, c.n1.h)
	for _, want := range []string{
		`boshd_forwarded_requests_total{outcome="unreachable",peer="n3"} `,
		`boshd_forwarded_requests_total{outcome="ok",peer="n2"} 9` + "\n", // 3 creations, 3 held, 3 terminates
	} {
		if !strings.Contains(out, want) {
			t.Errorf("n1's metrics lack %q:\n%s", want, out)
		}
	}

	// A creation forwarded to a draining node is not forwarded again.
	c.n2.h.Gateway().Drain()
	creation := sprintf(creationBody, 500, 5)
	if status, body := signedPost(t, c.n2.url, testSecret, &hop{from: "n1", client: "203.0.113.9"}, time.Now(), creation); status != http.StatusServiceUnavailable {
		t.Errorf("a forwarded creation at the draining n2: %d %s, want 503", status, body)
	}
	// Both peers refuse or fail: 503, to be retried.
	status, header, body := c.n1.post(sprintf(creationBody, 600, 5))
	if status != http.StatusServiceUnavailable || header.Get("Retry-After") != "1" || strings.Contains(body, "sid=") {
		t.Errorf("creation with no peer taking it: %d, Retry-After %q: %s; want 503 and 1", status, header.Get("Retry-After"), body)
	}
	// Undone, n1 makes its own sessions again.
	c.n1.h.Gateway().Undrain()
	if status, _, resp := c.n1.post(sprintf(creationBody, 700, 5)); status != http.StatusOK || NodeOf(attrs(resp)["sid"]) != "n1" {
		t.Errorf("creation at n1 after the drain: %d %s, want a session of n1", status, resp)
	}
}
