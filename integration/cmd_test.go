package integration

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
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
		out, err := exec.Command("go", "build", "-o", buildPath, "github.com/boshd/boshd/cmd/boshd").CombinedOutput()
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
	cmd, _ := startBinary(t, "--listen", addr, "--upstream", p.Domain+"="+p.Addr, "--upstream-tls", "plaintext", "--shutdown-timeout", "5s")
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

// writeSelfSigned writes a self-signed certificate for 127.0.0.1 with the
// given serial to certFile and keyFile, and returns it.
func writeSelfSigned(t *testing.T, certFile, keyFile string, serial int64) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert
}

// startBinary runs boshd with args and waits until it listens; its log
// lines arrive on the returned channel.
func startBinary(t *testing.T, args ...string) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.Command(boshdBinary(t), args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	logs := make(chan string, 1000)
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			if strings.Contains(sc.Text(), "boshd listening") {
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
	return cmd, logs
}

// waitLog waits for a log line containing want.
func waitLog(t *testing.T, logs <-chan string, want string) string {
	t.Helper()
	deadline := time.After(eventTimeout)
	for {
		select {
		case line, ok := <-logs:
			if !ok {
				t.Fatalf("boshd exited before logging %q", want)
			}
			if strings.Contains(line, want) {
				return line
			}
		case <-deadline:
			t.Fatalf("boshd did not log %q", want)
		}
	}
}

func TestBinaryTLSAdminAndReload(t *testing.T) {
	// Issue 6.1 and 6.2: HTTPS with HTTP/2, the certificate and the
	// limits reloaded on SIGHUP without dropping sessions, and the admin
	// listener's endpoints.
	t.Parallel()
	p := startProsody(t, prosodyOptions{})
	dir := t.TempDir()
	certFile, keyFile, confFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "boshd.yaml")
	first := writeSelfSigned(t, certFile, keyFile, 1)
	conf := func(perIP int) {
		data := fmt.Sprintf("upstreams:\n  localhost: %q\nupstream_tls: plaintext\nmax_sessions_per_ip: %d\n", p.Addr, perIP)
		if err := os.WriteFile(confFile, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	conf(10)
	port, _ := freePort()
	adminPort, _ := freePort()
	addr, adminAddr := fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("127.0.0.1:%d", adminPort)
	cmd, logs := startBinary(t, "--config", confFile, "--listen", addr, "--admin-listen", adminAddr, "--tls-cert-file", certFile, "--tls-key-file", keyFile)

	// A client trusting whichever certificate is served, recording it.
	var served []*x509.Certificate
	var mu sync.Mutex
	tr := &http.Transport{
		ForceAttemptHTTP2: true,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, VerifyConnection: func(cs tls.ConnectionState) error {
			mu.Lock()
			served = append(served, cs.PeerCertificates[0])
			mu.Unlock()
			return nil
		}},
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: eventTimeout}
	post := func(body string) (*http.Response, string) {
		t.Helper()
		resp, err := hc.Post("https://"+addr+"/http-bind", "text/xml", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp, string(data)
	}
	creation := fmt.Sprintf("<body xmlns='%s' rid='100' to='localhost' wait='1' hold='1' ver='1.6'/>", nsHTTPBind)
	resp, body := post(creation)
	el, err := parseDocument([]byte(body))
	if err != nil || el.Attr("sid") == "" {
		t.Fatalf("creation over HTTPS: %v %s", err, body)
	}
	if resp.ProtoMajor != 2 {
		t.Errorf("served over %s, want HTTP/2", resp.Proto)
	}
	sid := el.Attr("sid")

	// New certificate and a per-IP limit of 1, then SIGHUP.
	second := writeSelfSigned(t, certFile, keyFile, 2)
	conf(1)
	cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, logs, "configuration reloaded")

	// The session lives on over the same HTTP/2 connection...
	_, body = post(fmt.Sprintf("<body xmlns='%s' rid='101' sid='%s'><iq xmlns='jabber:client' type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq></body>", nsHTTPBind, sid))
	if el, _ := parseDocument([]byte(body)); el.Attr("type") != "" {
		t.Fatalf("session after reload: %s", body)
	}
	// ...the new limit holds for new sessions...
	if _, body = post(creation); !strings.Contains(body, "policy-violation") {
		t.Fatalf("second session from one IP after lowering the limit: %s", body)
	}
	// ...and new connections get the new certificate.
	tr.CloseIdleConnections()
	post(fmt.Sprintf("<body xmlns='%s' rid='102' sid='%s'/>", nsHTTPBind, sid))
	mu.Lock()
	last := served[len(served)-1]
	mu.Unlock()
	if last.SerialNumber.Cmp(second.SerialNumber) != 0 || first.SerialNumber.Cmp(second.SerialNumber) == 0 {
		t.Errorf("after SIGHUP the listener serves certificate %v, want %v", last.SerialNumber, second.SerialNumber)
	}

	for path, want := range map[string]string{
		"/metrics": "boshd_sessions_active 1",
		"/healthz": "ok",
		"/readyz":  "ready",
		"/":        "boshd",
	} {
		resp, err := http.Get("http://" + adminAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(data), want) {
			t.Errorf("admin %s: %d, want %q in it", path, resp.StatusCode, want)
		}
	}
}
