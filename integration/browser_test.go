package integration

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/boshd/boshd/bosh"
	"github.com/boshd/boshd/config"
	"github.com/boshd/boshd/internal/wait"
)

// Browser tests: real web clients in Debian's Chromium talk BOSH to boshd in
// front of a real Prosody. The Go tests here set the stage (Prosody, boshd
// mounted in-process next to the test pages, nginx, scripts/demo) and run
// integration/browser/run.mjs, which drives Chromium through playwright-core
// and plays one scenario with Strophe.js, Converse.js or StanzaJS (npm
// packages pinned in integration/browser/package-lock.json). run.mjs
// answers with one JSON line, which the tests check along with boshd's log
// and the order in which boshd wrote its answers (browser_wire_test.go).
// nginx in front of boshd is in browser_nginx_test.go, the demo page of
// scripts/demo in browser_demo_test.go.
//
// They skip when Chromium, Node.js or the npm packages are missing
// (scripts/test installs them: apt-get install chromium nginx, npm ci),
// unless CI=true or BOSHD_REQUIRE_BROWSER=1, when they fail instead.
// BOSHD_CHROMIUM names another Chromium binary than /usr/bin/chromium.

const (
	// browserRunTimeout bounds one run of run.mjs, Chromium included.
	browserRunTimeout = 4 * time.Minute
	// browserEventTimeout bounds each wait inside a scenario (a page
	// loading, a message arriving).
	browserEventTimeout = 60 * time.Second
	// browserMessages is how many messages scenarios (a) and (c) send in
	// each direction.
	browserMessages = 100
	// browserWait is the BOSH wait the Strophe clients ask for, in
	// seconds; testConfig grants at most 10.
	browserWait = 10
	// browserParallel is how many Chromiums run at once: the machines
	// have two cores.
	browserParallel = 2
)

// browserTools locates what the browser tests need.
type browserTools struct {
	node     string // the node binary
	chromium string // the Chromium binary
	dir      string // integration/browser, absolute
}

// browserRequired reports whether missing browser tools must fail the tests
// instead of skipping them.
func browserRequired() bool {
	return os.Getenv("CI") == "true" || os.Getenv("BOSHD_REQUIRE_BROWSER") == "1"
}

// skipOrFail skips t, or fails it when browserRequired.
func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if browserRequired() {
		t.Fatalf("%s; required because CI=true or BOSHD_REQUIRE_BROWSER=1 (scripts/test installs everything)", msg)
	}
	t.Skipf("%s; scripts/test installs it, BOSHD_REQUIRE_BROWSER=1 makes this a failure", msg)
}

// needBrowser returns the browser tools, or skips (or fails) t when one is
// missing.
func needBrowser(t testing.TB) *browserTools {
	t.Helper()
	dir, err := filepath.Abs("browser")
	if err != nil {
		t.Fatal(err)
	}
	tools := &browserTools{dir: dir, chromium: "/usr/bin/chromium"}
	if c := os.Getenv("BOSHD_CHROMIUM"); c != "" {
		tools.chromium = c
	}
	if _, err := os.Stat(tools.chromium); err != nil {
		skipOrFail(t, "chromium is not installed (apt-get install -y chromium): %v", err)
	}
	if tools.node, err = exec.LookPath("node"); err != nil {
		skipOrFail(t, "node is not installed: %v", err)
	}
	for _, pkg := range []string{"playwright-core", "strophe.js", "converse.js", "stanza", "esbuild", "@xmpp/client"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg, "package.json")); err != nil {
			skipOrFail(t, "npm package %s is missing (cd integration/browser && npm ci)", pkg)
		}
	}
	return tools
}

// browserUser is one user as run.mjs knows it.
type browserUser struct {
	JID      string `json:"jid"`
	Password string `json:"password"`
	Name     string `json:"name"` // the name others have in their roster
}

// browserUsers returns alice and bob of p for run.mjs, and gives each the
// other as a contact (subscription both), so that Converse.js lists them.
func browserUsers(t testing.TB, p *prosody) map[string]browserUser {
	t.Helper()
	users := map[string]browserUser{
		"alice": {JID: "alice@" + p.Domain, Password: p.Passwords["alice"], Name: "Alice"},
		"bob":   {JID: "bob@" + p.Domain, Password: p.Passwords["bob"], Name: "Bob"},
	}
	writeRoster(t, filepath.Join(p.Dir, "data"), p.Domain, "alice", users["bob"])
	writeRoster(t, filepath.Join(p.Dir, "data"), p.Domain, "bob", users["alice"])
	return users
}

