package integration

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/boshd/boshd/config"
)

// Bad input and graceful shutdown on boshd's WebSocket endpoint, against
// a real Prosody: each ends its own session with the close code or
// stream error that names it (design 003, "Framing"), the upstream
// closed cleanly, while other sessions keep chatting.

// TestWebSocketBadInput sends, on a session of its own, each input of
// design 003's bad-input table that a client library can produce: a
// binary frame (close 1003), invalid UTF-8 in a text message (1007), a
// message over websocket_max_message_size (policy-violation, <close/>,
// 1009), a message of two elements (not-well-formed, <close/>, 1000), and
// an <open/> to a domain boshd does not serve (<open/>, host-unknown,
// <close/>, 1000, with nothing dialled). Each logged-in victim had sent
// bob its presence: bob sees it go with the stream closed, not lost, and
// gets none of the bad input. Bob and carol, on WebSockets of the same
// boshd, chat after each row.
func TestWebSocketBadInput(t *testing.T) {
	parallel(t)
	const maxMessage = 4096
	st := startWSStack(t, prosodyOptions{}, func(cfg *config.Config) { cfg.WebSocketMaxMessageSize = maxMessage })
	bob := dialWS(t, "bob", st.WSURL, nil)
	bobJID := bob.Login(st.P, "PLAIN", "bob", "ws").JID
	carol := dialWS(t, "carol", st.WSURL, nil)
	carolJID := carol.Login(st.P, "PLAIN", "carol", "ws").JID
	keepChatting := func(round string) {
		t.Helper()
		bob.Send(chat(carolJID, round))
		carol.WaitFor("bob's "+round, isChat(bobJID, round))
		carol.Send(chat(bobJID, "re: "+round))
		bob.WaitFor("carol's re: "+round, isChat(carolJID, "re: "+round))
	}
	keepChatting("before")

	tests := []struct {
		name   string
		login  bool              // log the victim in first
		bad    func(c *wsClient) // sends the bad input
		code   ws.StatusCode     // the close frame's
		end    []string          // the last messages, as ExpectEnd takes them
		reason string            // boshd_websocket_sessions_ended_total's
	}{
		{
			name: "binary frame", login: true,
			bad: func(c *wsClient) {
				c.SendFrame(ws.OpBinary, []byte(fmt.Sprintf("<message xmlns='%s' to='%s'><body>binary</body></message>", nsClient, bobJID)))
			},
			code: 1003, reason: "bad_input",
		},
		{
			name: "invalid UTF-8", login: true,
			bad: func(c *wsClient) {
				c.SendFrame(ws.OpText, []byte(fmt.Sprintf("<message xmlns='%s' to='%s'><body>\xff\xfe</body></message>", nsClient, bobJID)))
			},
			code: 1007, reason: "bad_input",
		},
		{
			name: "over websocket_max_message_size", login: true,
			bad:  func(c *wsClient) { c.Send(chat(bobJID, strings.Repeat("x", maxMessage))) },
			code: 1009, end: []string{"error:policy-violation", serverClose}, reason: "bad_input",
		},
		{
			name: "two elements", login: true,
			bad:  func(c *wsClient) { c.Send(chat(bobJID, "one") + chat(bobJID, "two")) },
			code: 1000, end: []string{"error:not-well-formed", serverClose}, reason: "bad_input",
		},
		{
			name: "unserved domain",
			bad:  func(c *wsClient) { c.Send(`<open xmlns="` + nsFraming + `" to="example.org" version="1.0"/>`) },
			code: 1000, end: []string{"open", "error:host-unknown", serverClose}, reason: "refused",
		},
	}
	for i, tt := range tests {
		victim := dialWS(t, "victim "+tt.name, st.WSURL, nil)
		victimJID := ""
		if tt.login {
			victimJID = victim.Login(st.P, "PLAIN", "alice", fmt.Sprintf("victim%d", i)).JID
			directedPresence(t, victim, victimJID, bobJID, bob.WaitFor)
		}
		series := fmt.Sprintf(`boshd_websocket_sessions_ended_total{reason=%q}`, tt.reason)
		ended := metricValue(st.Handler.Metrics(), series)
		connects, accepted := upstreamConnects(st.boshdServer), prosodyConnections(st.P)

		tt.bad(victim)
		victim.ExpectEnd(tt.code, tt.end...)
		st.WaitMetric(t, series, tt.name+": the session's end counted", func(v float64) bool { return v == ended+1 })
		if tt.login {
			checkCleanEnd(t, bob.WaitFor(tt.name+": the victim's unavailable presence", isUnavailableFrom(victimJID)))
		} else {
			if got := upstreamConnects(st.boshdServer); got != connects {
				t.Errorf("%s: boshd dialled %v upstream streams", tt.name, got-connects)
			}
			if got := prosodyConnections(st.P); got != accepted {
				t.Errorf("%s: Prosody accepted %d connections", tt.name, got-accepted)
			}
		}
		keepChatting("after " + tt.name)
		for _, m := range bob.Queued() {
			if victimJID != "" && m.El != nil && m.El.Attr("from") == victimJID {
				t.Errorf("%s: bob got %s", tt.name, m.Raw)
			}
		}
	}
	st.WaitMetric(t, "boshd_websocket_sessions_active", "bob and carol alone left", func(v float64) bool { return v == 2 })
}

// TestWebSocketShutdownNotResumable stops boshd's WebSocket handler
// gracefully while alice's session has no resumable stream management
// (Prosody offers it; she did not enable it): she gets
// <stream:error><system-shutdown/></stream:error>, <close/> and close code
// 1012 (design 003, "Shutdown"), boshd closes her upstream stream cleanly
// (bob, directly on Prosody, sees her go without "Disconnected"), and a
// new upgrade is refused with 503.
func TestWebSocketShutdownNotResumable(t *testing.T) {
	parallel(t)
	st := startWSStack(t, prosodyOptions{Smacks: true}, nil)
	bob := startWatcher(t, st.P, "bob", "direct", 2*time.Minute)
	bobWait := func(what string, match func(*Element) bool) *Element { return bob.WaitFor(what, eventTimeout, match) }
	alice := dialWS(t, "alice", st.WSURL, nil)
	res := alice.Login(st.P, "PLAIN", "alice", "ws")
	if res.RestartFeatures.Child(nsSM3, "sm") == nil {
		t.Fatalf("stream management not offered: %s", res.RestartFeatures)
	}
	directedPresence(t, alice, res.JID, bob.jid, bobWait)

	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	if err := st.WS.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	alice.ExpectEnd(1012, "error:system-shutdown", serverClose)
	checkCleanEnd(t, bobWait("alice's unavailable presence", isUnavailableFrom(res.JID)))
	st.WaitMetric(t, `boshd_websocket_sessions_ended_total{reason="shutdown"}`, "the end counted as a shutdown", func(v float64) bool { return v == 1 })

	_, err := tryDialWS("late", st.WSURL, nil)
	var se ws.StatusError
	if !errors.As(err, &se) || int(se) != http.StatusServiceUnavailable {
		t.Errorf("upgrade after Shutdown: %v, want status 503", err)
	}
}
