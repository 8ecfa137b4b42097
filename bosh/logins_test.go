package bosh

import (
	"strings"
	"testing"

	"github.com/boshd/boshd/config"
	"github.com/boshd/boshd/internal/wait"
)

// TestLoginsPaced checks max_upstream_logins through a BOSH session: with
// one place, a second session's <auth/> reaches the XMPP server only once
// the server has answered the first session's login, and the client's
// request meanwhile is held like any other.
func TestLoginsPaced(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *config.Config) { c.MaxUpstreamLogins = 1 })
	first := e.create(100, 5)
	second := e.create(200, 5)
	auth := func(sid string, rid int, mark string) string {
		return sprintf(`<body xmlns='http://jabber.org/protocol/httpbind' rid='%d' sid='`, rid) + sid + `'><auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` + mark + `</auth></body>`
	}
	firstAnswer := e.postAsync(auth(first, 101, "FIRST"))
	e.up.WaitGot(t, "FIRST")
	secondAnswer := e.postAsync(auth(second, 201, "SECOND"))
	wait.Until(t, func() bool { return strings.Contains(scrape(t, e.h), "boshd_upstream_logins_waiting 1\n") }, "the second login waiting")
	if e.up.Received("SECOND") {
		t.Fatal("the second session's <auth/> reached the server while the first login held the only place")
	}
	success := `<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`
	e.up.Peer(t, 0).Send(success)
	if got := receive(t, firstAnswer); !strings.Contains(got, "<success") {
		t.Fatalf("the first login was answered %s", got)
	}
	e.up.WaitGot(t, "SECOND")
	e.up.Peer(t, 1).Send(success)
	if got := receive(t, secondAnswer); !strings.Contains(got, "<success") {
		t.Fatalf("the second login was answered %s", got)
	}
	wait.Until(t, func() bool { return strings.Contains(scrape(t, e.h), "boshd_upstream_logins_in_progress 0\n") }, "no login in progress")
}