// writeRoster writes the roster of user@host in Prosody's internal storage
// format: each contact with subscription both. Prosody reads a roster from
// storage when its user first logs in, so this works on a running Prosody
// as long as user has not logged in yet.
func writeRoster(t testing.TB, dataDir, host, user string, contacts ...browserUser) {
	t.Helper()
	var b strings.Builder
	b.WriteString("return {\n\t[false] = {\n\t\t[\"version\"] = 1;\n\t\t[\"pending\"] = {};\n\t};\n")
	for _, c := range contacts {
		fmt.Fprintf(&b, "\t[%s] = {\n\t\t[\"subscription\"] = \"both\";\n\t\t[\"groups\"] = {};\n\t\t[\"name\"] = %s;\n\t};\n", luaString(c.JID), luaString(c.Name))
	}
	b.WriteString("};\n")
	dir := filepath.Join(dataDir, prosodyEncode(host), "roster")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, prosodyEncode(user)+".dat"), []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// browserStack is Prosody and boshd, with the test pages served next to
// BOSH on the same origin (boshdServer.Origin; BOSH at URL).
type browserStack struct {
	*boshdServer
	Prosody *prosody
	Users   map[string]browserUser
	// BuildDir is served at /build/ (run.mjs writes its bundles there).
	BuildDir string

	tools *browserTools
}

// startBrowserStack starts a Prosody with alice and bob (each in the
// other's roster) and boshd in-process (serveBoshd with opts), serving at
// the same origin: BOSH at /http-bind, XEP-0156 host-meta, the test pages
// of integration/browser/pages at /, integration/browser/node_modules at
// /node_modules/ and a build directory at /build/, and opts.Routes' own.
// It skips (or fails) t when the browser tools are missing.
func startBrowserStack(t *testing.T, opts serveOptions) *browserStack {
	t.Helper()
	return startBrowserStackWith(t, prosodyOptions{}, opts)
}

// startBrowserStackWith is startBrowserStack with a Prosody configured by
// popts.
func startBrowserStackWith(t *testing.T, popts prosodyOptions, opts serveOptions) *browserStack {
	t.Helper()
	tools := needBrowser(t)
	p := startProsody(t, popts)
	st := &browserStack{Prosody: p, Users: browserUsers(t, p), tools: tools}
	st.BuildDir = filepath.Join(t.TempDir(), "build")
	if err := os.MkdirAll(st.BuildDir, 0o755); err != nil {
		t.Fatal(err)
	}
	routes := opts.Routes // the test's own, beside the pages
	opts.Routes = func(mux *http.ServeMux) {
		pageRoutes(mux, tools, st.BuildDir)
		if routes != nil {
			routes(mux)
		}
	}
	st.boshdServer = serveBoshd(t, prosodyConfig(p), opts)
	t.Cleanup(func() { checkBoshdLog(t, st.Log()) })
	return st
}

// pageRoutes mounts what the test pages load on mux: the pages of
// integration/browser/pages at /, integration/browser/node_modules at
// /node_modules/ and buildDir (run.mjs's bundles) at /build/.
func pageRoutes(mux *http.ServeMux, tools *browserTools, buildDir string) {
	mux.Handle("/", http.FileServer(http.Dir(filepath.Join(tools.dir, "pages"))))
	mux.Handle("/node_modules/", http.FileServer(http.Dir(tools.dir)))
	mux.Handle("/build/", http.StripPrefix("/build/", http.FileServer(http.Dir(buildDir))))
}

// scenarioInput returns run.mjs's input for scenario against baseURL with
// the stack's users.
func (st *browserStack) scenarioInput(scenario, baseURL string) map[string]any {
	return map[string]any{
		"scenario": scenario,
		"baseURL":  baseURL,
		"users":    st.Users,
		"buildDir": st.BuildDir,
		"messages": browserMessages,
	}
}

// Run plays scenario against the stack's own origin with the extra input
// (may be nil) and returns run.mjs's result, failing t unless it passed.
func (st *browserStack) Run(t *testing.T, scenario string, extra map[string]any) map[string]any {
	t.Helper()
	return st.RunAt(t, scenario, st.Origin, extra)
}

