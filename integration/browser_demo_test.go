package integration

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/boshd/boshd/internal/wait"
)

// demoServer is scripts/demo running for a test.
type demoServer struct {
	URL       string            // the chat page's URL, as printed
	Passwords map[string]string // alice's and bob's, as printed
	Output    *logBuffer        // what the script printed
}

// startDemo runs scripts/demo as the README says, on free ports and in a
// temporary directory, with args for boshd, and returns once the page it
// printed is served. The demo (its Prosody and boshd) is stopped with
// Ctrl-C's SIGINT in t.Cleanup.
func startDemo(t *testing.T, args ...string) *demoServer {
	t.Helper()
	needProsody(t)
	if _, err := os.Stat("../demo/node_modules/converse.js/package.json"); err != nil {
		skipOrFail(t, "the demo's npm packages are missing (cd demo && npm ci)")
	}
	xmppPort, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	out := &logBuffer{}
	cmd := exec.Command("../scripts/demo", args...)
	cmd.Env = append(os.Environ(),
		"BOSHD_DEMO_DIR="+t.TempDir(),
		fmt.Sprintf("BOSHD_DEMO_XMPP_PORT=%d", xmppPort),
		"BOSHD_DEMO_LISTEN="+freeAddr(t),
	)
	cmd.Stdout, cmd.Stderr = out, out
	proc, err := startProcess(cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !proc.Stop(syscall.SIGINT, 30*time.Second) { // Ctrl-C
			t.Errorf("scripts/demo did not stop within 30 s of SIGINT; killed it")
		} else if err := proc.Err(); err != nil && !t.Failed() {
			t.Logf("scripts/demo exited: %v", err)
		}
		if t.Failed() {
			t.Logf("scripts/demo output:\n%s", out.String())
		}
	})

	d := &demoServer{Passwords: make(map[string]string), Output: out}
	// Up to 3 minutes: a first go build may be slow.
	if !wait.For(3*time.Minute, func() bool { return !proc.Running() || d.serving() }) || !proc.Running() {
		t.Fatalf("scripts/demo printed no page, did not serve it within 3 minutes or exited (%v):\n%s", proc.Err(), out.String())
	}
	return d
}

// serving reports whether scripts/demo has printed its page's URL and the
// passwords, and serves the page.
func (d *demoServer) serving() bool {
	d.parse(d.Output.String())
	if d.URL == "" || len(d.Passwords) != 2 {
		return false
	}
	resp, body, err := readAll(http.Get(d.URL))
	return err == nil && resp.StatusCode == 200 && bytes.Contains(body, []byte("converse"))
}

// parse picks the page URL and the passwords out of scripts/demo's output.
func (d *demoServer) parse(output string) {
	sc := bufio.NewScanner(strings.NewReader(output))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		for i, f := range fields {
			switch {
			case f == "page:" && i+1 < len(fields) && i > 0 && fields[i-1] == "Chat":
				d.URL = fields[i+1]
			case (f == "alice@localhost" || f == "bob@localhost") && i+2 < len(fields) && fields[i+1] == "password":
				d.Passwords[strings.TrimSuffix(f, "@localhost")] = fields[i+2]
			}
		}
	}
}

// demoUsers returns the users scripts/demo printed: it puts each in the
// other's roster, named Alice and Bob.
func demoUsers(d *demoServer) map[string]browserUser {
	return map[string]browserUser{
		"alice": {JID: "alice@localhost", Password: d.Passwords["alice"], Name: "Alice"},
		"bob":   {JID: "bob@localhost", Password: d.Passwords["bob"], Name: "Bob"},
	}
}

// TestBrowserDemo is point 5: scripts/demo, run as the README says, serves a
// chat page at the URL it prints; in Chromium, alice and bob log in there
// with the printed passwords and chat, over XMPP over WebSocket (the
// page's default, issue 16 point 9). A second run leaves a screenshot of
// the conversation in integration/testdata/out/ for humans.
func TestBrowserDemo(t *testing.T) {
	t.Parallel()
	tools := needBrowser(t)
	d := startDemo(t)
	users := demoUsers(d)
	input := func() map[string]any {
		return map[string]any{"scenario": "demo", "baseURL": d.URL, "users": users}
	}

	t.Run("round trip", func(t *testing.T) {
		res := runBrowser(t, tools, input())
		u := strings.TrimSuffix(d.URL, "/")
		checkDemoTransport(t, res, "XMPP over WebSocket", "ws"+strings.TrimPrefix(u, "http")+"/xmpp-websocket", u+"/http-bind")
	})
	t.Run("screenshot", func(t *testing.T) {
		out, err := filepath.Abs(filepath.Join("testdata", "out"))
		if err != nil {
			t.Fatal(err)
		}
		in := input()
		in["screenshot"] = true
		in["outDir"] = out
		res := runBrowser(t, tools, in)
		for _, key := range []string{"screenshot", "screenshotBob", "screenshotLogin"} {
			path, _ := res[key].(string)
			fi, err := os.Stat(path)
			if err != nil || fi.Size() < 10000 {
				t.Errorf("screenshot %q: %v (size %d)", path, err, sizeOf(fi))
				continue
			}
			t.Logf("screenshot of the demo chat: %s", path)
		}
	})
}

// TestBrowserDemoBOSH is the demo's fallback: with boshd's WebSocket off
// (scripts/demo --websocket-path=), host-meta lists no WebSocket URL and
// the page chats over BOSH.
func TestBrowserDemoBOSH(t *testing.T) {
	t.Parallel()
	tools := needBrowser(t)
	d := startDemo(t, "--websocket-path=")
	res := runBrowser(t, tools, map[string]any{"scenario": "demo", "baseURL": d.URL, "users": demoUsers(d)})
	checkDemoTransport(t, res, "BOSH", "", strings.TrimSuffix(d.URL, "/")+"/http-bind")
}

// checkDemoTransport fails t unless the demo page said it used transport
// and spoke over wsURL (none if "") or BOSH at boshURL only.
func checkDemoTransport(t *testing.T, res map[string]any, transport, wsURL, boshURL string) {
	t.Helper()
	if res["transport"] != transport {
		t.Errorf("the demo page chose %v, want %s", res["transport"], transport)
	}
	ws, bosh := jsonStrings(res["wsURLs"]), jsonStrings(res["boshURLs"])
	if wsURL != "" {
		if !slices.Equal(ws, []string{wsURL}) || len(bosh) != 0 {
			t.Errorf("the demo spoke over WebSockets %v and BOSH %v, want %s only", ws, bosh, wsURL)
		}
		return
	}
	if len(ws) != 0 || !slices.Equal(bosh, []string{boshURL}) {
		t.Errorf("the demo spoke over WebSockets %v and BOSH %v, want %s only", ws, bosh, boshURL)
	}
}

func sizeOf(fi os.FileInfo) int64 {
	if fi == nil {
		return 0
	}
	return fi.Size()
}
