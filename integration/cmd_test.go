package integration

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/boshd/boshd/internal/testcert"
)

// The boshd binary itself: a graceful stop on SIGTERM with sessions live,
// and HTTPS, the admin listener and reloading on SIGHUP. Its command line
// is in contrib_test.go.

func TestBinaryGracefulShutdown(t *testing.T) {
	// Issue 3.12: on SIGTERM every held request is answered
	// system-shutdown, upstream streams are closed (bob sees alice leave),
	// and boshd exits within shutdown_timeout.
	parallel(t)
	p := startProsody(t, prosodyOptions{})
	b := startBinaryFor(t, p, "--shutdown-timeout", "5s")

	// bob watches through another boshd, which keeps running.
	bob, _ := login(t, startBoshd(t, prosodyConfig(p)), p, "bob", "PLAIN", "web")
	goOnline(t, bob)
	alice := rawLogin(t, b.URL, p, "alice", "web", 1, "")
	held := alice.next("", "<presence xmlns='"+nsClient+"' to='bob@localhost'/>")
	bob.WaitFor("alice's presence", isStanza("presence", func(e *Element) bool { return strings.HasPrefix(e.Attr("from"), "alice@") }))

	start := time.Now()
	b.Signal(syscall.SIGTERM)
	r := alice.get(held)
	if r.body.Attr("type") != "terminate" || r.body.Attr("condition") != "system-shutdown" {
		t.Fatalf("held request got %s", r.raw)
	}
	bob.WaitFor("alice going offline", isStanza("presence", func(e *Element) bool {
		return strings.HasPrefix(e.Attr("from"), "alice@") && e.Attr("type") == "unavailable"
	}))
	if err := b.WaitExit(t, 10*time.Second); err != nil {
		t.Fatalf("boshd exited with %v", err)
	}
	t.Logf("boshd stopped %v after SIGTERM", time.Since(start).Round(time.Millisecond))
}

// writeSelfSigned writes a new self-signed certificate for 127.0.0.1 to
// certFile and keyFile, and returns it.
func writeSelfSigned(t *testing.T, certFile, keyFile string) *x509.Certificate {
	t.Helper()
	c, err := testcert.SelfSigned("127.0.0.1")
	if err == nil {
		err = c.WriteFiles(certFile, keyFile)
	}
	if err != nil {
		t.Fatal(err)
	}
	return c.Leaf
}

func TestBinaryTLSAdminAndReload(t *testing.T) {
	// Issue 6.1 and 6.2: HTTPS with HTTP/2, the certificate and the
	// limits reloaded on SIGHUP without dropping sessions, and the admin
	// listener's endpoints.
	parallel(t)
	p := startProsody(t, prosodyOptions{})
	dir := t.TempDir()
	certFile, keyFile, confFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "boshd.yaml")
	first := writeSelfSigned(t, certFile, keyFile)
	conf := func(perIP int) {
		data := fmt.Sprintf("upstreams:\n  localhost: %q\nupstream_tls: plaintext\nmax_sessions_per_ip: %d\n", p.Addr, perIP)
		if err := os.WriteFile(confFile, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	conf(10)
	addr, adminAddr := freeAddr(t), freeAddr(t)
	b := startBinary(t, "--config", confFile, "--listen", addr, "--admin-listen", adminAddr, "--tls-cert-file", certFile, "--tls-key-file", keyFile)

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
		resp, data, err := readAll(hc.Post("https://"+addr+"/http-bind", "text/xml", strings.NewReader(body)))
		if err != nil {
			t.Fatal(err)
		}
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
	second := writeSelfSigned(t, certFile, keyFile)
	conf(1)
	b.Signal(syscall.SIGHUP)
	b.WaitLog(t, "configuration reloaded")

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
		resp, data, err := readAll(http.Get("http://" + adminAddr + path))
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || !strings.Contains(string(data), want) {
			t.Errorf("admin %s: %d, want %q in it", path, resp.StatusCode, want)
		}
	}
}
