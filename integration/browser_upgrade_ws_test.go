package integration

import (
	"testing"

	"github.com/boshd/boshd/internal/wait"
)

// TestBrowserUpgradeWebSocket is run.mjs's ws-upgrade-chat for Strophe.js
// and xmpp.js over XMPP over WebSocket (issue 18 point 3): alice and bob
// chat with numbered messages while boshd goes through browserUpgrades
// upgrades over a plaintext upstream, each started as the messages are on
// their way. Both WebSocket sessions move to the new process at the first
// hand-over and none is kept or fails later; each page keeps the one
// WebSocket it opened (no close frame, no reconnect); every message
// arrives once and in order; each old process exits, the newest stays.
func TestBrowserUpgradeWebSocket(t *testing.T) {
	t.Parallel()
	for _, client := range []string{"strophe", "xmppjs"} {
		t.Run(client, func(t *testing.T) {
			t.Parallel()
			tools := needBrowser(t)
			p := startProsody(t, prosodyOptions{})
			users := browserUsers(t, p)

			line := new(upgradeLine)
			pages := servePages(t, tools, map[string]func() (any, error){"upgrade": line.upgrade})
			b := line.start(startUpgradable(t, p, nil, "--config", upgradeConfigFile(t), "--cors-origins", pages.Origin))
			t.Cleanup(func() { checkBoshdLog(t, b.Log()) })

			res := runBrowser(t, tools, map[string]any{
				"scenario":   "ws-upgrade-chat",
				"client":     client,
				"baseURL":    pages.Origin,
				"buildDir":   pages.BuildDir,
				"users":      users,
				"wsURL":      "ws://" + b.Addr + "/xmpp-websocket",
				"controlURL": pages.Origin + "/control",
				"upgrades":   browserUpgrades,
				"messages":   browserUpgradeMessages,
			})
			t.Logf("%v upgrades", res["upgrades"])

			pids := line.processes()
			if len(pids) != browserUpgrades+1 {
				t.Fatalf("processes %v, want %d: one per upgrade and the first", pids, browserUpgrades+1)
			}
			all := wsMovedLine.FindAllStringSubmatch(b.Log(), -1)
			if len(all) != browserUpgrades {
				t.Errorf("%d hand-overs logged their moves, want %d", len(all), browserUpgrades)
			}
			for i, m := range all {
				moved, failed, kept := m[1], m[2], m[3]
				if i == 0 && moved != "2" || failed != "0" || kept != "0" {
					t.Errorf("hand-over %d moved, failed, kept %v, %v, %v WebSocket sessions", i+1, moved, failed, kept)
				}
			}
			newest := pids[len(pids)-1]
			for _, pid := range pids[:len(pids)-1] {
				if !wait.For(oldExitBound, func() bool { return processExited(pid) }) {
					t.Errorf("old process %d still runs", pid)
				}
			}
			if processExited(newest) {
				t.Fatalf("the newest process (%d) exited", newest)
			}
			if n := countLines(b.Log(), "websocket session ended", "shutdown"); n > 0 {
				t.Errorf("%d WebSocket sessions ended by a shutdown:\n%s", n, grepLines(b.Log(), "websocket session ended"))
			}
		})
	}
}
