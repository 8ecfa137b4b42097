package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/boshd/boshd/config"
)

// The boshd command's --help and --version, and contrib/boshd.service
// (operations issue, item 7).

// TestBinaryHelpAndVersion checks that --help lists every option (each
// key of config.Config as a flag) and --version prints one line, and that
// a bad option fails naming its key.
func TestBinaryHelpAndVersion(t *testing.T) {
	parallel(t)
	bin := mustBinary(t)
	out, err := exec.Command(bin, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("--help: %v\n%s", err, out)
	}
	help := string(out)
	flags := []string{"--config", "--upstream", "--version", "--help"}
	for _, s := range config.Settings() {
		flags = append(flags, "--"+s.Flag())
	}
	for _, flag := range flags {
		if !strings.Contains(help, flag+" ") && !strings.Contains(help, flag+"[") {
			t.Errorf("--help does not list %s", flag)
		}
	}
	if t.Failed() {
		t.Logf("--help:\n%s", help)
	}
	out, err = exec.Command(bin, "--version").Output()
	if err != nil || !strings.HasPrefix(string(out), "boshd ") || strings.Count(string(out), "\n") != 1 {
		t.Errorf("--version: %v %q, want one line \"boshd VERSION\" on stdout", err, out)
	}
	out, err = exec.Command(bin, "--max-wait", "0s").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "max_wait") {
		t.Errorf("a bad option must name its key and fail: %v %q", err, out)
	}
}

// unitSettings parses a systemd unit file into its settings, by section:
// "Service.ExecStart" → values, in order (a key may be repeated).
func unitSettings(t *testing.T, path string) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	settings := make(map[string][]string)
	section := ""
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
		default:
			key, value, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: not a setting: %q", path, line)
			}
			settings[section+"."+strings.TrimSpace(key)] = append(settings[section+"."+strings.TrimSpace(key)], strings.TrimSpace(value))
		}
	}
	return settings
}

func TestContribServiceUnit(t *testing.T) {
	parallel(t)
	unit := filepath.Join("..", "contrib", "boshd.service")
	s := unitSettings(t, unit)
	want := map[string]string{
		"Service.ExecStart":               "/usr/local/bin/boshd --config /etc/boshd/boshd.yaml",
		"Service.ExecReload":              "/bin/kill -HUP $MAINPID",
		"Service.KillSignal":              "SIGTERM",
		"Service.Restart":                 "on-failure",
		"Service.DynamicUser":             "yes",
		"Service.NoNewPrivileges":         "yes",
		"Service.ProtectSystem":           "strict",
		"Service.ProtectHome":             "yes",
		"Service.PrivateTmp":              "yes",
		"Service.PrivateDevices":          "yes",
		"Service.ProtectKernelTunables":   "yes",
		"Service.ProtectKernelModules":    "yes",
		"Service.ProtectKernelLogs":       "yes",
		"Service.ProtectControlGroups":    "yes",
		"Service.RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"Service.RestrictNamespaces":      "yes",
		"Service.LockPersonality":         "yes",
		"Service.MemoryDenyWriteExecute":  "yes",
		"Service.SystemCallArchitectures": "native",
		"Service.SystemCallFilter":        "@system-service",
		"Service.CapabilityBoundingSet":   "",
		"Service.LimitNOFILE":             "1048576",
		"Install.WantedBy":                "multi-user.target",
	}
	for key, value := range want {
		got, ok := s[key]
		if !ok || len(got) != 1 || got[0] != value {
			t.Errorf("%s: %s = %q, want %q", unit, key, got, value)
		}
	}
	if got, ok := s["Service.AmbientCapabilities"]; ok {
		t.Errorf("%s: AmbientCapabilities = %q; only for ports below 1024, commented out", unit, got)
	}
	// systemd must leave boshd its whole shutdown_timeout before SIGKILL.
	if v := s["Service.TimeoutStopSec"]; len(v) != 1 {
		t.Errorf("%s: TimeoutStopSec = %q", unit, v)
	} else if d, err := time.ParseDuration(v[0]); err != nil || d <= config.Default().ShutdownTimeout {
		t.Errorf("%s: TimeoutStopSec = %q, want a duration above the default shutdown_timeout %v", unit, v[0], config.Default().ShutdownTimeout)
	}

	// systemd-analyze verify checks the syntax, every setting's name and
	// value, and that ExecStart is executable: on a copy that runs the
	// boshd built for the tests.
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (apt-get install -y systemd): the unit is not verified")
	}
	data, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(t.TempDir(), "boshd.service")
	text := strings.ReplaceAll(string(data), "/usr/local/bin/boshd", mustBinary(t))
	if err := os.WriteFile(copyPath, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", copyPath).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) != 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