// RunAt is Run with the pages loaded from baseURL.
func (st *browserStack) RunAt(t *testing.T, scenario, baseURL string, extra map[string]any) map[string]any {
	t.Helper()
	input := st.scenarioInput(scenario, baseURL)
	for k, v := range extra {
		input[k] = v
	}
	return runBrowser(t, st.tools, input)
}

// runBrowser runs run.mjs with input (to which it adds the Chromium path, a
// temporary directory and the timeouts) and returns its result, failing t
// unless the scenario passed.
func runBrowser(t *testing.T, tools *browserTools, input map[string]any) map[string]any {
	t.Helper()
	result := tryBrowser(t, tools, input)
	if ok, _ := result["ok"].(bool); !ok {
		t.Fatalf("scenario %v failed: %v", input["scenario"], result["error"])
	}
	return result
}

// tryBrowser is runBrowser returning a failed scenario's result instead
// of failing t (after keeping its screenshots and traffic). input's
// timeoutMs, if set, replaces browserEventTimeout.
func tryBrowser(t *testing.T, tools *browserTools, input map[string]any) map[string]any {
	t.Helper()
	input["chromium"] = tools.chromium
	tmp := t.TempDir()
	input["tmpDir"] = tmp
	if _, ok := input["timeoutMs"]; !ok {
		input["timeoutMs"] = browserEventTimeout.Milliseconds()
	}
	if _, ok := input["wait"]; !ok {
		input["wait"] = browserWait
	}
	if _, ok := input["boshPath"]; !ok {
		input["boshPath"] = "/http-bind"
	}
	stdin, err := json.Marshal(input)
	if err != nil {
		t.Fatal(err)
	}

	defer takeBrowserSlot(t)()

	for attempt := 1; ; attempt++ {
		result, retry := runBrowserOnce(t, tools, input, stdin, tmp)
		if !retry || attempt == 2 {
			if ok, _ := result["ok"].(bool); !ok {
				keepFailureFiles(t, tmp)
			}
			return result
		}
		t.Logf("chromium went away before any BOSH request of scenario %v; running it once more", input["scenario"])
	}
}

// runBrowserOnce runs run.mjs once and returns its result, and whether
// it failed only because Chromium went away before any page sent a BOSH
// request (nothing reached boshd, so the scenario may be run again).
func runBrowserOnce(t *testing.T, tools *browserTools, input map[string]any, stdin []byte, tmp string) (result map[string]any, retry bool) {
	t.Helper()
	start := time.Now()
	cmd := exec.Command(tools.node, filepath.Join(tools.dir, "run.mjs"))
	cmd.Dir = tools.dir
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout bytes.Buffer
	stderr := &logBuffer{}
	cmd.Stdout = &stdout
	cmd.Stderr = stderr
	// A process group of its own: a timeout kills Chromium too.
	proc, err := startProcess(cmd)
	if err != nil {
		t.Fatalf("starting run.mjs: %v", err)
	}
	if !proc.WaitExit(browserRunTimeout) {
		proc.Kill()
		t.Logf("run.mjs output:\n%s", stderr.String())
		t.Fatalf("scenario %v did not finish within %v", input["scenario"], browserRunTimeout)
	}
	runErr := proc.Err()
	t.Logf("run.mjs %v (%.1f s):\n%s", input["scenario"], time.Since(start).Seconds(), strings.TrimRight(stderr.String(), "\n"))

	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &result); err != nil {
		t.Fatalf("run.mjs (%v) printed no result: %v\nstdout: %s", runErr, err, stdout.String())
	}
	if ok, _ := result["ok"].(bool); ok && runErr != nil {
		result["ok"], result["error"] = false, fmt.Sprintf("run.mjs: %v", runErr)
	}
	retry, _ = result["browserClosedBeforeTraffic"].(bool)
	return result, retry
}

// keepFailureFiles copies what run.mjs left in dir after a failure
// (screenshots, each page's BOSH traffic) to
// integration/testdata/out/failures/TESTNAME/, where it outlives the test.
func keepFailureFiles(t *testing.T, dir string) {
	files, _ := filepath.Glob(filepath.Join(dir, "failure-*"))
	if len(files) == 0 {
		return
	}
	out := filepath.Join("testdata", "out", "failures", strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Logf("keeping failure files: %v", err)
		return
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err == nil {
			err = os.WriteFile(filepath.Join(out, filepath.Base(f)), data, 0o644)
		}
		if err != nil {
			t.Logf("keeping %s: %v", f, err)
		}
	}
	abs, _ := filepath.Abs(out)
	t.Logf("screenshots and BOSH traffic of the failed scenario kept in %s", abs)
}

