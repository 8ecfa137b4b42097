package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// Real browsers through HAProxy in front of three boshd nodes (issue 17,
// points 5 and 6): Strophe.js and Converse.js in Chromium log in and
// chat over BOSH and over WebSocket; kill -9 of the node holding a BOSH
// session gets its client item-not-found promptly and it reconnects onto
// a live node; a Converse.js WebSocket session with stream management
// resumes onto a live node with nothing lost.

// browserCluster is a haproxyCluster with the test pages on an origin of
// their own, which every node lists in cors_origins, and control routes
// through which run.mjs asks the test to act.
type browserCluster struct {
	*haproxyCluster
	tools *browserTools
	users map[string]browserUser
	// Origin serves the pages, BuildDir what run.mjs builds for them.
	Origin, BuildDir string

	mu      sync.Mutex
	control map[string]func(r *http.Request) (any, error)
}

// startBrowserCluster starts the pages' server, then the cluster (Prosody
// with opts) with the pages' origin allowed on every node.
func startBrowserCluster(t *testing.T, opts prosodyOptions) *browserCluster {
	t.Helper()
	bc := &browserCluster{tools: needBrowser(t), control: map[string]func(*http.Request) (any, error){}}
	bc.BuildDir = filepath.Join(t.TempDir(), "build")
	if err := os.MkdirAll(bc.BuildDir, 0o755); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	pageRoutes(mux, bc.tools, bc.BuildDir)
	mux.HandleFunc("POST /control/{name}", func(w http.ResponseWriter, r *http.Request) {
		bc.mu.Lock()
		do := bc.control[r.PathValue("name")]
		bc.mu.Unlock()
		if do == nil {
			http.NotFound(w, r)
			return
		}
		res, err := do(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(res)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	bc.Origin = srv.URL
	bc.haproxyCluster = startHAProxyClusterArgs(t, opts, "--cors-origins", bc.Origin)
	bc.users = browserUsers(t, bc.P)
	return bc
}

// Handle sets what POST /control/name does.
func (bc *browserCluster) Handle(name string, do func(r *http.Request) (any, error)) {
	bc.mu.Lock()
	defer bc.mu.Unlock()
	bc.control[name] = do
}

// Input returns run.mjs's input for scenario with the cluster's URLs.
func (bc *browserCluster) Input(scenario string, extra map[string]any) map[string]any {
	in := map[string]any{
		"scenario":   scenario,
		"baseURL":    bc.Origin,
		"buildDir":   bc.BuildDir,
		"users":      bc.users,
		"serviceURL": bc.URL,
		"wsURL":      bc.WSURL,
		"controlURL": bc.Origin + "/control",
	}
	for k, v := range extra {
		in[k] = v
	}
	return in
}

// killNode kills (kill -9) node and waits for HAProxy to see it down.
func (bc *browserCluster) killNode(node string) error {
	n := bc.nodes[node]
	if n == nil {
		return fmt.Errorf("no node %q", node)
	}
	if !n.Kill() {
		return fmt.Errorf("%s was not reaped", node)
	}
	return nil
}

// TestBrowserHAProxyBOSHKill is point 5 for BOSH clients in a browser:
// alice and bob log in through HAProxy with Strophe.js (and, in the other
// subtest, Converse.js with auto_reconnect) and chat; kill -9 of alice's
// node gets her client item-not-found within a couple of seconds, and it
// logs in again onto a live node, through the same URL; bob, on another
// node, goes on with the session he had.
func TestBrowserHAProxyBOSHKill(t *testing.T) {
	t.Parallel()
	for _, client := range []string{"strophe", "converse"} {
		t.Run(client, func(t *testing.T) {
			t.Parallel()
			bc := startBrowserCluster(t, prosodyOptions{})
			var killed string
			bc.Handle("kill", func(r *http.Request) (any, error) {
				sid, other := r.URL.Query().Get("sid"), r.URL.Query().Get("other")
				node, otherNode := nodeOf(sid), nodeOf(other)
				if node == otherNode {
					return nil, fmt.Errorf("alice's session %s and bob's %s are on one node, %s", sid, other, node)
				}
				if err := bc.killNode(node); err != nil {
					return nil, err
				}
				killed = node
				return map[string]string{"node": node, "bobNode": otherNode}, nil
			})
			res := runBrowser(t, bc.tools, bc.Input("cluster-bosh", map[string]any{"client": client}))
			t.Logf("killed %s; alice's sids %v, bob's %v; item-not-found %v ms after the kill was asked",
				killed, res["aliceSIDs"], res["bobSIDs"], res["itemNotFoundMs"])
			if ms := number(t, res, "itemNotFoundMs"); ms > 2500 {
				t.Errorf("alice's client was told item-not-found %v ms after the kill was asked, want within 2.5 s (2 s and the kill itself)", ms)
			}
			sids, _ := res["sids"].(map[string]any)
			after, _ := sids["aliceAfter"].(string)
			if node := nodeOf(after); node == killed || bc.nodes[node] == nil {
				t.Errorf("alice's new session %q is not on a live node of the cluster (%s was killed)", after, killed)
			}
			if bob, _ := res["bobSIDs"].([]any); len(bob) != 1 {
				t.Errorf("bob's requests used sids %v, want his one session", bob)
			}
			for _, u := range res["boshURLs"].([]any) {
				if u != bc.URL {
					t.Errorf("a BOSH request went to %v, not HAProxy's %s", u, bc.URL)
				}
			}
			// The live nodes saw nothing wrong.
			for _, n := range haproxyNodes {
				if n.name == killed {
					continue
				}
				if lines := grepLines(bc.nodes[n.name].Log(), "level=ERROR"); lines != "" {
					t.Errorf("%s logged errors:\n%s", n.name, lines)
				}
			}
		})
	}
}

// TestBrowserHAProxyWebSocket has Strophe.js and Converse.js log in and
// chat over XMPP over WebSocket through HAProxy (run.mjs's ws-chat):
// leastconn spreads the upgrades over the nodes.
func TestBrowserHAProxyWebSocket(t *testing.T) {
	t.Parallel()
	bc := startBrowserCluster(t, prosodyOptions{})
	created := func() (per map[string]float64, sum float64) {
		per = map[string]float64{}
		for _, n := range haproxyNodes {
			per[n.name] = parseMetric(bc.Metrics(n.name), "boshd_websocket_sessions_created_total")
			sum += per[n.name]
		}
		return per, sum
	}
	for _, client := range []string{"strophe", "converse"} {
		t.Run(client, func(t *testing.T) {
			_, before := created()
			res := runBrowser(t, bc.tools, bc.Input("ws-chat", map[string]any{"client": client}))
			if urls, _ := res["wsURLs"].([]any); len(urls) != 1 || urls[0] != bc.WSURL {
				t.Errorf("WebSockets went to %v, want HAProxy's %s only", urls, bc.WSURL)
			}
			if urls, _ := res["boshURLs"].([]any); len(urls) != 0 {
				t.Errorf("BOSH requests to %v", urls)
			}
			per, after := created()
			t.Logf("WebSocket sessions created per node so far: %v", per)
			if after-before < 2 {
				t.Errorf("the nodes created %v WebSocket sessions for alice and bob, want 2 at least", after-before)
			}
		})
	}
	per, _ := created()
	spread := 0
	for _, n := range per {
		if n > 0 {
			spread++
		}
	}
	if spread < 2 {
		t.Errorf("leastconn put every WebSocket session on one node: %v", per)
	}
}

// TestBrowserHAProxyResume is point 5 for WebSocket clients: Converse.js
// with enable_smacks logged in as alice through HAProxy; the node holding
// her WebSocket is killed (kill -9), bob (a client of Prosody's own) sends
// her numbered messages meanwhile; Converse.js reconnects through HAProxy
// onto a live node and resumes her stream there (Prosody's mod_smacks
// kept it), every message shown once, in order.
func TestBrowserHAProxyResume(t *testing.T) {
	t.Parallel()
	bc := startBrowserCluster(t, prosodyOptions{Smacks: true})
	bob := startWatcher(t, bc.P, "bob", "go", browserRunTimeout)
	var killed string
	bc.Handle("away", func(*http.Request) (any, error) {
		for _, n := range haproxyNodes {
			if parseMetric(bc.Metrics(n.name), "boshd_websocket_sessions_active") > 0 {
				killed = n.name
				break
			}
		}
		if killed == "" {
			return nil, fmt.Errorf("no node holds alice's WebSocket")
		}
		if err := bc.killNode(killed); err != nil {
			return nil, err
		}
		if err := sendNumbered(bob, bc.users["alice"].JID, 0); err != nil {
			return nil, err
		}
		return map[string]any{"killed": killed, "sent": resumeMessages}, nil
	})
	in := bc.Input("converse-resume", map[string]any{"count": resumeMessages, "prefix": resumePrefix})
	res := runBrowser(t, bc.tools, in)
	checkResumed(t, res)
	if code := droppedClose(res); code != float64(1006) {
		t.Errorf("the killed node's WebSocket closed with %v, want 1006 (no close frame)", code)
	}
	// Resumed on a live node: one of the others has the session now.
	resumedOn := ""
	for _, n := range haproxyNodes {
		if n.name != killed && parseMetric(bc.Metrics(n.name), "boshd_websocket_sessions_created_total") > 0 {
			resumedOn = n.name
		}
	}
	if resumedOn == "" {
		t.Errorf("no live node took alice's WebSocket after %s was killed", killed)
	}
	t.Logf("alice's WebSocket: on %s, killed; resumed through %s", killed, resumedOn)
}
