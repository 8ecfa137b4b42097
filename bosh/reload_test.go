package bosh

import (
	"slices"
	"testing"

	"github.com/boshd/boshd/internal/xmpptest"
)

func TestReload(t *testing.T) {
	t.Parallel()
	other := xmpptest.NewRelay(t, testFeatures) // the upstream of the domain served after the reload
	e := newEnv(t, nil)
	_, held := e.holdOne(100)
	waitHeld(t, e.h, 1)

	// Serve another domain instead, limit sessions.
	cfg := e.h.cfg
	cfg.Upstreams = map[string]string{"other.org": other.Addr()}
	cfg.MaxSessions = 1
	cfg.MaxWait = e.h.cfg.MaxWait * 2 // needs a restart
	ignored, err := e.h.Reload(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ignored, []string{"max_wait"}) {
		t.Errorf("ignored keys %q, want max_wait only", ignored)
	}
	// The session for the domain no longer served ends with host-gone.
	if got := attrs(receive(t, held)); got["condition"] != "host-gone" {
		t.Fatalf("held request of a gone domain got %v", got)
	}
	e.up.WaitGot(t, "</stream:stream>")
	// The old domain is refused, the new one served.
	_, _, resp := e.post(sprintf(creationBody, 200, 5))
	if attrs(resp)["condition"] != "host-unknown" {
		t.Fatalf("creation for the old domain: %s", resp)
	}
	body := `<body xmlns='http://jabber.org/protocol/httpbind' rid='300' to='other.org' wait='5' hold='1' ver='1.6'/>`
	if _, _, resp := e.post(body); attrs(resp)["sid"] == "" {
		t.Fatalf("creation for the new domain: %s", resp)
	}
	// max_sessions=1 now holds.
	if _, _, resp := e.post(body); attrs(resp)["condition"] != "policy-violation" {
		t.Fatalf("second session over max_sessions: %s", resp)
	}

	bad := cfg
	bad.MaxWait = 0
	if _, err := e.h.Reload(bad); err == nil {
		t.Fatal("an invalid configuration was applied")
	}
}