// number returns result[key] as an int, failing t if it is not a number.
func number(t *testing.T, result map[string]any, key string) int {
	t.Helper()
	f, ok := result[key].(float64)
	if !ok {
		t.Fatalf("result has no number %q: %v", key, result)
	}
	return int(f)
}

// checkBoshdLog fails t if boshd logged a panic or an error.
func checkBoshdLog(t *testing.T, log string) {
	t.Helper()
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "level=ERROR") || strings.Contains(line, "panic") {
			t.Errorf("boshd logged: %s", line)
		}
	}
}

// countLines returns how many lines of log contain every one of parts.
func countLines(log string, parts ...string) int {
	n := 0
lines:
	for _, line := range strings.Split(log, "\n") {
		for _, p := range parts {
			if !strings.Contains(line, p) {
				continue lines
			}
		}
		n++
	}
	return n
}

// TestBrowserStropheExchange is scenario (a): two Strophe.js pages log in
// and exchange 100 messages in both directions at once; every message
// arrives exactly once and in order.
func TestBrowserStropheExchange(t *testing.T) {
	t.Parallel()
	st := startBrowserStack(t, serveOptions{})
	res := st.Run(t, "strophe-exchange", nil)
	if a2b, b2a := number(t, res, "aliceToBob"), number(t, res, "bobToAlice"); a2b != browserMessages || b2a != browserMessages {
		t.Errorf("delivered %d and %d messages, want %d each way", a2b, b2a, browserMessages)
	}
	t.Logf("%d messages each way in %d ms over %d BOSH requests", browserMessages, number(t, res, "millis"), number(t, res, "requests"))
	checkSessions(t, st, res)
}

// checkSessions checks the wire order of boshd's answers in the sessions
// of a Strophe scenario, and reports the messages Strophe.js handled out
// of order although they came in order.
func checkSessions(t *testing.T, st *browserStack, res map[string]any) {
	t.Helper()
	sids, _ := res["sids"].([]any)
	if len(sids) == 0 {
		t.Fatalf("result has no sids: %v", res)
	}
	for _, sid := range sids {
		n := checkAnswerOrder(t, st.Wire, sid.(string))
		t.Logf("session %s: %d responses written", sid, n)
	}
	if n := number(t, res, "handledOutOfOrder"); n > 0 {
		t.Logf("note: Strophe.js handed %d messages to the page out of order, although boshd wrote the responses in rid order and they carried the messages once each and in order: it handles each response when its XHR completes, not in rid order (strophe/strophejs#709), so rid N+1's stanzas come first when N's response was lost and resent, or when both complete at nearly the same time", n)
	}
}

