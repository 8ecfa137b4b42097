package integration

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/gobwas/ws"

	"github.com/boshd/boshd/config"
)

// End-to-end scenarios of XMPP over WebSocket (RFC 7395, design 003)
// through boshd to a real Prosody: websocket_client_test.go's client
// talks to wsbind mounted beside BOSH on one gateway (serveOptions.
// WebSocket), or to the boshd binary, which mounts it by default.

// startWSStack is startStack with XMPP over WebSocket served too.
func startWSStack(t *testing.T, opts prosodyOptions, configure func(*config.Config)) *stack {
	t.Helper()
	p := startProsody(t, opts)
	cfg := prosodyConfig(p)
	if configure != nil {
		configure(&cfg)
	}
	return &stack{boshdServer: serveBoshd(t, cfg, serveOptions{WebSocket: true}), t: t, P: p}
}

// checkCleanEnd fails t unless pres, the unavailable presence Prosody
// made for a session that ended, says that the stream was closed
// (</stream:stream>): Prosody adds "Disconnected: …" to the one it makes
// for a connection lost (mod_presence, resource-unbind).
func checkCleanEnd(t *testing.T, pres *Element) {
	t.Helper()
	if status := pres.ChildText(nsClient, "status"); strings.HasPrefix(status, "Disconnected") {
		t.Errorf("Prosody saw the connection lost, not the stream closed: %s", pres)
	}
}

// directedPresence sends from's presence to the JID to and waits until
// w, to's client, has it: Prosody then tells to when from's session ends.
func directedPresence(t *testing.T, from *wsClient, fromJID, to string, w func(what string, match func(*Element) bool) *Element) {
	t.Helper()
	from.Send(fmt.Sprintf("<presence xmlns='%s' to='%s'/>", nsClient, to))
	w(fromJID+"'s directed presence", isStanza("presence", attrIs("from", fromJID), attrIs("type", "")))
}

// isUnavailableFrom matches jid's unavailable presence.
func isUnavailableFrom(jid string) func(*Element) bool {
	return isStanza("presence", attrIs("from", jid), attrIs("type", "unavailable"))
}

// isChat matches a message from from with body.
func isChat(from, body string) func(*Element) bool {
	return isStanza("message", attrIs("from", from), func(e *Element) bool { return e.ChildText(nsClient, "body") == body })
}

// chat returns a chat message to to with body.
func chat(to, body string) string {
	return fmt.Sprintf("<message xmlns='%s' type='chat' to='%s'><body>%s</body></message>", nsClient, escape(to), escape(body))
}

// TestWebSocketLoginChatLogout logs alice in over WebSocket (SCRAM-SHA-1,
// the restart of RFC 7395 §3.7 with a new <open/>, bind), gets her
// roster, has her chat both ways with bob over BOSH through the same
// boshd, and closes her stream (§3.6): boshd answers exactly
// <close xmlns="urn:ietf:params:xml:ns:xmpp-framing" /> and close code
// 1000, closes the TCP connection, and Prosody sees the stream closed:
// bob gets alice's unavailable presence without "Disconnected".
func TestWebSocketLoginChatLogout(t *testing.T) {
	parallel(t)
	st := startWSStack(t, prosodyOptions{}, nil)
	alice := dialWS(t, "alice", st.WSURL, nil)
	res := alice.Login(st.P, "SCRAM-SHA-1", "alice", "ws")
	if !strings.HasPrefix(res.JID, "alice@"+st.P.Domain+"/") {
		t.Fatalf("bound %q", res.JID)
	}
	roster := alice.MustIQ("get", "", "<query xmlns='"+nsRoster+"'/>")
	if roster.Child(nsRoster, "query") == nil {
		t.Errorf("roster result without <query/>: %s", roster)
	}

	bob, bobRes := st.Login("bob", "PLAIN", "web")
	goOnline(t, bob)
	alice.Send("<presence xmlns='" + nsClient + "'/>")
	directedPresence(t, alice, res.JID, bobRes.JID, bob.WaitFor)

	alice.Send(chat(bobRes.JID, "hello bob, from a WebSocket"))
	bob.WaitFor("alice's message", isChat(res.JID, "hello bob, from a WebSocket"))
	bob.Send(chat(res.JID, "hello alice, from BOSH"))
	alice.WaitFor("bob's message", isChat(bobRes.JID, "hello alice, from BOSH"))

	alice.Send(`<close xmlns="` + nsFraming + `"/>`)
	alice.ExpectEnd(1000, serverClose)
	checkCleanEnd(t, bob.WaitFor("alice's unavailable presence", isUnavailableFrom(res.JID)))
	st.WaitMetric(t, `boshd_websocket_sessions_ended_total{reason="client_close"}`, "the session counted as closed by its client", func(v float64) bool { return v == 1 })
	st.WaitMetric(t, "boshd_websocket_sessions_active", "no WebSocket session left", func(v float64) bool { return v == 0 })
}

