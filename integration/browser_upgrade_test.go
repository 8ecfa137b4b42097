package integration

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/boshd/boshd/internal/wait"
)

// Real web clients through live upgrades (issue 18 point 5, design 005):
// Strophe.js and Converse.js in Chromium chat over BOSH with the boshd
// binary while it is upgraded (SIGUSR2) several times in a row.

// browserUpgrades is how many upgrades in a row one run goes through.
const browserUpgrades = 3

// browserUpgradeMessages is how many numbered messages each client sends
// each way while one upgrade is under way (and one more, prefix-end).
const browserUpgradeMessages = 10

// The kinds of upgrade an upgradeLine's plan holds.
const (
	upgradeOK       = "ok"              // the new process takes over
	upgradeFails    = "fails"           // the new process fails to become ready (an invalid configuration)
	upgradeStalled  = "prosody-stopped" // the new process takes over while Prosody does not read (SIGSTOP)
	upgradeStallFor = 2 * time.Second   // how long Prosody is stopped around an upgradeStalled
)

// issue18Upgrades is issue 18 point 5's five upgrades in a row: one to a
// binary that fails to become ready, one while Prosody is slow to read.
var issue18Upgrades = []string{upgradeOK, upgradeFails, upgradeOK, upgradeStalled, upgradeOK}

// upgradeLine is the processes a browser test upgrades through: its
// pages' control route "upgrade" (POST /control/upgrade) upgrades the
// newest, answering once it has handed over. With a plan, each upgrade
// is the plan's next kind: one that fails needs cfgFile (boshd's
// --config), one with Prosody stopped needs prosody.
type upgradeLine struct {
	mu      sync.Mutex
	b       *boshdProcess
	pids    []int    // the first process, then each new one
	plan    []string // the kinds of the upgrades to come; nil: every one upgradeOK
	cfgFile string
	prosody *prosody
	failed  int // upgrades that failed as planned
}

// start records b, the first process, and returns it.
func (l *upgradeLine) start(b *boshdProcess) *boshdProcess {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b, l.pids = b, []int{b.Pid()}
	return b
}

// upgrade is the control route: SIGUSR2 to the newest process, as the
// plan's next kind says.
func (l *upgradeLine) upgrade() (any, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	kind := upgradeOK
	if len(l.plan) > 0 {
		kind, l.plan = l.plan[0], l.plan[1:]
	}
	newest := l.pids[len(l.pids)-1]
	switch kind {
	case upgradeFails:
		if err := l.failOnce(newest); err != nil {
			return nil, err
		}
		l.failed++
		return map[string]any{"kind": kind, "failed": true, "serving": newest}, nil
	case upgradeStalled:
		pid := l.prosody.process().Pid()
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			return nil, err
		}
		stopped := time.Now()
		defer func() {
			time.Sleep(time.Until(stopped.Add(upgradeStallFor)))
			syscall.Kill(pid, syscall.SIGCONT)
		}()
	}
	next, err := upgradeOnce(l.b, newest)
	if err != nil {
		return nil, err
	}
	l.pids = append(l.pids, next)
	return map[string]any{"kind": kind, "from": newest, "to": next}, nil
}

// failOnce upgrades pid to a configuration the new process refuses, and
// returns once pid has logged the upgrade failed; the configuration is
// put back.
func (l *upgradeLine) failOnce(pid int) error {
	good, err := os.ReadFile(l.cfgFile)
	if err != nil {
		return err
	}
	defer os.WriteFile(l.cfgFile, good, 0o644)
	if err := os.WriteFile(l.cfgFile, []byte(strings.Replace(string(good), "max_wait: 10s", "max_wait: forever", 1)), 0o644); err != nil {
		return err
	}
	const failed = "upgrade failed: this process goes on serving"
	before := countLines(l.b.Log(), failed)
	if err := syscall.Kill(pid, syscall.SIGUSR2); err != nil {
		return err
	}
	if !wait.For(30*time.Second, func() bool { return countLines(l.b.Log(), failed) > before }) {
		return fmt.Errorf("no failed upgrade logged within 30s of SIGUSR2 to %d:\n%s", pid, l.b.logs.Tail(20))
	}
	return nil
}

// failures returns how many upgrades failed as planned.
func (l *upgradeLine) failures() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failed
}

// processes returns the pids so far, the newest last.
func (l *upgradeLine) processes() []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.pids)
}

