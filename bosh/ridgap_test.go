package bosh

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/boshd/boshd/config"
)

// TestRIDGapAfterReload checks, over HTTP, that a session survives a client
// that skips a rid, as the browser tests (integration/browser_test.go,
// TestBrowserStropheKeepalive, "request in flight") found it must.
//
// Strophe.js with keepalive stores the next rid in sessionStorage when it
// builds a request, before the request is sent. When the page is reloaded
// while a request is being built or sent (a poll right after a response,
// a message just typed), that request can die with the old page without
// ever reaching the connection manager, and the restored page continues
// with the rid after it (a connection manager must tolerate such small
// gaps, XEP-0124 §14.3; converse.js#2911 and #3309 show the symptom).
//
// The sequence: the session's last rid is N; the old page's held request
// N+1 is abandoned (its connection closes, XEP-0124 §14.3); N+2 never arrives;
// the new page sends N+3. N+3 must be answered (here with the message the
// server sent meanwhile) and the session go on. Before the fix, N+3 waited
// for N+2 forever, every resend of it too, and as a request was pending
// the inactivity timer never ran: the session hung.
func TestRIDGapAfterReload(t *testing.T) {
	srv, h := startHandler(t, func(cfg *config.Config) { cfg.MaxWait = 2 * time.Second }, nil)
	hs := serve(t, h)
	post := func(ctx context.Context, body string) (string, error) {
		req, err := http.NewRequestWithContext(ctx, "POST", hs.URL, strings.NewReader(body))
		if err != nil {
			return "", err
		}
		req.Header.Set("Content-Type", "text/xml; charset=utf-8")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	c := newClient(t, hs.URL)
	sid := c.create(1000, 2)
	empty := func(rid int) string { return emptyBody(sid, rid) }

	// The old page: rid 1001 is held, then its page goes away.
	ctx, cancel := context.WithCancel(context.Background())
	held := make(chan error, 1)
	go func() {
		_, err := post(ctx, empty(1001))
		held <- err
	}()
	waitHeld(t, h, 1)
	cancel()
	<-held
	waitHeld(t, h, 0)

	// rid 1002 died with the old page. The new page goes on with 1003.
	srv.Push(t, "<message xmlns='jabber:client' id='during-reload'/>")
	for attempt := 1; attempt <= 2; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second+3*time.Second)
		got, err := post(ctx, empty(1003))
		cancel()
		if err != nil {
			t.Fatalf("attempt %d: rid 1003 after a gap at 1002 not answered within wait+3s: %v", attempt, err)
		}
		a := attrs(got)
		if a["type"] != "" {
			t.Fatalf("attempt %d: rid 1003 after a gap: %s, want the session to go on", attempt, got)
		}
		if strings.Contains(got, "during-reload") {
			break
		}
	}
	next := c.postAsync(empty(1004))
	srv.Push(t, "<message xmlns='jabber:client' id='after-reload'/>")
	if got := receive(t, next); attrs(got)["type"] != "" || !strings.Contains(got, "after-reload") {
		t.Fatalf("rid 1004: %s", got)
	}
}