// TestWebSocketChatBetweenWebSockets has two WebSocket sessions chat
// both ways (PLAIN logins); then bob closes his stream while alice's,
// which sees him go, keeps working.
func TestWebSocketChatBetweenWebSockets(t *testing.T) {
	parallel(t)
	st := startWSStack(t, prosodyOptions{}, nil)
	alice := dialWS(t, "alice", st.WSURL, nil)
	aliceJID := alice.Login(st.P, "PLAIN", "alice", "ws").JID
	bob := dialWS(t, "bob", st.WSURL, nil)
	bobJID := bob.Login(st.P, "PLAIN", "bob", "ws").JID
	directedPresence(t, bob, bobJID, aliceJID, alice.WaitFor)
	for i := range 3 {
		body := fmt.Sprintf("ping %d", i)
		alice.Send(chat(bobJID, body))
		bob.WaitFor("alice's "+body, isChat(aliceJID, body))
		bob.Send(chat(aliceJID, "re: "+body))
		alice.WaitFor("bob's re: "+body, isChat(bobJID, "re: "+body))
	}
	bob.Send(`<close xmlns="` + nsFraming + `"/>`)
	bob.ExpectEnd(1000, serverClose)
	checkCleanEnd(t, alice.WaitFor("bob's unavailable presence", isUnavailableFrom(bobJID)))
	alice.Sync()
}

// TestWebSocketFeatures checks what boshd relays of Prosody's features
// over WebSocket (RFC 7395 §3.9, design 003): no <starttls/> (boshd does
// TLS upstream itself), no -PLUS mechanism (its channel binding would be
// boshd's TLS), and urn:xmpp:sm:3 kept after authentication when Prosody
// offers it (mod_smacks): stream management belongs to the client's
// stream here, unlike BOSH's (TestFeaturesFiltered).
func TestWebSocketFeatures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		opts        prosodyOptions
		upstreamTLS string
		offers      []string // what Prosody must offer directly: starttls, plus, sm
		sm          bool     // urn:xmpp:sm:3 relayed after authentication
	}{
		{"starttls upstream", prosodyOptions{TLS: true, TLS12: true, Smacks: true}, "starttls", []string{"starttls", "plus", "sm"}, true},
		{"plaintext upstream", prosodyOptions{TLS: true, TLSOptional: true, Smacks: true}, "plaintext", []string{"starttls", "sm"}, true},
		{"no smacks", prosodyOptions{}, "plaintext", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parallel(t)
			p := startProsody(t, tt.opts)
			directInitial, directPreAuth, directPostAuth := directFeatures(t, p, "bob")
			offered := map[string]bool{
				"starttls": directInitial.Child(nsTLS, "starttls") != nil,
				"plus":     slices.ContainsFunc(mechanisms(directPreAuth), func(m string) bool { return strings.HasSuffix(m, "-PLUS") }),
				"sm":       directPostAuth.Child(nsSM3, "sm") != nil,
			}
			for _, want := range tt.offers {
				if !offered[want] {
					t.Fatalf("prosody itself does not offer %s: %s %s %s", want, directInitial, directPreAuth, directPostAuth)
				}
			}
			if offered["sm"] != tt.sm {
				t.Fatalf("prosody itself offers stream management: %v, want %v", offered["sm"], tt.sm)
			}

			cfg := prosodyConfig(p)
			cfg.UpstreamTLS = tt.upstreamTLS
			s := serveBoshd(t, cfg, serveOptions{WebSocket: true})
			alice := dialWS(t, "alice", s.WSURL, nil)
			res := alice.Login(p, "PLAIN", "alice", "ws")
			for _, f := range []struct {
				name     string
				features *Element
			}{
				{"initial", res.Features},
				{"after the restart", res.RestartFeatures},
			} {
				checkRelayedFeatures(t, f.name, f.features, true)
			}
			if !slices.Contains(mechanisms(res.Features), "PLAIN") {
				t.Errorf("initial features lack PLAIN: %s", res.Features)
			}
			if got := res.RestartFeatures.Child(nsSM3, "sm") != nil; got != tt.sm {
				t.Errorf("urn:xmpp:sm:3 relayed after authentication: %v, want %v: %s", got, tt.sm, res.RestartFeatures)
			}
			if tt.sm {
				alice.EnableSM()
			}
			alice.Sync()
		})
	}
}