// TestBrowserStropheKeepalive is scenario (b): Strophe.js with keepalive;
// the page is reloaded mid-conversation and messages are sent to it while
// it reloads. Strophe's restore() continues the same sid with the next rid,
// boshd keeps what arrived meanwhile for the restored page, and nothing is
// lost or duplicated.
//
// "quiet" reloads when nothing is in flight but the held poll, which the
// old page abandons (XEP-0124 §14.3). "request in flight" reloads while the old
// page's next request is still in the browser, so it never reaches boshd
// and the restored page's first rid leaves a gap, which boshd gives up
// after a short wait (see TestRIDGapAfterReload in bosh/ridgap_test.go).
func TestBrowserStropheKeepalive(t *testing.T) {
	t.Parallel()
	for name, inflight := range map[string]bool{"quiet": false, "request in flight": true} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var st *browserStack
			st = startBrowserStack(t, serveOptions{Routes: func(mux *http.ServeMux) {
				mux.HandleFunc("POST /control/abandoned", func(w http.ResponseWriter, r *http.Request) {
					abandonedRoute(w, r, st)
				})
			}})
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("rids boshd read, per session: %v", st.Wire.bySession())
				}
			})
			res := st.Run(t, "strophe-keepalive", map[string]any{"inflight": inflight, "controlURL": st.Origin + "/control"})
			sid, _ := res["sid"].(string)
			last, first := number(t, res, "lastOldRid"), number(t, res, "firstNewRid")
			if got, _ := res["firstNewSid"].(string); got != sid {
				t.Errorf("restored page used sid %q, want %q", got, sid)
			}
			// The old page's last rid is the highest it was seen to send
			// (a request kept in the browser never reaches boshd) or
			// that boshd read: Strophe may send one more poll while the
			// page unloads, which the browser does not always report.
			for _, rid := range st.Wire.Requests(sid) {
				if int(rid) < first && int(rid) > last {
					last = int(rid)
				}
			}
			switch cached := number(t, res, "cachedAtRestoreRid"); {
			case first == last+1:
			case first == last+2 && first == cached && !slices.Contains(st.Wire.Requests(sid), uint64(last+1)):
				// Strophe caches the next rid as it builds a request: the
				// old page built last+1 while unloading, and it neither
				// left the browser nor was reported. boshd cannot know
				// that; it must give the rid up after its gap wait rather
				// than hold the session back for good.
				if countLines(st.Log(), "sid="+logID(sid), "rids given up for lost", fmt.Sprintf("from=%d to=%d", last+1, last+1)) != 1 {
					t.Errorf("the old page's rid %d never arrived, and boshd did not give it up for lost", last+1)
				}
				t.Logf("the old page built rid %d while unloading and never sent it; boshd gave it up for lost", last+1)
			default:
				t.Errorf("restored page's first rid %d, want %d: the next after the old page's last (cached at restore: %d)", first, last+1, cached)
			}
			fate := "neither answered nor abandoned"
			switch {
			case countLines(st.Log(), "sid="+logID(sid), "held request abandoned by client", fmt.Sprintf("rid=%d ", last)) > 0 ||
				strings.HasSuffix(grepLines(st.Log(), "held request abandoned by client"), fmt.Sprintf("rid=%d", last)):
				fate = "abandoned by the old page (XEP-0124 §14.3)"
			case !slices.Contains(st.Wire.Requests(sid), uint64(last)):
				fate = "never received by boshd"
			case slices.ContainsFunc(st.Wire.Answers(sid), func(w wireWrite) bool { return w.rid == uint64(last) }):
				fate = "answered before the old page went away"
			}
			if n := countLines(st.Log(), "sid="+logID(sid), "session terminated by client"); n != 1 {
				t.Errorf("alice's session terminated %d times (want once, at logout)", n)
			}
			t.Logf("sid %s: the old page's last rid %d was %s; the restored page went on with rid %d; %d messages sent during the reload",
				sid, last, fate, first, number(t, res, "duringReload"))
			checkSessions(t, st, res)
		})
	}
}

// abandonedRoute is the strophe-keepalive scenario's control route
// /control/abandoned?sid=SID&rid=RID: it answers {"abandoned": true} once
// boshd has logged the held request rid of session sid abandoned by its
// client, or {"abandoned": false} after abandonWait. The scenario waits
// for it after unloading a page whose poll boshd held: the browser closes
// that poll's connection when it gets to it, which may be after the new
// page asked for its first file, and a message boshd answered that poll
// with before it saw the connection closed would die with the old page
// (BOSH without acks cannot tell; a client restoring its session goes on
// from the next rid). Waiting keeps the test to what it checks: that what
// arrives during the reload is kept for the restored page.
func abandonedRoute(w http.ResponseWriter, r *http.Request, st *browserStack) {
	sid, rid := r.URL.Query().Get("sid"), r.URL.Query().Get("rid")
	abandoned := wait.For(abandonWait, func() bool {
		for _, line := range strings.Split(grepLines(st.Log(), "held request abandoned by client"), "\n") {
			if strings.Contains(line, "sid="+logID(sid)) && (strings.Contains(line, "rid="+rid+" ") || strings.HasSuffix(line, "rid="+rid)) {
				return true
			}
		}
		return false
	})
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]bool{"abandoned": abandoned})
}

// abandonWait bounds abandonedRoute's wait.
const abandonWait = 5 * time.Second

