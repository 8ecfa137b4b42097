package integration

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Stream management resumption (XEP-0198) over boshd's WebSocket
// endpoint, issue 16 point 4: a client whose WebSocket is lost, or closed
// by a boshd that is restarting, reconnects and resumes its stream with
// Prosody's mod_smacks, and gets what was sent to it meanwhile, once each
// and in order. boshd keeps no state for this: it drops the upstream
// without </stream:stream>, so that Prosody hibernates the session, and
// relays <resume/> on a new stream.

// awayMessages is how many messages bob sends while alice is away.
const awayMessages = 20

// hibernations returns how many sessions Prosody's mod_smacks has put
// into hibernation (a connection lost, not a stream closed), from its log.
func hibernations(p *prosody) int {
	return strings.Count(p.Log(), "Session going into hibernation")
}

// awayBody is the body of bob's i-th message.
func awayBody(i int) string { return fmt.Sprintf("away %d of %d", i, awayMessages) }

// sendAway has bob send alice's full JID the awayMessages numbered
// messages.
func sendAway(send func(string), aliceJID string) {
	for i := 1; i <= awayMessages; i++ {
		send(chat(aliceJID, awayBody(i)))
	}
}

// checkAway checks that alice got bob's numbered messages exactly once
// and in order: first those in before (received on the stream that was
// lost, if any), then the rest on the resumed stream c. Once it has them
// all it makes sure nothing more from bob follows (a resend of one
// already counted would come before the answer to a ping).
func checkAway(t *testing.T, before []*wsMessage, c *wsClient, bobJID string) {
	t.Helper()
	next := 1
	fromBob := func(e *Element) bool { return e.Is(nsClient, "message") && e.Attr("from") == bobJID }
	for _, m := range before {
		if m.El == nil || !fromBob(m.El) {
			continue
		}
		if got := m.El.ChildText(nsClient, "body"); got != awayBody(next) {
			t.Fatalf("before the cut: message %q, want %q", got, awayBody(next))
		}
		next++
	}
	t.Logf("%d of bob's messages came before the cut", next-1)
	for ; next <= awayMessages; next++ {
		e := c.WaitFor("bob's message "+awayBody(next), fromBob)
		if got := e.ChildText(nsClient, "body"); got != awayBody(next) {
			t.Fatalf("after resumption: message %q, want %q", got, awayBody(next))
		}
	}
	c.Sync()
	for _, m := range c.Queued() {
		if m.El != nil && fromBob(m.El) {
			t.Errorf("after all %d: another message from bob: %s", awayMessages, m.Raw)
		}
	}
}

// TestWebSocketResumeAfterCut: alice, over WebSocket, enables resumable
// stream management; her TCP connection to boshd is cut (a reset, no
// close frame); boshd must drop her upstream without </stream:stream>,
// which Prosody shows by hibernating her session. Bob, over BOSH through
// the same boshd, sends her 20 numbered messages meanwhile. Alice
// reconnects on a new WebSocket, authenticates, resumes with the count
// of stanzas she had, gets <resumed/> and then the 20 messages once each,
// in order, and chats again on the resumed stream.
func TestWebSocketResumeAfterCut(t *testing.T) {
	parallel(t)
	st := startWSStack(t, prosodyOptions{Smacks: true}, nil)
	bob, bobRes := st.Login("bob", "PLAIN", "web")
	goOnline(t, bob)

	alice := dialWS(t, "alice", st.WSURL, nil)
	aliceJID := alice.Login(st.P, "SCRAM-SHA-1", "alice", "ws").JID
	previd := alice.EnableSM()
	alice.Send("<presence xmlns='" + nsClient + "'/>")
	alice.Sync()
	hibernated := hibernations(st.P)

	alice.Cut()
	st.WaitMetric(t, `boshd_websocket_sessions_ended_total{reason="client_lost"}`, "the cut seen as a lost client", func(v float64) bool { return v == 1 })
	eventually(t, eventTimeout, "Prosody hibernating alice's session (her upstream dropped, not closed)", func() bool {
		return hibernations(st.P) > hibernated
	})

	sendAway(bob.Send, aliceJID)
	bob.Sync()

	h := alice.H()
	before := alice.Queued()
	again := dialWS(t, "alice again", st.WSURL, nil)
	res := again.Authenticate(st.P.Domain, "PLAIN", "alice", st.P.Passwords["alice"])
	if res.RestartFeatures.Child(nsSM3, "sm") == nil {
		t.Fatalf("no stream management offered to resume with: %s", res.RestartFeatures)
	}
	again.Resume(previd, h)
	checkAway(t, before, again, bobRes.JID)

	again.Send(chat(bobRes.JID, "back"))
	bob.WaitFor("alice's message on the resumed stream", isChat(aliceJID, "back"))
	bob.Send(chat(aliceJID, "welcome back"))
	again.WaitFor("bob's answer on the resumed stream", isChat(bobRes.JID, "welcome back"))
}

