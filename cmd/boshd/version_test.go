package main

import (
	"bytes"
	"debug/buildinfo"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestBuildVersion(t *testing.T) {
	t.Parallel()
	vcs := func(revision, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: revision}, {Key: "vcs.modified", Value: modified}}
	}
	const rev = "ef3d4852dc71276a4251a807cf9c2ccec3d5ba85"
	for _, tc := range []struct {
		name string
		info *debug.BuildInfo
		want string
	}{
		{"module version", &debug.BuildInfo{Main: debug.Module{Version: "v1.2.0"}}, "v1.2.0"},
		{"pseudo-version of a checkout", &debug.BuildInfo{
			Main:     debug.Module{Version: "v0.0.0-20261207043154-ef3d4852dc71+dirty"},
			Settings: vcs(rev, "true"),
		}, "v0.0.0-20261207043154-ef3d4852dc71+dirty"},
		{"revision", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs(rev, "false")}, rev},
		{"revision with changes", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs(rev, "true")}, rev + "+dirty"},
		{"neither", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "(devel, built without VCS information)"},
		{"no build information", nil, "unknown (built without module support)"},
	} {
		if got := buildVersion(tc.info); got != tc.want {
			t.Errorf("%s: buildVersion = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestHelpAndVersion runs boshd --help and --version: both print to
// stdout only and exit 0.
func TestHelpAndVersion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--help"}, "Usage: boshd [flags]\n"},
		{[]string{"-h", "--max-wait=soon"}, "Usage: boshd [flags]\n"},
		{[]string{"--version"}, "boshd " + version() + "\n"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(tc.args, nil, &stdout, &stderr); code != 0 || stderr.Len() > 0 || !strings.HasPrefix(stdout.String(), tc.want) {
			t.Errorf("boshd %q: exit %d, stderr %q, stdout %q; want exit 0, nothing on stderr and stdout starting %q",
				tc.args, code, &stderr, &stdout, tc.want)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--max-wait=0s"}, nil, &stdout, &stderr); code != 2 || stdout.Len() > 0 || !strings.Contains(stderr.String(), "max_wait") {
		t.Errorf("boshd --max-wait=0s: exit %d, stdout %q, stderr %q; want exit 2 and the error on stderr", code, &stdout, &stderr)
	}
}

// TestBinaryVersion builds boshd as a user would and checks that
// --version prints the version stamped into the binary: the module
// version, or the VCS revision when built from a checkout (a plain clone;
// the go command stamps none in a git worktree), never "(devel)" alone.
func TestBinaryVersion(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "boshd")
	// -buildvcs=auto, whatever GOFLAGS says: stamp the revision when
	// there is one.
	if out, err := exec.Command("go", "build", "-buildvcs=auto", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--version")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("boshd --version: %v, stderr %q", err, &stderr)
	}
	want := "boshd " + buildVersion(info) + "\n"
	if string(out) != want || string(out) == "boshd (devel)\n" {
		t.Errorf("boshd --version printed %q, want %q", out, want)
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && !strings.Contains(string(out), s.Value[:12]) {
			t.Errorf("boshd --version printed %q, without the revision %s", out, s.Value)
		}
	}
	t.Logf("boshd --version: %s", out)
}