// TestBrowserStropheNetworkTrouble is scenario (c): the pages' requests are
// intercepted; some are aborted before they reach boshd, and for others
// boshd's answer is thrown away. Strophe resends the same rid each time,
// and boshd answers resends of answered rids from its cache (XEP-0124 §14.3), so
// the sessions survive and nothing is lost or duplicated.
func TestBrowserStropheNetworkTrouble(t *testing.T) {
	t.Parallel()
	st := startBrowserStack(t, serveOptions{})
	res := st.Run(t, "strophe-network", nil)
	dropped, lost, resends := number(t, res, "requestsDropped"), number(t, res, "responsesLost"), number(t, res, "resends")
	if dropped == 0 || lost == 0 {
		t.Errorf("faults injected: %d requests dropped, %d responses lost; want some of each", dropped, lost)
	}
	if n := number(t, res, "faultedResent"); n != dropped+lost {
		t.Errorf("%d faulted rids resent, want all %d", n, dropped+lost)
	}
	if cached := countLines(st.Log(), "resent rid answered from cache"); cached < lost {
		t.Errorf("boshd answered %d resends from its cache, want at least %d (one per lost response)", cached, lost)
	}
	t.Logf("%d requests dropped, %d responses lost, %d resends; %d messages each way delivered in %d ms",
		dropped, lost, resends, number(t, res, "aliceToBob"), number(t, res, "millis"))
	checkSessions(t, st, res)
}

// TestBrowserConverse is scenario (d): Converse.js with bosh_service_url;
// alice and bob log in with its login form, and a message typed in alice's
// chat appears in bob's page, and the reply in alice's.
func TestBrowserConverse(t *testing.T) {
	t.Parallel()
	st := startBrowserStack(t, serveOptions{})
	checkBOSHURLs(t, st.Run(t, "converse-message", nil), st.URL)
}

// checkBOSHURLs fails t unless every BOSH request of the scenario went to
// want.
func checkBOSHURLs(t *testing.T, res map[string]any, want string) {
	t.Helper()
	urls, _ := res["boshURLs"].([]any)
	if len(urls) != 1 || urls[0] != want {
		t.Errorf("BOSH requests went to %v, want %s only", urls, want)
	}
}

// TestBrowserStanza is scenario (e): StanzaJS over BOSH (WebSocket off)
// logs in two users, who exchange a message each way.
func TestBrowserStanza(t *testing.T) {
	t.Parallel()
	st := startBrowserStack(t, serveOptions{})
	res := st.Run(t, "stanza-message", nil)
	t.Logf("StanzaJS sessions %v over %d requests", res["jids"], number(t, res, "requests"))
}

// TestBrowserDiscovery is point 4, XEP-0156: Converse.js is given no BOSH
// URL, only discover_connection_methods. It fetches
// https://localhost/.well-known/host-meta from its page on
// http://127.0.0.1:PORT (cross-origin: boshd's Access-Control-Allow-Origin
// lets it read the answer). Chromium maps localhost:443 to boshd's TLS
// listener (--host-resolver-rules) and accepts its self-signed certificate.
// host-meta advertises public_url https://localhost/http-bind, where
// Converse then logs in, cross-origin again (cors_origins lists the page's
// origin).
func TestBrowserDiscovery(t *testing.T) {
	t.Parallel()
	const publicURL = "https://localhost/http-bind"
	var tlsAddr string
	st := startBrowserStack(t, serveOptions{
		TLS: true,
		Configure: func(cfg *config.Config, origin, addr string) {
			cfg.PublicURL = publicURL
			cfg.CORSOrigins = []string{origin}
			tlsAddr = addr
		},
	})
	// Both forms, as a client on another origin fetches them.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	checkHostMeta(t, client, st.TLSOrigin, st.Origin, publicURL)

	res := st.Run(t, "converse-discovery", map[string]any{
		"hostRules":         []string{"MAP localhost:443 " + tlsAddr},
		"ignoreHTTPSErrors": true,
		"expectBoshURL":     publicURL,
	})
	t.Logf("host-meta fetched: %v; BOSH at %v", res["hostMeta"], res["boshURLs"])
}

// checkHostMeta fetches both forms of XEP-0156 host-meta from base with
// client, as a page of origin (if not "") would, and fails t unless each
// is served to any origin and advertises boshURL.
func checkHostMeta(t *testing.T, client *http.Client, base, origin, boshURL string) {
	t.Helper()
	for _, path := range []string{bosh.HostMetaPath, bosh.HostMetaJSONPath} {
		req, err := http.NewRequest("GET", base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, body, err := readAll(client.Do(req))
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "*" || !bytes.Contains(body, []byte(boshURL)) {
			t.Errorf("GET %s%s: %s %v\n%s", base, path, resp.Status, resp.Header, body)
		}
	}
}

// grepLines returns the lines of s that contain part.
func grepLines(s, part string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, part) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// logID is how boshd names session sid in its logs (session.LogID).
func logID(sid string) string {
	if len(sid) <= 8 {
		return sid
	}
	return sid[:8] + "…"
}