// TestWebSocketResumeAcrossRestart: alice, over WebSocket to the boshd
// binary, enables resumable stream management; boshd is stopped with
// SIGTERM. She must get close code 1012 (service restart) and neither a
// stream error nor <close/>, boshd must close the TCP connection once it
// has her close frame, and it must drop her upstream without </stream:stream>
// (Prosody hibernates her session). While boshd is down bob, directly on
// Prosody, sends her 20 numbered messages. A new boshd starts on the same
// address; alice resumes there and gets the 20 once each, in order.
func TestWebSocketResumeAcrossRestart(t *testing.T) {
	parallel(t)
	p := startProsody(t, prosodyOptions{Smacks: true})
	addr, admin := freeAddr(t), freeAddr(t)
	args := []string{"--listen", addr, "--admin-listen", admin,
		"--upstream", p.Domain + "=" + p.Addr, "--upstream-tls", "plaintext"}
	wsURL := "ws://" + addr + "/xmpp-websocket"
	bob := startWatcher(t, p, "bob", "direct", 2*time.Minute)

	first := startBinary(t, args...)
	alice := dialWS(t, "alice", wsURL, nil)
	aliceJID := alice.Login(p, "SCRAM-SHA-1", "alice", "ws").JID
	previd := alice.EnableSM()
	alice.Send("<presence xmlns='" + nsClient + "'/>")
	alice.Sync()
	hibernated := hibernations(p)

	first.Signal(syscall.SIGTERM)
	code, reason := alice.WaitClosed()
	if code != 1012 {
		t.Errorf("close code %d (%q) at shutdown, want 1012 (service restart)", code, reason)
	}
	// Design 003: boshd waits for each client's close frame before
	// closing the TCP connection, bounded by shutdown_timeout.
	alice.CheckClosedCleanly()
	// Design 003: a resumable session sees only the close code: no
	// stream error, nor <close/>, either of which a client takes as the
	// end of its session.
	before := alice.Queued()
	for _, m := range before {
		if m.El == nil || m.El.Is(nsStream, "error") || m.El.Name.Space == nsFraming {
			t.Errorf("a resumable session got %s at shutdown, want only close code 1012", m.Raw)
		}
	}
	if err := first.WaitExit(t, eventTimeout); err != nil {
		t.Errorf("boshd exited with %v after SIGTERM", err)
	}
	eventually(t, eventTimeout, "Prosody hibernating alice's session (her upstream dropped, not closed)", func() bool {
		return hibernations(p) > hibernated
	})
	sendAway(bob.Send, aliceJID)

	h := alice.H()
	startBinary(t, args...)
	again := dialWS(t, "alice again", wsURL, nil)
	again.Authenticate(p.Domain, "PLAIN", "alice", p.Passwords["alice"])
	again.Resume(previd, h)
	checkAway(t, before, again, bob.jid)

	again.Send(chat(bob.jid, "back"))
	bob.WaitFor("alice's message on the resumed stream", eventTimeout, isChat(aliceJID, "back"))
}
