package integration

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/boshd/boshd/config"
	"github.com/boshd/boshd/gateway"
)

// The boshd command's --help and --version, contrib/boshd.service
// (operations issue, item 7), and contrib/nginx/boshd.conf with the
// WebSocket location of README.md's nginx snippet.

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
		"Service.Type":                    "notify",
		"Service.NotifyAccess":            "all",
		"Service.ExecReload":              "/bin/kill -USR2 $MAINPID",
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

// nginxBlocks returns the upstream and location blocks of nginx
// configuration text, in order, each as its directive lines with
// indentation, blank lines and comments removed, so that a block
// compares equal wherever it is nested and however it is annotated.
func nginxBlocks(t *testing.T, text string) []string {
	t.Helper()
	var blocks []string
	var cur []string
	depth := 0 // of braces within the current block, 0 outside one
	for line := range strings.Lines(text) {
		line, _, _ = strings.Cut(line, "#") // no # in these blocks' values but comments
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		if depth == 0 && !strings.HasPrefix(line, "upstream ") && !strings.HasPrefix(line, "location ") {
			continue
		}
		cur = append(cur, line)
		depth += strings.Count(line, "{") - strings.Count(line, "}")
		if depth < 0 {
			t.Fatalf("unbalanced braces at %q", line)
		}
		if depth == 0 {
			blocks = append(blocks, strings.Join(cur, "\n"))
			cur = nil
		}
	}
	if depth != 0 {
		t.Fatalf("a block is not closed: %q", cur)
	}
	return blocks
}

// TestContribNginx checks that contrib/nginx/boshd.conf holds README.md's
// nginx blocks (the upstream and every location of "Behind nginx"), no
// more and no fewer, in the same order, and that nginx accepts the file
// where it goes, in the http block.
func TestContribNginx(t *testing.T) {
	parallel(t)
	conf, err := filepath.Abs(filepath.Join("..", "contrib", "nginx", "boshd.conf"))
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	snippet := readmeNginxSnippet(t)
	want := append(nginxBlocks(t, snippet.HTTP), nginxBlocks(t, snippet.Server)...)
	got := nginxBlocks(t, string(data))
	if len(want) < 3 {
		t.Fatalf("README.md's nginx snippet has %d blocks, want the upstream and at least two locations:\n%s", len(want), strings.Join(want, "\n\n"))
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s has drifted from README.md's \"Behind nginx\" blocks; make them equal.\n%s has:\n%s\n\nREADME.md has:\n%s",
			conf, conf, strings.Join(got, "\n\n"), strings.Join(want, "\n\n"))
	}

	// nginx -t reads the file in an http block, as /etc/nginx/conf.d/
	// is read, with every path it writes in a temporary directory. It
	// opens no listening socket, so port 80 is not needed.
	bin := nginxBinary(t)
	dir := t.TempDir()
	var paths strings.Builder
	for _, sub := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&paths, "    %s_temp_path %s;\n", sub, filepath.Join(dir, sub))
	}
	wrapper := fmt.Sprintf("events {}\nhttp {\n    access_log off;\n%s    include %s;\n}\n", paths.String(), conf)
	wrapperPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(wrapperPath, []byte(wrapper), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-t", "-q", "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", wrapperPath,
		"-g", "pid "+filepath.Join(dir, "nginx.pid")+";").CombinedOutput()
	if err != nil {
		t.Errorf("nginx -t refuses %s: %v\n%s", conf, err, out)
	}
}

