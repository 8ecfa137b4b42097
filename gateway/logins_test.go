package gateway

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/boshd/boshd/config"
)

// TestLoginGateWired checks that max_upstream_logins gives the Dialer a
// gate of that many places, and 0 none.
func TestLoginGateWired(t *testing.T) {
	t.Parallel()
	if g := newGateway(t, nil); g.dialer.Logins == nil || cap(g.dialer.Logins.(*loginGate).places) != 8 {
		t.Errorf("by default the Dialer's gate is %#v, want one of 8 places", g.dialer.Logins)
	}
	if g := newGateway(t, func(c *config.Config) { c.MaxUpstreamLogins = 0 }); g.dialer.Logins != nil {
		t.Errorf("with max_upstream_logins 0 the Dialer has a gate: %#v", g.dialer.Logins)
	}
}

// TestLoginGate checks the gate's places, its bounded wait, a wait ended
// by its context, and the metrics of each.
func TestLoginGate(t *testing.T) {
	t.Parallel()
	g := newGateway(t, nil)
	gate := newLoginGate(2, g.Metrics())
	gate.bound = 50 * time.Millisecond
	ctx := context.Background()
	if !gate.Enter(ctx) || !gate.Enter(ctx) {
		t.Fatal("Enter refused with a place free")
	}
	if gate.Enter(ctx) {
		t.Fatal("Enter with both places held let a third login in")
	}
	cancelled, cancel := context.WithCancel(ctx)
	done := make(chan bool)
	go func() { done <- gate.Enter(cancelled) }()
	cancel()
	if <-done {
		t.Fatal("Enter with its context ended let a login in")
	}
	gate.Leave()
	if !gate.Enter(ctx) {
		t.Fatal("Enter refused after a Leave")
	}
	gate.Leave()
	gate.Leave()

	// A waiter gets the place the moment one is left.
	one := newLoginGate(1, g.Metrics())
	if !one.Enter(ctx) {
		t.Fatal("Enter refused with a place free")
	}
	go func() { done <- one.Enter(ctx) }()
	one.Leave()
	if !<-done {
		t.Fatal("a waiting Enter did not get the place left")
	}
	one.Leave()
	out := scrape(g)
	for _, want := range []string{
		"boshd_upstream_logins_in_progress 0\n",
		"boshd_upstream_logins_waiting 0\n",
		"boshd_upstream_login_waits_given_up_total 1\n",
		"boshd_upstream_login_wait_seconds_count 6\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if t.Failed() {
		t.Log(out)
	}
}