// TestBrowserUpgrade is run.mjs's upgrade-chat for Strophe.js and
// Converse.js, over a plaintext upstream and over STARTTLS (Prosody
// requiring it, with a certificate of the test's CA): alice and bob chat
// with numbered messages while boshd goes through issue 18's five
// upgrades in a row (issue18Upgrades: one to a configuration the new
// process refuses, one while Prosody is stopped), each started as the
// messages are on their way. No client sees
// a failed request, an HTTP error or a terminate, or logs in again; every
// message arrives once, in order on the wire (checked with Strophe.js;
// Converse.js's screen is checked for once each, see run.mjs). Over a
// plaintext upstream both sessions move to the new process at each
// hand-over (the browsers' parked requests with them) and each old
// process exits at once; with a STARTTLS upstream they cannot move
// (design 005): each old process serves them to their end, the newest
// forwarding to it, and exits once alice and bob log out. The newest
// process stays.
func TestBrowserUpgrade(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		client string
		tls    bool
	}{
		{"strophe", "strophe", false},
		{"converse", "converse", false},
		{"strophe-starttls", "strophe", true},
		{"converse-starttls", "converse", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tools := needBrowser(t)
			p := startProsody(t, prosodyOptions{TLS: tc.tls})
			users := browserUsers(t, p)
			cfgFile := upgradeConfigFile(t)

			line := &upgradeLine{plan: slices.Clone(issue18Upgrades), cfgFile: cfgFile, prosody: p}
			pages := servePages(t, tools, map[string]func() (any, error){"upgrade": line.upgrade})
			args := []string{"--config", cfgFile, "--cors-origins", pages.Origin}
			if tc.tls {
				args = append(args, "--upstream-tls", "starttls", "--upstream-ca", p.CAFile)
			}
			b := line.start(startUpgradable(t, p, nil, args...))
			t.Cleanup(func() {
				// No error but the failed upgrade's own.
				checkBoshdLog(t, strings.ReplaceAll(b.Log(), "level=ERROR msg=\"upgrade failed: this process goes on serving\"", "(the planned failure)"))
			})
			handOvers := len(issue18Upgrades) - 1 // one fails

			res := runBrowser(t, tools, map[string]any{
				"scenario":   "upgrade-chat",
				"client":     tc.client,
				"baseURL":    pages.Origin,
				"buildDir":   pages.BuildDir,
				"users":      users,
				"serviceURL": b.URL,
				"controlURL": pages.Origin + "/control",
				"upgrades":   len(issue18Upgrades),
				"messages":   browserUpgradeMessages,
			})
			t.Logf("%v upgrades; sids %v; %v BOSH requests", res["upgrades"], res["sids"], res["requests"])

			pids := line.processes()
			if len(pids) != handOvers+1 || line.failures() != 1 {
				t.Fatalf("processes %v and %d upgrades failed, want %d processes (the first, then one per hand-over) and 1 failed", pids, line.failures(), handOvers+1)
			}
			newest := pids[len(pids)-1]
			if got := statusPID(t, b.AdminAddr); got != newest {
				t.Errorf("the status page shows pid %d, want the newest process %d", got, newest)
			}
			if tc.tls {
				// The last round went through the newest process,
				// which relayed it along the line to the first.
				if n := b.AdminMetric(`boshd_forwarded_requests_total{outcome="ok",peer="predecessor"}`); n < 1 {
					t.Errorf("the newest process forwarded %v requests to its predecessor, want some", n)
				}
			}
			// Plaintext, the first hand-over moved both sessions and
			// none was kept or failed later (a later hand-over may come
			// before the sessions have landed in the process making
			// it, the scenario upgrading as soon as it is told); over
			// STARTTLS the first kept them, and the later ones had
			// none of their own.
			all := movedLine.FindAllStringSubmatch(b.Log(), -1)
			if len(all) != handOvers {
				t.Errorf("%d hand-overs logged their moves, want %d", len(all), handOvers)
			}
			for i, m := range all {
				got := m[1:]
				switch {
				case i == 0 && !tc.tls && !slices.Equal(got, []string{"2", "0", "0"}),
					i == 0 && tc.tls && !slices.Equal(got, []string{"0", "0", "2"}),
					i > 0 && !tc.tls && (got[1] != "0" || got[2] != "0"),
					i > 0 && tc.tls && !slices.Equal(got, []string{"0", "0", "0"}):
					t.Errorf("hand-over %d moved, failed, kept %v sessions", i+1, got)
				}
			}
			// The clients logged out: every old process exits, the
			// newest serves on.
			for _, pid := range pids[:len(pids)-1] {
				if !wait.For(oldExitBound, func() bool { return processExited(pid) }) {
					t.Errorf("old process %d still runs after the clients logged out", pid)
				}
			}
			if processExited(newest) {
				t.Fatalf("the newest process (%d) exited", newest)
			}
			// Each old process logs why it exits just before it does;
			// the log is read from its pipe a moment later.
			exited := func() int { return countLines(b.Log(), "upgrade: the old process exits", "no session left") }
			wait.For(wait.Deadline, func() bool { return exited() >= handOvers })
			if n := exited(); n != handOvers {
				t.Errorf("%d old processes exited for having no session left, want %d:\n%s", n, handOvers, grepLines(b.Log(), "the old process exits"))
			}
			if countLines(b.Log(), "system-shutdown") > 0 {
				t.Errorf("a session was told system-shutdown:\n%s", grepLines(b.Log(), "system-shutdown"))
			}
		})
	}
}
