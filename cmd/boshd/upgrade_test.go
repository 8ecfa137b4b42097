package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/boshd/boshd/admin"
	"github.com/boshd/boshd/bosh"
	"github.com/boshd/boshd/config"
	"github.com/boshd/boshd/internal/handoff"
	"github.com/boshd/boshd/internal/xmpptest"
)

// newUpgrader returns an upgrader that starts self with args, logging
// into logs.
func newUpgrader(t *testing.T, self string, args []string, logs *bytes.Buffer) *upgrader {
	t.Helper()
	up := xmpptest.NewRelay(t, xmpptest.NoFeatures)
	cfg := config.Default()
	cfg.Upstreams = map[string]string{"example.org": up.Addr()}
	cfg.UpstreamTLS = "plaintext"
	logger := slog.New(slog.NewTextHandler(logs, nil))
	h, err := bosh.NewHandler(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Shutdown(context.Background()) })
	u := &upgrader{self: self, args: args, log: logger}
	u.setHandlers(h, nil)
	t.Cleanup(func() { u.close(context.Background()) })
	return u
}

// upgradesCounted returns the line of boshd_upgrades_total with outcome.
func upgradesCounted(t *testing.T, u *upgrader, outcome string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	u.h.Metrics().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	data, _ := io.ReadAll(rec.Result().Body)
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, `boshd_upgrades_total{outcome="`+outcome+`"}`) {
			return line
		}
	}
	return ""
}

// TestUpgradeOneAtATime: while a new process is starting, a second
// SIGUSR2 is refused, logged and counted, and starts nothing.
func TestUpgradeOneAtATime(t *testing.T) {
	var logs bytes.Buffer
	u := newUpgrader(t, "/bin/sleep", []string{"30"}, &logs) // never says ready
	first := u.start(context.Background(), time.Minute)
	if first == nil || u.child == nil {
		t.Fatalf("the first upgrade did not start:\n%s", logs.String())
	}
	pid := u.child.Pid()
	if second := u.start(context.Background(), time.Minute); second != nil {
		t.Fatal("a second upgrade started while the first is under way")
	}
	if u.child.Pid() != pid {
		t.Errorf("the new process changed from %d to %d", pid, u.child.Pid())
	}
	if !strings.Contains(logs.String(), "upgrade refused: one is under way") {
		t.Errorf("the refusal is not logged:\n%s", logs.String())
	}
	if got := upgradesCounted(t, u, "refused"); !strings.HasSuffix(got, " 1") {
		t.Errorf("refusals counted: %q, want 1", got)
	}
}

// TestUpgradeDeferredWhileReceiving: a process an upgrade started defers
// a SIGUSR2 of its own until its old process says it moved what it could
// (a status with Moving unset), so that no session arriving late stays
// behind in it; then the upgrade starts.
func TestUpgradeDeferredWhileReceiving(t *testing.T) {
	var logs bytes.Buffer
	u := newUpgrader(t, "/bin/false", nil, &logs)
	// As serving sets them in a process an upgrade started, before its
	// old process has said anything.
	u.old, u.oldOK, u.oldMoving, u.settled = admin.OldProcess{PID: 1}, true, true, make(chan struct{})
	if u.whenSettled() != nil {
		t.Fatal("an upgrade waits before any SIGUSR2")
	}
	for range 2 {
		if u.start(context.Background(), 10*time.Second) != nil || u.child != nil {
			t.Fatal("an upgrade started while the old process moves its sessions here")
		}
	}
	if n := strings.Count(logs.String(), "upgrade deferred: the sessions of the old process are still arriving"); n != 1 {
		t.Errorf("the deferral logged %d times, want once:\n%s", n, logs.String())
	}
	settled := u.whenSettled()
	u.heard(handoff.Status{BOSH: 3, Exit: time.Now().Add(time.Minute), Moving: true})
	select {
	case <-settled:
		t.Fatal("settled while the old process says it is moving")
	default:
	}
	u.heard(handoff.Status{BOSH: 1, Exit: time.Now().Add(time.Minute)})
	select {
	case <-settled:
	default:
		t.Fatal("not settled once the old process said it moved what it could")
	}
	u.deferred = false // as serve's loop does
	done := u.start(context.Background(), 10*time.Second)
	if done == nil {
		t.Fatalf("the deferred upgrade did not start:\n%s", logs.String())
	}
	<-done
	if got := upgradesCounted(t, u, "refused"); got != "" && !strings.HasSuffix(got, " 0") {
		t.Errorf("a deferred upgrade counted refused: %q", got)
	}
}

