package integration

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/boshd/boshd/config"
	"github.com/boshd/boshd/internal/wait"
)

// TestBrowserNginx is point 3: scenarios (a) and (d) through a real nginx
// at /http-bind, configured with the snippet from README.md as it is
// (readmeNginxSnippet), with the test pages served by nginx on the same
// origin. nginx connects to boshd from 127.0.0.2 (proxy_bind in the server
// block around the snippet), which boshd lists in trusted_proxies; the
// browser, on 127.0.0.1, forges an X-Forwarded-For entry. boshd must count
// and log each session under 127.0.0.1, the address nginx vouches for, and
// ignore the forged one. The snippet's upstream keepalive must make nginx
// reuse its connections to boshd rather than open one per request.
func TestBrowserNginx(t *testing.T) {
	t.Parallel()
	st := startBrowserStack(t, serveOptions{
		Configure: func(cfg *config.Config, _, _ string) {
			cfg.TrustedProxies = []string{"127.0.0.2"}
			cfg.MaxSessionsPerIP = 4
			cfg.PublicURL = "https://chat.example.org/http-bind"
		},
	})
	ngx := startNginx(t, nginxBinary(t), readmeNginxSnippet(t), st.Addr, st.tools.dir)

	// The README's host-meta location reaches boshd's XEP-0156 answers.
	checkHostMeta(t, http.DefaultClient, ngx.URL, "", "https://chat.example.org/http-bind")

	for _, scenario := range []string{"strophe-exchange", "converse-message"} {
		t.Run(scenario, func(t *testing.T) {
			res := st.RunAt(t, scenario, ngx.URL, map[string]any{"forwardedFor": "198.51.100.7"})
			if scenario == "converse-message" {
				checkBOSHURLs(t, res, ngx.URL+"/http-bind")
			}
		})
	}
	log := st.Log()
	sessions := countLines(log, "session client")
	if sessions < 4 {
		t.Errorf("boshd logged %d sessions, want 4", sessions)
	}
	if n := countLines(log, "session client", "ip=127.0.0.1 ", "peer=127.0.0.2:"); n != sessions {
		t.Errorf("%d of %d sessions logged as from ip=127.0.0.1 via peer 127.0.0.2:\n%s", n, sessions, grepLines(log, "session client"))
	}
	if strings.Contains(log, "198.51.100.7") {
		t.Errorf("boshd believed the forged X-Forwarded-For:\n%s", grepLines(log, "198.51.100.7"))
	}
	if n := countLines(ngx.AccessLog(), "POST /http-bind"); n == 0 {
		t.Errorf("nginx access log shows no BOSH request:\n%s", ngx.AccessLog())
	}
	// The README's upstream keepalive: nginx sends many requests over each
	// connection to boshd instead of opening one per request.
	requests, conns := st.Wire.RequestConns()
	t.Logf("boshd read %d BOSH requests from nginx over %d connections", requests, conns)
	if requests == 0 || conns > requests/2 {
		t.Errorf("boshd read %d BOSH requests from nginx over %d connections, want at most half as many connections", requests, conns)
	}
}

// nginxBinary returns the path of nginx, or skips (or fails) t.
func nginxBinary(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("BOSHD_NGINX"), "/usr/sbin/nginx"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	skipOrFail(t, "nginx is not installed (apt-get install -y nginx)")
	return ""
}

// nginxSnippet is the nginx configuration of README.md's "Behind nginx"
// section, as operators copy it: blocks that go in nginx's http block (the
// upstream), and blocks that go in a server block (the /http-bind location
// and the host-meta one).
type nginxSnippet struct {
	HTTP, Server string
}

// readmeNginxSnippet returns the nginx configuration blocks of README.md's
// "Behind nginx" section (up to the next "## " heading), one after the
// other, an upstream block in HTTP and the others in Server.
func readmeNginxSnippet(t *testing.T) nginxSnippet {
	t.Helper()
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "\n## Behind nginx\n")
	if !ok {
		t.Fatal(`README.md has no "## Behind nginx" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var httpBlocks, serverBlocks []string
	for {
		var block string
		if _, section, ok = strings.Cut(section, "```nginx\n"); !ok {
			break
		}
		if block, section, ok = strings.Cut(section, "```"); !ok {
			t.Fatal("README.md: an nginx block is not closed")
		}
		if strings.HasPrefix(firstDirective(block), "upstream ") {
			httpBlocks = append(httpBlocks, block)
		} else {
			serverBlocks = append(serverBlocks, block)
		}
	}
	if len(serverBlocks) == 0 {
		t.Fatal("README.md's Behind nginx section has no ```nginx block for a server")
	}
	return nginxSnippet{HTTP: strings.Join(httpBlocks, "\n"), Server: strings.Join(serverBlocks, "\n")}
}

// firstDirective returns the first line of an nginx block that is neither
// blank nor a comment.
func firstDirective(block string) string {
	for line := range strings.Lines(block) {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			return line
		}
	}
	return ""
}

// readmeBackend is the boshd address the README's nginx snippet proxies to:
// boshd's default listen address.
const readmeBackend = "127.0.0.1:5280"

// nginxServer is a private nginx owned by one test.
type nginxServer struct {
	URL string
	dir string
}

