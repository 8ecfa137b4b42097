package integration

import (
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/boshd/boshd/internal/wait"
)

// Live upgrades of the boshd binary (docs/design/005-live-upgrade.md,
// issue 18): SIGUSR2 starts the binary again as a new process that takes
// over the listening sockets; the old one moves its BOSH and WebSocket
// sessions to it (the same TCP connections), serves those that cannot
// move (a TLS upstream or client connection) to their end, and then
// exits.

// upgradeConfig is the configuration file of TestLiveUpgrade: its
// settings beside the command line's.
// park_after is short so that sessions are quiet, and move, soon after
// the traffic stops.
const upgradeConfig = "max_wait: 10s\nupgrade_ready_timeout: 20s\nupgrade_drain_timeout: 2m\npark_after: 200ms\n"

// oldExitBound bounds the wait for an old process to exit once it holds
// no session: its next tick (1 s), requests it forwards answered (at most
// max_wait, 10 s here, and 10 s), and a stop (shutdown_timeout, 10 s).
const oldExitBound = 45 * time.Second

// handedOver matches the old process's log line of a hand-over.
var handedOver = regexp.MustCompile(`msg="upgrade: handed over; [^"]*" new_pid=(\d+)`)

// movedLine matches the old process's log line once it has moved what it
// could to the new one.
var movedLine = regexp.MustCompile(`msg="upgrade: sessions moved to the new process" moved=(\d+) failed=(\d+) kept=(\d+)`)

// waitMoved waits for the n-th hand-over's moves (from 1) to be logged,
// and returns its counts of BOSH sessions.
func waitMoved(t *testing.T, b *boshdProcess, n int) (moved, failed, kept int) {
	t.Helper()
	return waitCounts(t, b, movedLine, n)
}

// waitCounts waits for the n-th match (from 1) of line, which has three
// numbers, in b's log, and returns them.
func waitCounts(t *testing.T, b *boshdProcess, line *regexp.Regexp, n int) (x, y, z int) {
	t.Helper()
	var all [][]string
	if !wait.For(30*time.Second, func() bool {
		all = line.FindAllStringSubmatch(b.Log(), -1)
		return len(all) >= n
	}) {
		t.Fatalf("hand-over %d: no moves logged within 30s:\n%s", n, b.logs.Tail(30))
	}
	m := all[n-1]
	x, _ = strconv.Atoi(m[1])
	y, _ = strconv.Atoi(m[2])
	z, _ = strconv.Atoi(m[3])
	return x, y, z
}

// Prosody's log lines of a client stream connected and disconnected,
// with the stream's c2s session name.
var (
	c2sConnected    = regexp.MustCompile(`(c2s[0-9a-f]+)\s+info\s+Client connected`)
	c2sDisconnected = regexp.MustCompile(`(c2s[0-9a-f]+)\s+info\s+Client disconnected`)
)

// liveStreams returns the client streams a Prosody log shows connected
// and not disconnected.
func liveStreams(log string) map[string]bool {
	live := make(map[string]bool)
	for _, m := range c2sConnected.FindAllStringSubmatch(log, -1) {
		live[m[1]] = true
	}
	for _, m := range c2sDisconnected.FindAllStringSubmatch(log, -1) {
		delete(live, m[1])
	}
	return live
}

// disconnected returns those of streams a Prosody log shows
// disconnected.
func disconnected(log string, streams map[string]bool) []string {
	var gone []string
	for _, m := range c2sDisconnected.FindAllStringSubmatch(log, -1) {
		if streams[m[1]] {
			gone = append(gone, m[1])
		}
	}
	return gone
}

// processExited reports whether pid has exited: gone, or a zombie no one
// has reaped yet (an old process's children are reparented).
func processExited(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// pid (comm) STATE ...: comm may hold spaces, not ")".
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z' || s[i+2] == 'X'
}

// statusPID reads the pid the admin listener's status page shows: the
// process accepting on the inherited socket.
func statusPID(t *testing.T, admin string) int {
	t.Helper()
	// A new connection each time: a kept-alive one stays with the
	// process it was made to, until that one closes it.
	c := &http.Client{Timeout: eventTimeout, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + admin + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`<tr><th>process</th><td>(\d+)</td>`).FindSubmatch(data)
	if m == nil {
		t.Fatalf("the status page shows no process:\n%s", data)
	}
	pid, _ := strconv.Atoi(string(m[1]))
	return pid
}

// startUpgradable is startBinaryFor for upgrades: the processes' handoff
// sockets in a directory of the test's (TMPDIR), and every process of the
// upgrades (all in the first one's process group) killed at the end, env
// added to their environment.
func startUpgradable(t *testing.T, p *prosody, env []string, args ...string) *boshdProcess {
	t.Helper()
	return startUpgradableAt(t, mustBinary(t), p, env, args...)
}

