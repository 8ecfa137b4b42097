package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/boshd/boshd/bosh"
	"github.com/boshd/boshd/config"
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
	u.finish(<-done, time.Minute, func() { stopped = true })
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