// upgradeRequest sends a WebSocket handshake to url by hand with the
// given subprotocols (none if empty) and Origin (none if empty), and
// returns the response's status.
func upgradeRequest(t *testing.T, url, origin string, protocols ...string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http"+strings.TrimPrefix(url, "ws"), nil)
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 16)
	rand.Read(key)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", base64.StdEncoding.EncodeToString(key))
	if len(protocols) > 0 {
		req.Header.Set("Sec-WebSocket-Protocol", strings.Join(protocols, ", "))
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	c := &http.Client{Timeout: eventTimeout}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("upgrade request: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// upstreamConnects returns how many upstream streams boshd has dialled,
// whatever the result.
func upstreamConnects(s *boshdServer) float64 {
	m := s.Handler.Metrics()
	return metricValue(m, `boshd_upstream_connect_seconds_count{result="ok"}`) +
		metricValue(m, `boshd_upstream_connect_seconds_count{result="error"}`)
}

// prosodyConnections returns how many c2s connections Prosody has
// accepted, from its log.
func prosodyConnections(p *prosody) int {
	return strings.Count(p.Log(), "Client connected")
}

// TestWebSocketRefusedBeforeDial checks the refusals of an upgrade
// (design 003, step 1): without the xmpp subprotocol (RFC 7395 §3.1) 400,
// from a foreign Origin (RFC 6455 §10.2) 403, each counted by its reason,
// with nothing dialled (boshd's connect histogram and Prosody's log do
// not move) and no session counted. An Origin that is boshd's own is
// admitted, so the 403 is the Origin's doing.
func TestWebSocketRefusedBeforeDial(t *testing.T) {
	parallel(t)
	st := startWSStack(t, prosodyOptions{}, nil)
	connects, accepted := upstreamConnects(st.boshdServer), prosodyConnections(st.P)
	tests := []struct {
		name      string
		origin    string
		protocols []string
		status    int
		reason    string
	}{
		{"no subprotocol", "", nil, http.StatusBadRequest, "subprotocol"},
		{"another subprotocol", "", []string{"chat"}, http.StatusBadRequest, "subprotocol"},
		{"foreign origin", "http://evil.example", []string{"xmpp"}, http.StatusForbidden, "origin"},
		{"foreign port", "http://127.0.0.1:1", []string{"xmpp"}, http.StatusForbidden, "origin"},
	}
	want := map[string]float64{}
	for _, tt := range tests {
		if got := upgradeRequest(t, st.WSURL, tt.origin, tt.protocols...); got != tt.status {
			t.Errorf("%s: status %d, want %d", tt.name, got, tt.status)
		}
		want[tt.reason]++
	}
	for reason, n := range want {
		series := fmt.Sprintf(`boshd_websocket_upgrades_refused_total{reason=%q}`, reason)
		if got := metricValue(st.Handler.Metrics(), series); got != n {
			t.Errorf("%s = %v, want %v", series, got, n)
		}
	}
	if got := metricValue(st.Handler.Metrics(), "boshd_websocket_sessions_created_total"); got != 0 {
		t.Errorf("boshd_websocket_sessions_created_total = %v after refusals only", got)
	}
	if got := upstreamConnects(st.boshdServer); got != connects {
		t.Errorf("boshd dialled %v upstream streams for refused upgrades", got-connects)
	}
	if got := prosodyConnections(st.P); got != accepted {
		t.Errorf("Prosody accepted %d connections for refused upgrades", got-accepted)
	}

	// boshd's own origin, as a page it serves would send it, is admitted.
	own := dialWS(t, "own origin", st.WSURL, http.Header{"Origin": {st.Origin}})
	own.Login(st.P, "PLAIN", "alice", "own")
	own.Send(`<close xmlns="` + nsFraming + `"/>`)
	own.ExpectEnd(1000, serverClose)
}

// TestWebSocketSessionLimitSharedWithBOSH checks that max_sessions_per_ip
// counts BOSH and WebSocket sessions together (design 003, "One
// gateway"): with a limit of 1, a session of either binding refuses one
// of the other (an upgrade with 429, a BOSH creation with
// policy-violation) before anything is dialled, and admits it once it
// has ended.
func TestWebSocketSessionLimitSharedWithBOSH(t *testing.T) {
	t.Parallel()
	limit := func(cfg *config.Config) { cfg.MaxSessionsPerIP = 1 }
	t.Run("bosh first", func(t *testing.T) {
		parallel(t)
		st := startWSStack(t, prosodyOptions{}, limit)
		bosh, _ := st.Login("bob", "PLAIN", "web")
		connects := upstreamConnects(st.boshdServer)
		_, err := tryDialWS("alice", st.WSURL, nil)
		var se ws.StatusError
		if !errors.As(err, &se) || int(se) != http.StatusTooManyRequests {
			t.Fatalf("upgrade beside a BOSH session: %v, want status 429", err)
		}
		if got := upstreamConnects(st.boshdServer); got != connects {
			t.Errorf("boshd dialled %v upstream streams for a refused upgrade", got-connects)
		}
		st.WaitMetric(t, `boshd_websocket_upgrades_refused_total{reason="limit"}`, "the refusal counted", func(v float64) bool { return v == 1 })
		checkTerminateType(t, bosh.Terminate(""))
		alice := dialWS(t, "alice", st.WSURL, nil)
		alice.Login(st.P, "PLAIN", "alice", "ws")
	})
	t.Run("websocket first", func(t *testing.T) {
		parallel(t)
		st := startWSStack(t, prosodyOptions{}, limit)
		alice := dialWS(t, "alice", st.WSURL, nil)
		alice.Login(st.P, "PLAIN", "alice", "ws")
		connects := upstreamConnects(st.boshdServer)
		refused := newClient(t, "bob", st.URL)
		ex := refused.Create(createOptions{})
		if ex.Body == nil {
			t.Fatalf("BOSH creation beside a WebSocket session: status %d, no body", ex.Status)
		}
		checkTerminate(t, ex.Body, "policy-violation")
		if got := upstreamConnects(st.boshdServer); got != connects {
			t.Errorf("boshd dialled %v upstream streams for a refused BOSH session", got-connects)
		}
		alice.Send(`<close xmlns="` + nsFraming + `"/>`)
		alice.ExpectEnd(1000, serverClose)
		st.WaitMetric(t, "boshd_websocket_sessions_active", "alice's session gone", func(v float64) bool { return v == 0 })
		st.Login("bob", "PLAIN", "web")
	})
}