// startUpgradableAt is startUpgradable running the binary at bin.
func startUpgradableAt(t *testing.T, bin string, p *prosody, env []string, args ...string) *boshdProcess {
	t.Helper()
	addr, admin := freeAddr(t), freeAddr(t)
	b := startBinaryAt(t, bin, append([]string{"TMPDIR=" + t.TempDir()}, env...), append([]string{"--listen", addr, "--admin-listen", admin,
		"--upstream", p.Domain + "=" + p.Addr, "--upstream-tls", "plaintext"}, args...)...)
	b.Addr, b.AdminAddr, b.URL = addr, admin, "http://"+addr+"/http-bind"
	pgid := b.Pid()
	t.Cleanup(func() { syscall.Kill(-pgid, syscall.SIGKILL) })
	return b
}

// upgradeTo sends SIGUSR2 to pid and waits for the hand-over it logs,
// returning the new process's pid.
func upgradeTo(t *testing.T, b *boshdProcess, pid int) int {
	t.Helper()
	next, err := upgradeOnce(b, pid)
	if err != nil {
		t.Fatal(err)
	}
	return next
}

// upgradeConfigFile writes upgradeConfig to a file of t's and returns its
// path, for a boshd started with --config (which a test may rewrite
// before an upgrade).
func upgradeConfigFile(t *testing.T) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "boshd.yaml")
	if err := os.WriteFile(name, []byte(upgradeConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	return name
}

// upgradeOnce is upgradeTo for a goroutine other than the test's (a
// browser's control route): it returns an error instead of failing.
func upgradeOnce(b *boshdProcess, pid int) (int, error) {
	before := len(handedOver.FindAllStringSubmatch(b.Log(), -1))
	if err := syscall.Kill(pid, syscall.SIGUSR2); err != nil {
		return 0, fmt.Errorf("SIGUSR2 to %d: %w", pid, err)
	}
	var all [][]string
	if !wait.For(30*time.Second, func() bool {
		all = handedOver.FindAllStringSubmatch(b.Log(), -1)
		return len(all) > before
	}) {
		return 0, fmt.Errorf("no hand-over logged within 30s of SIGUSR2 to %d:\n%s", pid, b.logs.Tail(20))
	}
	next, _ := strconv.Atoi(all[before][1])
	if next == 0 || next == pid {
		return 0, fmt.Errorf("handed over to pid %d, from %d", next, pid)
	}
	return next, nil
}

// TestLiveUpgrade is issue 18's upgrade with real parts: BOSH clients
// chat with numbered messages through four SIGUSR2 in a row, one of them
// to a binary whose configuration has become invalid; every session
// moves to the new process at each hand-over, its upstream the same TCP
// connection (Prosody logs no disconnect); every message arrives once
// and in order, no client sees a terminate or an HTTP error, the
// listening process changes, a second SIGUSR2 to a process that handed
// over is refused, and each old process exits once its sessions moved.
func TestLiveUpgrade(t *testing.T) {
	parallel(t)
	p := startProsody(t, prosodyOptions{})
	cfgFile := upgradeConfigFile(t)
	b := startUpgradable(t, p, nil, "--config", cfgFile)

	alice, aliceLogin := login(t, b.URL, p, "alice", "PLAIN", "web")
	bob, bobLogin := login(t, b.URL, p, "bob", "SCRAM-SHA-1", "web")
	goOnline(t, alice, bob)
	round := 0
	chat := func(from *Client, fromJID string, to *Client, toJID string) {
		t.Helper()
		round++
		chatInOrder(t, from, fromJID, to, toJID, fmt.Sprintf("r%d", round), 30)
	}
	chat(alice, aliceLogin.JID, bob, bobLogin.JID)

	pids := []int{b.Pid()}
	if got := statusPID(t, b.AdminAddr); got != b.Pid() {
		t.Fatalf("the status page shows pid %d, want boshd's %d", got, b.Pid())
	}

	// The client streams Prosody has open: they must live through the
	// moves.
	streams := liveStreams(p.Log())
	if len(streams) != 2 {
		t.Fatalf("Prosody shows %d client streams open, want alice's and bob's: %v", len(streams), streams)
	}

	// First upgrade, with messages on their way both ways.
	for i := range 20 {
		alice.Send(message(bobLogin.JID, fmt.Sprintf("x%d", i), fmt.Sprintf("across %d", i)))
		bob.Send(message(aliceLogin.JID, fmt.Sprintf("y%d", i), fmt.Sprintf("across %d", i)))
	}
	pids = append(pids, upgradeTo(t, b, pids[0]))
	// A process that handed over refuses another upgrade (at once: it
	// exits once its sessions have moved).
	syscall.Kill(pids[0], syscall.SIGUSR2)
	b.WaitLog(t, "upgrade refused: this process has handed over already")
	for i := range 20 {
		for _, c := range []struct {
			to   *Client
			from string
			id   string
		}{{bob, aliceLogin.JID, "x"}, {alice, bobLogin.JID, "y"}} {
			m := c.to.WaitFor("a message sent across the upgrade", isStanza("message", attrIs("from", c.from)))
			if want := fmt.Sprintf("%s%d", c.id, i); m.Attr("id") != want {
				t.Fatalf("%s got %s, want id %s: lost, repeated or out of order", c.to.name, m, want)
			}
		}
	}
	if got := statusPID(t, b.AdminAddr); got != pids[1] {
		t.Errorf("after the upgrade the status page shows pid %d, want the new process %d", got, pids[1])
	}
	// Both sessions moved once quiet: the new process has them, and
	// the old one, serving nothing, exits without waiting for them to
	// end.
	if moved, failed, kept := waitMoved(t, b, 1); moved != 2 || failed != 0 || kept != 0 {
		t.Errorf("the first hand-over moved %d sessions, failed %d, kept %d; want 2, 0, 0", moved, failed, kept)
	}
	if !wait.For(eventTimeout, func() bool { return b.AdminMetric(`boshd_upgrade_sessions_received_total`) == 2 }) {
		t.Errorf("the new process received %v sessions, want 2", b.AdminMetric(`boshd_upgrade_sessions_received_total`))
	}
	if !wait.For(oldExitBound, func() bool { return processExited(pids[0]) }) {
		t.Errorf("the first process (%d) still runs once its sessions moved", pids[0])
	}
	alice.tr.CloseIdleConnections()
	bob.tr.CloseIdleConnections()
	chat(alice, aliceLogin.JID, bob, bobLogin.JID)
	chat(bob, bobLogin.JID, alice, aliceLogin.JID)

	// Sessions made in the new process.
	carol, carolLogin := login(t, b.URL, p, "carol", "PLAIN", "web")
	dave, daveLogin := login(t, b.URL, p, "dave", "PLAIN", "web")
	goOnline(t, carol, dave)
	chat(carol, carolLogin.JID, alice, aliceLogin.JID)
	chat(bob, bobLogin.JID, dave, daveLogin.JID)
	streams = liveStreams(p.Log())

	// An upgrade to a binary that cannot start: its configuration
	// refused. The process goes on serving everything.
	if err := os.WriteFile(cfgFile, []byte(strings.Replace(upgradeConfig, "max_wait: 10s", "max_wait: forever", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(pids[1], syscall.SIGUSR2)
	b.WaitLog(t, "upgrade failed: this process goes on serving")
	if !strings.Contains(b.Log(), "max_wait") {
		t.Errorf("the failed upgrade's log does not say why (max_wait):\n%s", b.logs.Tail(20))
	}
	if err := os.WriteFile(cfgFile, []byte(upgradeConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := statusPID(t, b.AdminAddr); got != pids[1] {
		t.Errorf("after a failed upgrade the status page shows pid %d, want %d", got, pids[1])
	}
	chat(alice, aliceLogin.JID, carol, carolLogin.JID)

	// Two more in a row, with a chat while the sessions move: every
	// session moves each time, and each old process exits.
	for n := 2; n <= 3; n++ {
		pids = append(pids, upgradeTo(t, b, pids[n-1]))
		chat(dave, daveLogin.JID, bob, bobLogin.JID)
		if moved, failed, kept := waitMoved(t, b, n); moved != 4 || failed != 0 || kept != 0 {
			t.Errorf("hand-over %d moved %d sessions, failed %d, kept %d; want 4, 0, 0", n, moved, failed, kept)
		}
		if !wait.For(oldExitBound, func() bool { return processExited(pids[n-1]) }) {
			t.Errorf("old process %d still runs once its sessions moved", pids[n-1])
		}
		if !wait.For(eventTimeout, func() bool { return b.AdminMetric(`boshd_upgrade_sessions_received_total`) == 4 }) {
			t.Errorf("process %d received %v sessions, want 4", pids[n], b.AdminMetric(`boshd_upgrade_sessions_received_total`))
		}
	}
	for _, c := range []*Client{alice, bob, carol, dave} {
		c.tr.CloseIdleConnections()
	}
	chat(alice, aliceLogin.JID, bob, bobLogin.JID)
	chat(carol, carolLogin.JID, dave, daveLogin.JID)
	chat(bob, bobLogin.JID, carol, carolLogin.JID)
	if got := statusPID(t, b.AdminAddr); got != pids[3] {
		t.Errorf("the status page shows pid %d, want the newest process %d", got, pids[3])
	}

	// Nothing repeated, no terminate, no HTTP error.
	clients := []*Client{alice, bob, carol, dave}
	for _, c := range clients {
		c.Sync()
		c.mu.Lock()
		var extra []string
		for _, e := range c.queue {
			if e.Is(nsClient, "message") {
				extra = append(extra, e.String())
			}
		}
		err, terminal := c.err, c.terminal
		c.mu.Unlock()
		if len(extra) != 0 {
			t.Errorf("%s has more messages than were sent: %s", c.name, extra)
		}
		if err != nil || terminal != nil {
			t.Errorf("%s: error %v, terminate %v", c.name, err, terminal)
		}
	}
	// The same upstream TCP connections: Prosody saw no client stream
	// of the four disconnect, and no other connect.
	log := p.Log()
	if len(streams) != 4 {
		t.Errorf("Prosody showed client streams %v open before the last upgrades, want the four sessions'", streams)
	}
	if gone := disconnected(log, streams); len(gone) != 0 {
		t.Errorf("Prosody logged the sessions' client streams %v disconnected through the upgrades", gone)
	}
	if live := liveStreams(log); !maps.Equal(live, streams) {
		t.Errorf("Prosody shows client streams %v open after the upgrades, want the same as before, %v", live, streams)
	}

	for _, c := range clients {
		if resp := c.Terminate(""); resp.Attr("type") != "terminate" {
			t.Errorf("%s's terminate answered %s", c.name, resp)
		}
	}
	if processExited(pids[3]) {
		t.Fatalf("the newest process (%d) exited", pids[3])
	}
	// The newest serves: a new session, made and ended.
	erin := newClient(t, "erin", b.URL)
	erin.MustCreate()
	if resp := erin.Terminate(""); resp.Attr("type") != "terminate" {
		t.Errorf("a session in the newest process ended with %s", resp)
	}
}

// TestLiveUpgradeNotify checks boshd's side of systemd's notify protocol
// (contrib/boshd.service, Type=notify) against a fake NOTIFY_SOCKET:
// READY=1 once serving; on SIGUSR2 RELOADING=1, then the new process as
// MAINPID with READY=1 in one datagram; after an upgrade that fails,
// READY=1 again; STOPPING=1 when the main process stops, and nothing from
// the old one as it exits.
func TestLiveUpgradeNotify(t *testing.T) {
	parallel(t)
	p := startProsody(t, prosodyOptions{})
	dir := t.TempDir()
	sock := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	next := func(want string) string {
		t.Helper()
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		buf := make([]byte, 4096)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("waiting for %s: %v", want, err)
		}
		return string(buf[:n])
	}
	cfgFile := filepath.Join(dir, "boshd.yaml")
	if err := os.WriteFile(cfgFile, []byte(upgradeConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	b := startUpgradable(t, p, []string{"NOTIFY_SOCKET=" + sock}, "--config", cfgFile)
	admin := b.AdminAddr
	if got := next("READY=1"); got != "READY=1" {
		t.Fatalf("boshd started and said %q, want READY=1", got)
	}
	alice, _ := login(t, b.URL, p, "alice", "PLAIN", "web") // moves to the new process

	syscall.Kill(b.Pid(), syscall.SIGUSR2)
	if got := next("RELOADING=1"); got != "RELOADING=1" {
		t.Fatalf("on SIGUSR2 boshd said %q, want RELOADING=1", got)
	}
	got := next("MAINPID")
	m := regexp.MustCompile(`^MAINPID=(\d+)\nREADY=1$`).FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("after the upgrade boshd said %q, want MAINPID=<new process>\\nREADY=1", got)
	}
	newPID, _ := strconv.Atoi(m[1])
	if want := statusPID(t, admin); newPID != want || newPID == b.Pid() {
		t.Fatalf("MAINPID=%d, the status page shows %d, the old process is %d", newPID, want, b.Pid())
	}

	// An upgrade of the new process that fails.
	if err := os.WriteFile(cfgFile, []byte("max_wait: never\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(newPID, syscall.SIGUSR2)
	for _, want := range []string{"RELOADING=1", "READY=1"} {
		if got := next(want); got != want {
			t.Fatalf("during an upgrade that fails boshd said %q, want %s", got, want)
		}
	}

	// The old process exits once alice's session has moved, silently;
	// the new one says STOPPING=1 on SIGTERM.
	if !wait.For(oldExitBound, func() bool { return processExited(b.Pid()) }) {
		t.Fatalf("the old process (%d) still runs with no session left", b.Pid())
	}
	alice.Terminate("")
	syscall.Kill(newPID, syscall.SIGTERM)
	if got := next("STOPPING=1"); got != "STOPPING=1" {
		t.Fatalf("on SIGTERM the main process said %q, want STOPPING=1", got)
	}
	if !wait.For(oldExitBound, func() bool { return processExited(newPID) }) {
		t.Fatalf("the new process (%d) did not stop", newPID)
	}
	conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := conn.Read(make([]byte, 4096)); err == nil {
		t.Errorf("a notification after STOPPING=1: %d bytes", n)
	}
}

// TestLiveUpgradeDrainTimeout checks the bound of an old process: what
// it could not move goes on after the hand-over (the new process's
// metrics count it, and say when the old one exits) until
// upgrade_drain_timeout, when the BOSH client is told system-shutdown and
// the WebSocket closed with 1012 (service restart); then it exits.
//
// Over STARTTLS (Prosody requiring it) neither session can move. Over a
// plaintext upstream both move to the new process and go on after the
// bound, the old one exiting at once.
func TestLiveUpgradeDrainTimeout(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		tls  bool
	}{{"plaintext", false}, {"starttls", true}} {
		t.Run(tc.name, func(t *testing.T) {
			parallel(t)
			testLiveUpgradeDrainTimeout(t, tc.tls)
		})
	}
}

func testLiveUpgradeDrainTimeout(t *testing.T, tls bool) {
	p := startProsody(t, prosodyOptions{TLS: tls})
	const drain = 4 * time.Second
	args := []string{"--upgrade-drain-timeout", drain.String(), "--max-wait", "10s", "--park-after", "200ms"}
	if tls {
		args = append(args, "--upstream-tls", "starttls", "--upstream-ca", p.CAFile)
	}
	b := startUpgradable(t, p, nil, args...)
	alice, aliceLogin := login(t, b.URL, p, "alice", "PLAIN", "web")
	bob := dialWS(t, "bob", "ws://"+b.Addr+"/xmpp-websocket", nil)
	bobLogin := bob.Login(p, "PLAIN", "bob", "ws")
	goOnline(t, alice)

	start := time.Now()
	newPID := upgradeTo(t, b, b.Pid())
	wantMoved := 1
	if tls {
		wantMoved = 0
	}
	if moved, failed, kept := waitMoved(t, b, 1); moved != wantMoved || failed != 0 || kept != 1-wantMoved {
		t.Errorf("the hand-over moved %d sessions, failed %d, kept %d; want %d, 0, %d", moved, failed, kept, wantMoved, 1-wantMoved)
	}
	if moved, failed, kept := waitWSMoved(t, b, 1); moved != wantMoved || failed != 0 || kept != 1-wantMoved {
		t.Errorf("the hand-over moved %d WebSocket sessions, failed %d, kept %d; want %d, 0, %d", moved, failed, kept, wantMoved, 1-wantMoved)
	}
	if !wait.For(eventTimeout, func() bool { return b.AdminMetric("boshd_upgrade_sessions_received_total") == float64(wantMoved) }) {
		t.Errorf("the new process received %v sessions, want %d", b.AdminMetric("boshd_upgrade_sessions_received_total"), wantMoved)
	}
	if !wait.For(eventTimeout, func() bool {
		return b.AdminMetric("boshd_upgrade_websocket_sessions_received_total") == float64(wantMoved)
	}) {
		t.Errorf("the new process received %v WebSocket sessions, want %d", b.AdminMetric("boshd_upgrade_websocket_sessions_received_total"), wantMoved)
	}
	if tls {
		eventually(t, eventTimeout, "the new process counting the old one's sessions", func() bool {
			return b.AdminMetric(`boshd_upgrade_old_sessions{binding="bosh"}`) == 1 &&
				b.AdminMetric(`boshd_upgrade_old_sessions{binding="websocket"}`) == 1
		})
		exit := b.AdminMetric("boshd_upgrade_old_exit_timestamp_seconds")
		if at := time.UnixMilli(int64(exit * 1000)); at.Before(start.Add(drain-time.Second)) || at.After(time.Now().Add(drain+time.Second)) {
			t.Errorf("the new process says the old one exits at %v, want about %v after the hand-over at %v", at, drain, start)
		}
	} else if !wait.For(oldExitBound, func() bool { return processExited(b.Pid()) }) {
		// Everything moved: the old process serves nothing.
		t.Errorf("the old process (%d) still runs once its sessions moved", b.Pid())
	}

	if !tls {
		// Her next requests on new connections, which reach the new
		// process: one kept alive to the old process would be cut
		// when it exits (as for every session it did not hold).
		alice.tr.CloseIdleConnections()
	}
	// Both sessions go on meanwhile.
	bob.Send(chat(aliceLogin.JID, "after the hand-over"))
	if m := alice.WaitFor("bob's message", isStanza("message")); m.ChildText(nsClient, "body") != "after the hand-over" {
		t.Fatalf("alice got %s", m)
	}
	alice.Send(chat(bobLogin.JID, "to bob"))
	if m := bob.WaitFor("alice's message", func(e *Element) bool { return e.Is(nsClient, "message") }); m.ChildText(nsClient, "body") != "to bob" {
		t.Fatalf("bob got %s", m)
	}

	// At the bound: 1012, system-shutdown for a session that did not
	// move, and the old process exits.
	if tls {
		if code, reason := bob.WaitClosed(); code != 1012 {
			t.Errorf("bob's WebSocket closed with %d %q, want 1012", code, reason)
		}
		if took := time.Since(start); took < drain-time.Second {
			t.Errorf("the old process ended its sessions %v after the hand-over, before upgrade_drain_timeout %v", took, drain)
		}
		end := alice.WaitTerminated()
		if end.Attr("condition") != "system-shutdown" {
			t.Errorf("alice's session ended with %s, want system-shutdown", end)
		}
	}
	if !wait.For(oldExitBound, func() bool { return processExited(b.Pid()) }) {
		t.Fatalf("the old process (%d) still runs after upgrade_drain_timeout", b.Pid())
	}
	eventually(t, eventTimeout, "the new process seeing the old one gone", func() bool {
		return b.AdminMetric(`boshd_upgrade_old_sessions{binding="bosh"}`) == 0 &&
			b.AdminMetric("boshd_upgrade_old_exit_timestamp_seconds") == 0
	})
	if processExited(newPID) {
		t.Fatalf("the new process (%d) exited", newPID)
	}
	if !tls {
		// The sessions that moved go on in the new process, past the
		// bound.
		time.Sleep(time.Until(start.Add(drain + time.Second)))
		alice.tr.CloseIdleConnections()
		bob.Send(chat(aliceLogin.JID, "after the bound"))
		if m := alice.WaitFor("bob's message after the bound", isStanza("message")); m.ChildText(nsClient, "body") != "after the bound" {
			t.Fatalf("alice got %s", m)
		}
		alice.Send(chat(bobLogin.JID, "to bob after the bound"))
		if m := bob.WaitFor("alice's message after the bound", func(e *Element) bool { return e.Is(nsClient, "message") }); m.ChildText(nsClient, "body") != "to bob after the bound" {
			t.Fatalf("bob got %s", m)
		}
		alice.mu.Lock()
		err, terminal := alice.err, alice.terminal
		alice.mu.Unlock()
		if err != nil || terminal != nil {
			t.Errorf("alice: error %v, terminate %v", err, terminal)
		}
		bob.mu.Lock()
		closed, readErr := bob.closeSeen, bob.readErr
		bob.mu.Unlock()
		if closed || readErr != nil {
			t.Errorf("bob: close frame %v, connection ended: %v", closed, readErr)
		}
	}
}

// copyFile copies the file from to a new file to, executable.
func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestLiveUpgradeNewBinary is an upgrade as a package manager makes it:
// the binary boshd was started from is replaced (a new file renamed over
// it), and SIGUSR2 starts the new file, at the path boshd resolved when
// it started, while the old process runs on from the old one; a session
// opened before goes on.
func TestLiveUpgradeNewBinary(t *testing.T) {
	parallel(t)
	p := startProsody(t, prosodyOptions{})
	dir := t.TempDir()
	bin := filepath.Join(dir, "boshd")
	copyFile(t, mustBinary(t), bin)
	b := startUpgradableAt(t, bin, p, nil)
	alice, aliceLogin := login(t, b.URL, p, "alice", "PLAIN", "web")
	bob, bobLogin := login(t, b.URL, p, "bob", "PLAIN", "web")
	goOnline(t, alice, bob)

	// The new version: a new file renamed over the old one.
	copyFile(t, mustBinary(t), bin+".new")
	if err := os.Rename(bin+".new", bin); err != nil {
		t.Fatal(err)
	}
	newPID := upgradeTo(t, b, b.Pid())
	exe := func(pid int) string {
		s, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if got := exe(b.Pid()); got != bin+" (deleted)" {
		t.Errorf("the old process runs %q, want the replaced file %q", got, bin+" (deleted)")
	}
	if got := exe(newPID); got != bin {
		t.Errorf("the new process runs %q, want the new file %q", got, bin)
	}
	alice.tr.CloseIdleConnections()
	chatInOrder(t, alice, aliceLogin.JID, bob, bobLogin.JID, "after", 20)
}

// TestLiveUpgradeSuccessorKilled is kill -9 of the new process in the
// middle of a hand-over: the old process, which kept copies of the
// listening sockets, accepts again (a session created just after the
// kill, its connection queued meanwhile, is served), logs it, counts it,
// and is the process the status page shows; a session not moved yet (one
// waiting for a missing rid cannot move) goes on there, the one that
// moved before the kill is answered item-not-found, and a next upgrade
// hands over the sockets taken back, sessions moving to it.
//
// No request is on its way through the new process as it is killed: one
// would fail at the HTTP level, which Go's client does not retry.
func TestLiveUpgradeSuccessorKilled(t *testing.T) {
	parallel(t)
	p := startProsody(t, prosodyOptions{})
	cfgFile := upgradeConfigFile(t)
	b := startUpgradable(t, p, nil, "--config", cfgFile)
	hc := &http.Client{Timeout: eventTimeout, Transport: &http.Transport{DisableKeepAlives: true}}
	post := func(body string) string {
		t.Helper()
		_, data, err := readAll(hc.Post(b.URL, "text/xml; charset=utf-8", strings.NewReader(body)))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	// erin's session is quiet: it moves as soon as the hand-over starts.
	erin := newClient(t, "erin", b.URL)
	erin.MustCreate()
	erinSID := erin.SID()
	erin.Close()
	// frank's waits for a missing rid (its request rid+2 came first,
	// held here): it cannot move until rid+1 comes.
	frank := newClient(t, "frank", b.URL)
	frank.MustCreate()
	frank.Close()
	frank.mu.Lock()
	frankSID, frankRID := frank.sid, frank.nextRID-1 // frankRID+1 is the next rid
	frank.mu.Unlock()
	ahead := make(chan string, 1)
	go func() {
		_, data, _ := readAll(hc.Post(b.URL, "text/xml; charset=utf-8", strings.NewReader(fmt.Sprintf("<body xmlns='http://jabber.org/protocol/httpbind' sid='%s' rid='%d'/>", frankSID, frankRID+2))))
		ahead <- string(data)
	}()

	old := b.Pid()
	newPID := upgradeTo(t, b, old)
	movedLog := func(sid string) string { return `msg="session moved to the new process" sid=` + sid[:8] }
	if !wait.For(30*time.Second, func() bool { return strings.Contains(b.Log(), movedLog(erinSID)) }) {
		t.Fatalf("erin's quiet session did not move:\n%s", b.logs.Tail(30))
	}
	if err := syscall.Kill(newPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// At once, before the old process has seen the death: the
	// connection waits in the socket's queue, never refused.
	dave := newClient(t, "dave", b.URL)
	dave.MustCreate()
	b.WaitLog(t, "the new process died after the hand-over; this process accepts again")
	if got := statusPID(t, b.AdminAddr); got != old {
		t.Errorf("the status page shows pid %d, want the old process %d, accepting again", got, old)
	}
	if n := b.AdminMetric(`boshd_upgrades_total{outcome="taken_back"}`); n != 1 {
		t.Errorf("boshd_upgrades_total{outcome=\"taken_back\"} = %v, want 1", n)
	}
	if moved, failed, kept := waitMoved(t, b, 1); moved != 1 || failed+kept != 1 {
		t.Errorf("the hand-over cut by the kill moved %d sessions, failed %d, kept %d; want erin's moved, frank's kept", moved, failed, kept)
	}
	if strings.Contains(b.Log(), movedLog(frankSID)) {
		t.Error("frank's session moved while waiting for a missing rid")
	}

	// frank's session, not moved, goes on here: its missing rid comes,
	// and both requests are answered.
	if resp := post(fmt.Sprintf("<body xmlns='http://jabber.org/protocol/httpbind' sid='%s' rid='%d'/>", frankSID, frankRID+1)); strings.Contains(resp, "terminate") {
		t.Errorf("frank's missing rid answered %s", resp)
	}
	select {
	case resp := <-ahead:
		if resp == "" || strings.Contains(resp, "terminate") {
			t.Errorf("frank's request ahead of the missing rid answered %q", resp)
		}
	case <-time.After(eventTimeout):
		t.Error("frank's request ahead of the missing rid not answered")
	}
	if resp := dave.Terminate(""); resp.Attr("type") != "terminate" || resp.Attr("condition") != "" {
		t.Errorf("dave's session, made as the new process died, ended with %s", resp)
	}
	// erin's session moved to the process that died: gone with it.
	if resp := post(fmt.Sprintf("<body xmlns='http://jabber.org/protocol/httpbind' sid='%s' rid='%d'/>", erinSID, randomRID())); !strings.Contains(resp, "item-not-found") {
		t.Errorf("a request for erin's session, moved to the process that died, answered %s, want item-not-found", resp)
	}

	// A session the dead process held is gone: item-not-found, at once.
	second := upgradeTo(t, b, old)
	carol := newClient(t, "carol", b.URL)
	carol.MustCreate()
	carolSID := carol.SID()
	carol.Close()
	if err := syscall.Kill(second, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, eventTimeout, "the second take-back", func() bool {
		return countLines(b.Log(), "this process accepts again") == 2
	})
	if resp := post(fmt.Sprintf("<body xmlns='http://jabber.org/protocol/httpbind' sid='%s' rid='%d'/>", carolSID, randomRID())); !strings.Contains(resp, "item-not-found") {
		t.Errorf("a request for the dead process's session answered %s, want item-not-found", resp)
	}

	// The sockets taken back are handed over again, and the sessions
	// left move to the new process.
	alice, aliceLogin := login(t, b.URL, p, "alice", "PLAIN", "web")
	bob, bobLogin := login(t, b.URL, p, "bob", "PLAIN", "web")
	goOnline(t, alice, bob)
	chatInOrder(t, alice, aliceLogin.JID, bob, bobLogin.JID, "before", 10)
	next := upgradeTo(t, b, old)
	if got := statusPID(t, b.AdminAddr); got != next {
		t.Errorf("after a third upgrade the status page shows pid %d, want %d", got, next)
	}
	if moved, failed, _ := waitMoved(t, b, 3); moved < 2 || failed != 0 {
		t.Errorf("the third hand-over moved %d sessions, failed %d; want alice's and bob's moved", moved, failed)
	}
	alice.tr.CloseIdleConnections()
	bob.tr.CloseIdleConnections()
	chatInOrder(t, alice, aliceLogin.JID, bob, bobLogin.JID, "third", 10)
	for _, c := range []*Client{alice, bob} {
		c.mu.Lock()
		err, terminal := c.err, c.terminal
		c.mu.Unlock()
		if err != nil || terminal != nil {
			t.Errorf("%s: error %v, terminate %v", c.name, err, terminal)
		}
	}
}

// TestLiveUpgradeProsodySlow is an upgrade while Prosody does not read:
// it is stopped (SIGSTOP) with messages on their way both ways, boshd is
// upgraded, more messages are sent (into the sockets' buffers), and
// Prosody goes on (SIGCONT) only once the new process has taken over.
// Every message arrives once and in order, no client sees an error or a
// terminate, and the old process exits once its sessions have moved or
// ended.
func TestLiveUpgradeProsodySlow(t *testing.T) {
	parallel(t)
	p := startProsody(t, prosodyOptions{})
	cfgFile := upgradeConfigFile(t)
	b := startUpgradable(t, p, nil, "--config", cfgFile)
	alice, aliceLogin := login(t, b.URL, p, "alice", "PLAIN", "web")
	bob, bobLogin := login(t, b.URL, p, "bob", "PLAIN", "web")
	goOnline(t, alice, bob)
	chatInOrder(t, alice, aliceLogin.JID, bob, bobLogin.JID, "before", 10)

	prosodyPID := p.process().Pid()
	if err := syscall.Kill(prosodyPID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	defer func() {
		if stopped {
			syscall.Kill(prosodyPID, syscall.SIGCONT)
		}
	}()
	const n = 40
	send := func(from int, to int) {
		for i := from; i < to; i++ {
			alice.Send(message(bobLogin.JID, fmt.Sprintf("x%d", i), fmt.Sprintf("slow %d", i)))
			bob.Send(message(aliceLogin.JID, fmt.Sprintf("y%d", i), fmt.Sprintf("slow %d", i)))
		}
	}
	send(0, n/2)
	newPID := upgradeTo(t, b, b.Pid())
	send(n/2, n)
	syscall.Kill(prosodyPID, syscall.SIGCONT)
	stopped = false
	for i := range n {
		for _, c := range []struct {
			to   *Client
			from string
			id   string
		}{{bob, aliceLogin.JID, "x"}, {alice, bobLogin.JID, "y"}} {
			m := c.to.WaitFor("a message sent while Prosody was stopped", isStanza("message", attrIs("from", c.from)))
			if want := fmt.Sprintf("%s%d", c.id, i); m.Attr("id") != want {
				t.Fatalf("%s got %s, want id %s: lost, repeated or out of order", c.to.name, m, want)
			}
		}
	}
	alice.tr.CloseIdleConnections()
	bob.tr.CloseIdleConnections()
	chatInOrder(t, bob, bobLogin.JID, alice, aliceLogin.JID, "after", 10)
	for _, c := range []*Client{alice, bob} {
		c.Sync()
		c.mu.Lock()
		err, terminal := c.err, c.terminal
		c.mu.Unlock()
		if err != nil || terminal != nil {
			t.Errorf("%s: error %v, terminate %v", c.name, err, terminal)
		}
		if resp := c.Terminate(""); resp.Attr("type") != "terminate" {
			t.Errorf("%s's terminate answered %s", c.name, resp)
		}
	}
	if !wait.For(oldExitBound, func() bool { return processExited(b.Pid()) }) {
		t.Errorf("the old process (%d) still runs with no session left", b.Pid())
	}
	if processExited(newPID) {
		t.Errorf("the new process (%d) exited", newPID)
	}
	if lines := grepLines(b.Log(), "level=ERROR"); lines != "" {
		t.Errorf("boshd logged errors:\n%s", lines)
	}
}