// TestNginxWebSocketUpgrade runs README.md's nginx snippet in a real nginx
// (as TestBrowserNginx does) in front of a backend that stands for boshd's
// WebSocket endpoint, and sends it a browser's WebSocket handshake from a
// page on nginx's own origin. The README's WebSocket location must carry
// the upgrade through (Upgrade and Connection set again, HTTP/1.1), pass
// the Host the browser sent with its port, so that boshd's Origin check
// (gateway.AllowOrigin, with the default configuration) admits the page,
// and the client's address in X-Forwarded-For; then relay the 101 answer
// and bytes both ways. No browser and no wsbind are needed: this checks
// the proxy's half of the contract.
func TestNginxWebSocketUpgrade(t *testing.T) {
	parallel(t)
	bin := nginxBinary(t)
	browserDir, err := filepath.Abs("browser")
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(config.Default(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	wsPath := config.Default().WebSocketPath

	// What the backend saw of the one upgrade request.
	type seen struct {
		host, origin, upgrade, connection, forwardedFor string
		allowed                                         bool
	}
	seenc := make(chan seen, 1)
	mux := http.NewServeMux()
	mux.HandleFunc(wsPath, func(w http.ResponseWriter, r *http.Request) {
		select {
		case seenc <- seen{r.Host, r.Header.Get("Origin"), r.Header.Get("Upgrade"), r.Header.Get("Connection"),
			r.Header.Get("X-Forwarded-For"), g.AllowOrigin(r)}:
		default:
		}
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "not an upgrade", http.StatusBadRequest)
			return
		}
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n", wsAccept(r.Header.Get("Sec-WebSocket-Key")))
		if rw.Flush() != nil {
			return
		}
		// Echo what comes through until the client closes: bytes after
		// the upgrade are the WebSocket's, which nginx relays as they are.
		io.Copy(conn, rw)
	})
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(backend)
	t.Cleanup(func() { srv.Close() })

	ngx := startNginx(t, bin, readmeNginxSnippet(t), backend.Addr().String(), browserDir)
	host := strings.TrimPrefix(ngx.URL, "http://")
	conn, err := net.DialTimeout("tcp", host, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	const key = "dGhlIHNhbXBsZSBub25jZQ=="
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\nOrigin: %s\r\n\r\n",
		wsPath, host, key, ngx.URL)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading nginx's answer to the upgrade: %v\nnginx access log:\n%s", err, ngx.AccessLog())
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != wsAccept(key) ||
		resp.Header.Get("Sec-WebSocket-Protocol") != "xmpp" {
		t.Fatalf("nginx answered the upgrade %s %v, want 101 with the backend's accept and subprotocol", resp.Status, resp.Header)
	}

	select {
	case s := <-seenc:
		if s.host != host {
			t.Errorf("the backend saw Host %q, want %q as the browser sent it (proxy_set_header Host $http_host)", s.host, host)
		}
		if s.origin != ngx.URL {
			t.Errorf("the backend saw Origin %q, want %q", s.origin, ngx.URL)
		}
		if !s.allowed {
			t.Errorf("gateway.AllowOrigin refuses the page on nginx's origin %s behind the README's location (Host %q)", ngx.URL, s.host)
		}
		if !strings.EqualFold(s.upgrade, "websocket") || !strings.Contains(strings.ToLower(s.connection), "upgrade") {
			t.Errorf("the backend saw Upgrade %q and Connection %q, want websocket and upgrade", s.upgrade, s.connection)
		}
		if s.forwardedFor != "127.0.0.1" {
			t.Errorf("the backend saw X-Forwarded-For %q, want the client's 127.0.0.1", s.forwardedFor)
		}
	default:
		t.Fatal("nginx answered 101 but the backend saw no request")
	}

	// Bytes flow both ways after the upgrade, in both directions at once.
	msg := []byte("bytes after the upgrade, relayed as they are")
	if _, err := conn.Write(msg); err != nil {
		t.Fatal(err)
	}
	echo := make([]byte, len(msg))
	if _, err := io.ReadFull(br, echo); err != nil || string(echo) != string(msg) {
		t.Errorf("echo through nginx: %q, %v; want %q", echo, err, msg)
	}
}

// wsAccept is the Sec-WebSocket-Accept answering key (RFC 6455 §4.2.2).
func wsAccept(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}
