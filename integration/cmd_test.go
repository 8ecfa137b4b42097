package integration

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The boshd binary itself: flags, --help, --version, and a graceful stop
// on SIGTERM with sessions live.

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// boshdBinary builds cmd/boshd once per test run.
func boshdBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "boshd-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "boshd")
		out, err := exec.Command("go", "build", "-o", buildPath, "boshd/cmd/boshd").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

func TestBinaryHelpAndVersion(t *testing.T) {
	bin := boshdBinary(t)
	out, err := exec.Command(bin, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("--help: %v\n%s", err, out)
	}
	for _, flag := range []string{"--listen", "--upstream", "--upstream-ca", "--config", "--max-wait", "--multiple-streams", "--cors-origins"} {
		if !strings.Contains(string(out), flag) {
			t.Errorf("--help does not list %s:\n%s", flag, out)
		}
	}
	out, err = exec.Command(bin, "--version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "boshd ") {
		t.Fatalf("--version: %v %q", err, out)
	}
	out, err = exec.Command(bin, "--max-wait", "0s").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "max_wait") {
		t.Fatalf("a bad option must name its key and fail: %v %q", err, out)
	}
}

func TestBinaryGracefulShutdown(t *testing.T) {
	// Issue 3.12: on SIGTERM every held request is answered
	// system-shutdown, upstream streams are closed (bob sees alice leave),
	// and boshd exits within shutdown_timeout.
	t.Parallel()
	p := startProsody(t, prosodyOptions{})
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(boshdBinary(t), "--listen", addr, "--upstream", p.Domain+"="+p.Addr, "--upstream-tls", "plaintext", "--shutdown-timeout", "5s")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	logs := make(chan string, 1000)
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listening") {
				once.Do(func() { close(ready) })
			}
			select {
			case logs <- sc.Text():
			default:
			}
		}
		close(logs)
	}()
	select {
	case <-ready:
	case <-time.After(eventTimeout):
		t.Fatal("boshd did not start")
	}
	url := "http://" + addr + "/http-bind"

	// bob watches through another boshd, which keeps running.
	bob, _ := login(t, startBoshd(t, prosodyConfig(p)), p, "bob", "PLAIN", "web")
	goOnline(t, bob)
	alice := rawLogin(t, url, p, "alice", "web", 1, "")
	held := alice.next("", "<presence xmlns='"+nsClient+"' to='bob@localhost'/>")
	bob.WaitFor("alice's presence", isStanza("presence", func(e *Element) bool { return strings.HasPrefix(e.Attr("from"), "alice@") }))

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r := alice.get(held)
	if r.body.Attr("type") != "terminate" || r.body.Attr("condition") != "system-shutdown" {
		t.Fatalf("held request got %s", r.raw)
	}
	bob.WaitFor("alice going offline", isStanza("presence", func(e *Element) bool {
		return strings.HasPrefix(e.Attr("from"), "alice@") && e.Attr("type") == "unavailable"
	}))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("boshd exited with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("boshd did not exit within its shutdown timeout")
	}
	t.Logf("boshd stopped %v after SIGTERM", time.Since(start).Round(time.Millisecond))
}