// TestUpgradeFails: a new binary that exits before it is ready leaves
// this process as it was, the failure logged with the exit status and
// counted; the next upgrade may start.
func TestUpgradeFails(t *testing.T) {
	var logs bytes.Buffer
	u := newUpgrader(t, "/bin/false", nil, &logs)
	done := u.start(context.Background(), 10*time.Second)
	if done == nil {
		t.Fatal("the upgrade did not start")
	}
	stopped := false
	u.finish(context.Background(), <-done, time.Minute, time.Second, func() { stopped = true })
	if stopped || u.handedOff || u.child != nil {
		t.Errorf("after a failed upgrade: stopped accepting %v, handed over %v, child %v", stopped, u.handedOff, u.child)
	}
	if !strings.Contains(logs.String(), "upgrade failed: this process goes on serving") || !strings.Contains(logs.String(), "exit status 1") {
		t.Errorf("the failure is not logged with the exit status:\n%s", logs.String())
	}
	if got := upgradesCounted(t, u, "failed"); !strings.HasSuffix(got, " 1") {
		t.Errorf("failures counted: %q, want 1", got)
	}
	if again := u.start(context.Background(), 10*time.Second); again == nil {
		t.Error("no upgrade may start after a failed one")
	} else {
		<-again
	}
}

// TestUpgradeTakeBack: once handed over, this process keeps copies of
// its listening sockets; if the new process then dies (kill -9), it
// takes accepting back on them (a connection made meanwhile waits in the
// socket's queue), forwards nothing more to it, counts and logs it, and
// may upgrade again. A new process that stops cleanly (exit status 0) is
// not taken over from: this one serves its sessions to their end.
func TestUpgradeTakeBack(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		end      func(c *handoff.Child)
		takeBack bool
		log      string
	}{
		{"killed", []string{"30"}, func(c *handoff.Child) { syscall.Kill(c.Pid(), syscall.SIGKILL) }, true, "the new process died after the hand-over; this process accepts again"},
		{"stopped", []string{"0.2"}, func(*handoff.Child) {}, false, "the new process stopped; this one serves its sessions to their end"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			u := newUpgrader(t, "/bin/sleep", tc.args, &logs) // stands for the new process
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			u.opened = []handoff.Listener{{Key: "listen", Addr: addr, L: ln}}
			if u.start(context.Background(), time.Minute) == nil {
				t.Fatal("the upgrade did not start")
			}
			// As if it had said ready.
			u.finish(context.Background(), upgradeResult{socket: filepath.Join(t.TempDir(), "new.sock")}, time.Minute, time.Second, func() { ln.Close() })
			if !u.handedOff || u.successorExited() == nil {
				t.Fatalf("not handed over: %v", u.handedOff)
			}
			// No move socket there: nothing moves, and the log is
			// the test's to read once the moves are over.
			if res := <-u.moving; res.Moved != 0 {
				t.Errorf("moved %+v to a process with no move socket", res)
			}
			u.moving = nil
			u.stopMoving()
			tc.end(u.child)
			select {
			case <-u.successorExited():
			case <-time.After(10 * time.Second):
				t.Fatal("the new process's exit not seen")
			}
			queued, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if tc.takeBack && err != nil {
				t.Fatalf("a connection while the new process is dead: %v", err)
			}
			var resumed []handoff.Listener
			took := u.takeBack(func(ls []handoff.Listener) { resumed = ls })
			if took != tc.takeBack || u.handedOff == tc.takeBack || u.successorExited() != nil {
				t.Fatalf("takeBack %v, handed over %v; want %v, %v, and the exit acted on", took, u.handedOff, tc.takeBack, !tc.takeBack)
			}
			if !strings.Contains(logs.String(), tc.log) {
				t.Errorf("the log does not say %q:\n%s", tc.log, logs.String())
			}
			if !tc.takeBack {
				if resumed != nil {
					t.Errorf("sockets taken back from a process that stopped: %v", resumed)
				}
				return
			}
			defer queued.Close()
			if len(resumed) != 1 || resumed[0].Key != "listen" || len(u.opened) != 1 || u.opened[0].L != resumed[0].L {
				t.Fatalf("resumed %v, opened %v: want the copy of listen in both", resumed, u.opened)
			}
			go func() {
				c, err := resumed[0].L.Accept()
				if err == nil {
					c.Write([]byte("back\n"))
					c.Close()
				}
			}()
			queued.SetDeadline(time.Now().Add(5 * time.Second))
			if got, _ := io.ReadAll(queued); string(got) != "back\n" {
				t.Errorf("the queued connection got %q from the socket taken back", got)
			}
			resumed[0].L.Close()
			if got := upgradesCounted(t, u, "taken_back"); !strings.HasSuffix(got, " 1") {
				t.Errorf("take-backs counted: %q, want 1", got)
			}
			if again := u.start(context.Background(), 10*time.Millisecond); again == nil {
				t.Error("no upgrade may start after taking back")
			} else {
				<-again
			}
		})
	}
}