// AccessLog returns nginx's access log so far.
func (n *nginxServer) AccessLog() string {
	b, _ := os.ReadFile(filepath.Join(n.dir, "access.log"))
	return string(b)
}

// startNginx runs nginx on a free port of 127.0.0.1 with README.md's
// snippet, its upstream in the http block and its locations in one server
// block, pointed at the boshd under test (readmeBackend replaced by
// backend; nothing else is changed), and the test pages and node_modules
// of browserDir served as files on the same origin (and /build/, run.mjs's
// bundles, by backend). Everything nginx
// writes stays in a temporary directory. It is stopped in t.Cleanup.
func startNginx(t *testing.T, bin string, snippet nginxSnippet, backend, browserDir string) *nginxServer {
	t.Helper()
	if !strings.Contains(snippet.HTTP+snippet.Server, readmeBackend) {
		t.Fatalf("README.md's nginx snippet does not proxy to %s; update readmeBackend:\n%s\n%s", readmeBackend, snippet.HTTP, snippet.Server)
	}
	upstream := strings.ReplaceAll(snippet.HTTP, readmeBackend, backend)
	location := strings.ReplaceAll(snippet.Server, readmeBackend, backend)

	// Workers run as nobody when nginx starts as root: everything they
	// touch must be reachable by others.
	dir, err := os.MkdirTemp("", "boshd-nginx-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o777); err != nil {
			t.Fatal(err)
		}
		_ = os.Chmod(filepath.Join(dir, sub), 0o777)
	}

	n := &nginxServer{dir: dir}
	var lastErr error
	for attempt := 1; attempt <= 3; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		n.URL = fmt.Sprintf("http://127.0.0.1:%d", port)
		conf := fmt.Sprintf(`# Generated by boshd's TestBrowserNginx.
worker_processes 1;
error_log %[1]s/error.log info;
events {
    worker_connections 256;
}
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    log_format timed '$remote_addr "$request" $status $body_bytes_sent $request_time s (boshd $upstream_response_time s)';
    access_log %[1]s/access.log timed;
    client_body_temp_path %[1]s/client_body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;

    # From README.md:
%[6]s
    server {
        listen 127.0.0.1:%[2]d;
        server_name localhost;
        # boshd sees nginx at 127.0.0.2 (its trusted proxy), the browser at 127.0.0.1.
        proxy_bind 127.0.0.2;

        root %[3]s;
        location /node_modules/ {
            root %[4]s;
        }
        # run.mjs's bundles, made while nginx runs, served by the test's boshd.
        location /build/ {
            proxy_pass http://%[7]s;
        }

        # From README.md:
%[5]s    }
}
`, dir, port, filepath.Join(browserDir, "pages"), browserDir, indent(location, "        "), indent(upstream, "    "), backend)
		confPath := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		lastErr = runNginx(t, bin, dir, confPath, n.URL)
		if lastErr == nil {
			return n
		}
		t.Logf("nginx: attempt %d on port %d: %v", attempt, port, lastErr)
	}
	t.Fatalf("nginx did not start: %v", lastErr)
	return nil
}

// indent prefixes every non-empty line of s with prefix.
func indent(s, prefix string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(s, "\n") {
		if strings.TrimSpace(line) != "" {
			b.WriteString(prefix)
		}
		b.WriteString(line)
	}
	return b.String()
}

// runNginx starts nginx in the foreground with confPath and waits until
// url serves the Strophe test page. On success it is stopped in t.Cleanup.
func runNginx(t *testing.T, bin, dir, confPath, url string) error {
	if out, err := exec.Command(bin, "-t", "-q", "-e", filepath.Join(dir, "error.log"), "-p", dir, "-c", confPath, "-g", "pid "+filepath.Join(dir, "nginx.pid")+";").CombinedOutput(); err != nil {
		t.Fatalf("nginx -t refuses the configuration: %v\n%s\n%s", err, out, readTail(confPath, 80))
	}
	out := &logBuffer{}
	cmd := exec.Command(bin, "-e", filepath.Join(dir, "error.log"), "-p", dir, "-c", confPath,
		"-g", "daemon off; pid "+filepath.Join(dir, "nginx.pid")+";")
	cmd.Stdout, cmd.Stderr = out, out
	proc, err := startProcess(cmd)
	if err != nil {
		return err
	}
	stop := func() { proc.Stop(syscall.SIGQUIT, 10*time.Second) } // graceful
	var lastErr error
	serving := func() bool {
		resp, err := http.Get(url + "/strophe.html")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return true
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		lastErr = err
		return false
	}
	ready := wait.For(20*time.Second, func() bool { return !proc.Running() || serving() })
	if !proc.Running() {
		return fmt.Errorf("nginx exited (%v): %s %s", proc.Err(), out.String(), readTail(filepath.Join(dir, "error.log"), 20))
	}
	if !ready {
		stop()
		return fmt.Errorf("not serving %s: %v", url, lastErr)
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("nginx error log:\n%s", readTail(filepath.Join(dir, "error.log"), 60))
			t.Logf("nginx access log:\n%s", readTail(filepath.Join(dir, "access.log"), 60))
		}
	})
	return nil
}
