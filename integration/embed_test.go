package integration

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/boshd/boshd/internal/wait"
)

// A program of its own that embeds boshd's handler (issue 15, point 4):
// the module in testdata/embed, which README's "Embedding in Go" shows,
// requires github.com/boshd/boshd, replaced by this checkout.

// embedDir holds the embedding program's module.
const embedDir = "testdata/embed"

// TestEmbedReadme checks that README's "Embedding in Go" section shows
// the program this file tests, as it is.
func TestEmbedReadme(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Embedding in Go\n")
	section, _, _ = strings.Cut(section, "\n## ")
	_, code, ok2 := strings.Cut(section, "```go\n")
	code, _, ok3 := strings.Cut(code, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("README.md has no ```go block in a section \"## Embedding in Go\"")
	}
	program, err := os.ReadFile(filepath.Join(embedDir, "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	if code != string(program) {
		t.Errorf("README.md's \"Embedding in Go\" shows another program than %s/main.go: copy the file into the section", embedDir)
	}
}

// TestEmbedLogin builds the embedding program in its own module, checks
// that it does not depend on viper, runs it in front of a real Prosody
// and logs a user in through it; then stops it with SIGTERM.
func TestEmbedLogin(t *testing.T) {
	parallel(t)
	deps, err := goCommand(t, "list", "-deps", ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, dep := range strings.Fields(deps) {
		if strings.Contains(dep, "spf13/viper") || strings.Contains(dep, "spf13/pflag") || strings.Contains(dep, "mapstructure") {
			t.Errorf("the embedding program depends on %s", dep)
		}
	}
	bin := filepath.Join(t.TempDir(), "embed")
	if _, err := goCommand(t, "build", "-o", bin, "."); err != nil {
		t.Fatal(err)
	}

	p := startProsody(t, prosodyOptions{})
	logs := &logBuffer{}
	cmd := exec.Command(bin, "-listen", "127.0.0.1:0", "-domain", p.Domain, "-server", p.Addr)
	cmd.Stderr = logs
	prog, err := startProcess(cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		prog.Kill()
		if t.Failed() {
			t.Logf("the embedding program's log:\n%s", logs.String())
		}
	})
	const serving = "serving BOSH at "
	started := func() bool { return strings.Contains(logs.String(), serving) }
	if !wait.For(eventTimeout, func() bool { return started() || !prog.Running() }) || !started() {
		t.Fatalf("the embedding program did not start (%v)", prog.Err())
	}
	_, url, _ := strings.Cut(logs.String(), serving)
	url, _, _ = strings.Cut(url, "\n")

	c, res := login(t, url, p, "alice", "PLAIN", "embedded")
	if !strings.HasPrefix(res.JID, "alice@"+p.Domain+"/") {
		t.Errorf("bound %q, want a resource of alice@%s", res.JID, p.Domain)
	}
	c.MustIQ("get", "", "<query xmlns='jabber:iq:roster'/>")

	prog.Signal(syscall.SIGTERM)
	if !prog.WaitExit(eventTimeout) {
		t.Error("the embedding program did not stop on SIGTERM")
	} else if err := prog.Err(); err != nil {
		t.Errorf("after SIGTERM the embedding program exited with %v", err)
	}
}

// goCommand runs the go command in the embedding program's module and
// returns its standard output. The module's go.sum must list what the
// program needs: a failure says how to update it.
func goCommand(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = embedDir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go %s in %s: %v\n%s(if boshd's dependencies changed: cd integration/%s && go mod tidy)",
			strings.Join(args, " "), embedDir, err, &stderr, embedDir)
	}
	return string(out), nil
}
