package integration

import (
	"fmt"
	"maps"
	"regexp"
	"testing"
	"time"

	"github.com/boshd/boshd/internal/wait"
)

// Live upgrades with WebSocket sessions (issue 18 point 3): a session
// whose client connection and upstream are plaintext moves to the new
// process as a BOSH session does, the same TCP connections on both
// sides; the others are served by the old process until
// upgrade_drain_timeout, then closed with 1012 (TestLiveUpgradeDrainTimeout).

// wsMovedLine matches the WebSocket counts of the old process's log line
// once it has moved what it could.
var wsMovedLine = regexp.MustCompile(`msg="upgrade: sessions moved to the new process" .*websocket_moved=(\d+) websocket_failed=(\d+) websocket_kept=(\d+)`)

// waitWSMoved waits for the n-th hand-over's moves (from 1) to be logged,
// and returns its counts of WebSocket sessions.
func waitWSMoved(t *testing.T, b *boshdProcess, n int) (moved, failed, kept int) {
	t.Helper()
	return waitCounts(t, b, wsMovedLine, n)
}

// wsReceiveInOrder waits for n messages to c from fromJID with the ids
// tag-0 … tag-(n-1), in that order.
func wsReceiveInOrder(t *testing.T, c *wsClient, fromJID, tag string, n int) {
	t.Helper()
	for i := range n {
		m := c.WaitFor(fmt.Sprintf("%s message %d", tag, i), isStanza("message", attrIs("from", fromJID)))
		if want := fmt.Sprintf("%s-%d", tag, i); m.Attr("id") != want {
			t.Fatalf("%s got %s, want id %s: lost, repeated or out of order", c.name, m, want)
		}
	}
}

// TestLiveUpgradeWebSocket is issue 18's upgrade for XMPP over WebSocket
// with real parts: two WebSocket clients logged in to Prosody through
// boshd over a plaintext upstream (one with resumable stream
// management) chat with numbered messages through two SIGUSR2 in a row,
// messages on their way both ways while the sessions move. Each time
// both sessions move to the new process; no client sees a close frame or
// loses its connection; every message arrives once and in order; Prosody
// logs no disconnect of their client streams, and no other connect; each
// old process exits at once, serving nothing.
func TestLiveUpgradeWebSocket(t *testing.T) {
	parallel(t)
	p := startProsody(t, prosodyOptions{Smacks: true})
	b := startUpgradable(t, p, nil, "--config", upgradeConfigFile(t))
	url := "ws://" + b.Addr + "/xmpp-websocket"
	alice := dialWS(t, "alice", url, nil)
	aliceJID := alice.Login(p, "PLAIN", "alice", "ws").JID
	bob := dialWS(t, "bob", url, nil)
	bobJID := bob.Login(p, "SCRAM-SHA-1", "bob", "ws").JID
	bob.EnableSM()
	for _, c := range []*wsClient{alice, bob} {
		c.Send("<presence xmlns='" + nsClient + "'/>")
		c.Sync()
	}
	// round sends n numbered messages each way, then checks each side
	// got the other's, once and in order; between, if not nil, runs
	// while they are on their way.
	round := func(tag string, n int, between func()) {
		t.Helper()
		for i := range n {
			alice.Send(message(bobJID, fmt.Sprintf("%s-a-%d", tag, i), fmt.Sprintf("%s from alice %d", tag, i)))
			bob.Send(message(aliceJID, fmt.Sprintf("%s-b-%d", tag, i), fmt.Sprintf("%s from bob %d", tag, i)))
		}
		if between != nil {
			between()
			// More while the sessions move.
			for i := n; i < 2*n; i++ {
				alice.Send(message(bobJID, fmt.Sprintf("%s-a-%d", tag, i), fmt.Sprintf("%s from alice %d", tag, i)))
				bob.Send(message(aliceJID, fmt.Sprintf("%s-b-%d", tag, i), fmt.Sprintf("%s from bob %d", tag, i)))
			}
			n *= 2
		}
		wsReceiveInOrder(t, bob, aliceJID, tag+"-a", n)
		wsReceiveInOrder(t, alice, bobJID, tag+"-b", n)
	}
	round("r0", 20, nil)
	streams := liveStreams(p.Log())
	if len(streams) != 2 {
		t.Fatalf("Prosody shows %d client streams open, want alice's and bob's: %v", len(streams), streams)
	}

	pids := []int{b.Pid()}
	for n := 1; n <= 2; n++ {
		round(fmt.Sprintf("u%d", n), 20, func() {
			pids = append(pids, upgradeTo(t, b, pids[n-1]))
		})
		if moved, failed, kept := waitWSMoved(t, b, n); moved != 2 || failed != 0 || kept != 0 {
			t.Errorf("hand-over %d moved %d WebSocket sessions, failed %d, kept %d; want 2, 0, 0", n, moved, failed, kept)
		}
		if !wait.For(eventTimeout, func() bool {
			return b.AdminMetric(`boshd_upgrade_websocket_sessions_received_total`) == 2
		}) {
			t.Errorf("process %d received %v WebSocket sessions, want 2", pids[n], b.AdminMetric(`boshd_upgrade_websocket_sessions_received_total`))
		}
		start := time.Now()
		if !wait.For(oldExitBound, func() bool { return processExited(pids[n-1]) }) {
			t.Fatalf("old process %d still runs once its WebSocket sessions moved", pids[n-1])
		}
		t.Logf("old process %d exited %v after its sessions moved", pids[n-1], time.Since(start).Round(time.Millisecond))
		round(fmt.Sprintf("a%d", n), 10, nil)
	}

	// The same connections: no close frame, no end of either client's
	// connection, nothing repeated.
	for _, c := range []*wsClient{alice, bob} {
		c.Sync()
		c.mu.Lock()
		var extra []string
		for _, m := range c.queue {
			if m.El != nil && m.El.Is(nsClient, "message") {
				extra = append(extra, m.Raw)
			}
		}
		closed, readErr := c.closeSeen, c.readErr
		c.mu.Unlock()
		if len(extra) != 0 {
			t.Errorf("%s has more messages than were sent: %s", c.name, extra)
		}
		if closed || readErr != nil {
			t.Errorf("%s: close frame %v, connection ended: %v", c.name, closed, readErr)
		}
	}
	// The same upstream TCP connections: Prosody saw neither client
	// stream disconnect, and no other connect.
	log := p.Log()
	if gone := disconnected(log, streams); len(gone) != 0 {
		t.Errorf("Prosody logged the sessions' client streams %v disconnected through the upgrades", gone)
	}
	if live := liveStreams(log); !maps.Equal(live, streams) {
		t.Errorf("Prosody shows client streams %v open after the upgrades, want the same as before, %v", live, streams)
	}

	// They end as any session does, in the newest process.
	alice.Send(`<close xmlns="` + nsFraming + `"/>`)
	if code, reason := alice.WaitClosed(); code != 1000 {
		t.Errorf("alice's close answered with %d %q, want 1000", code, reason)
	}
	if processExited(pids[2]) {
		t.Fatalf("the newest process (%d) exited", pids[2])
	}
}
