// Package integration holds boshd's end-to-end tests: a Strophe-like BOSH
// client (client_test.go) drives boshd's handler, mounted on an
// httptest.Server, or the boshd binary (boshd_test.go), in front of real
// Prosody instances the tests start (prosody_test.go). The scenarios are
// in relay_test.go, session_test.go, fault_test.go, cmd_test.go and the
// browser tests (browser_test.go). Each test has its own Prosody and boshd
// on free ports, so they run in parallel (parallel_test.go).
//
// The tests skip when Prosody is not installed, unless CI=true or
// BOSHD_REQUIRE_PROSODY=1; BOSHD_PROSODY names another prosody binary.
package integration

import (
	"bufio"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/boshd/boshd/internal/testcert"
)

// The integration tests run a real Prosody (Debian package prosody 0.12)
// per test, configured entirely inside a temporary directory: data, pid file,
// log and certificates never touch /etc/prosody or /var/lib/prosody, and it
// listens only on 127.0.0.1 on a free port.

const (
	// prosodyDomain is the one virtual host every test Prosody serves.
	prosodyDomain = "localhost"
	// prosodyStartTimeout bounds waiting for Prosody to accept c2s streams.
	prosodyStartTimeout = 30 * time.Second
	// prosodyStopTimeout bounds a graceful stop before Prosody is killed.
	// Prosody waits up to c2s_close_timeout+1 s (6 s) for clients to close.
	prosodyStopTimeout = 15 * time.Second
	// prosodyLogTail is how many lines of Prosody's log a failed test prints.
	prosodyLogTail = 150
)

// testUsers are the accounts created in every test Prosody.
var testUsers = []string{"alice", "bob", "carol", "dave"}

// prosodyOptions selects how a test Prosody is configured.
type prosodyOptions struct {
	// TLS makes Prosody require STARTTLS on c2s with a certificate for
	// localhost and 127.0.0.1 signed by a CA generated for the test
	// (prosody.CAFile). Without it Prosody does not load mod_tls, so it
	// offers no STARTTLS and accepts PLAIN over plaintext.
	TLS bool
	// TLSOptional offers STARTTLS without requiring it, and allows PLAIN
	// without TLS (TLS mode only).
	TLSOptional bool
	// TLS12 limits Prosody's TLS to version 1.2, where it supports the
	// tls-unique channel binding and so offers SCRAM-SHA-1-PLUS (TLS mode
	// only).
	TLS12 bool
	// Smacks loads mod_smacks (XEP-0198 stream management, shipped with
	// Prosody 0.12), so post-authentication features offer urn:xmpp:sm:3.
	Smacks bool
	// WebSocket loads Prosody's own mod_websocket (RFC 7395) on an HTTP
	// port of its own (prosody.WebSocketURL), accepting pages of any
	// origin: the reference peer the browser tests can point their
	// clients at, to tell a client's trouble from boshd's.
	WebSocket bool
	// LogLevel is the lowest level Prosody logs: "debug" when empty.
	// Load tests log less, or Prosody spends its time writing its log.
	LogLevel string
}

// prosody is a running Prosody process owned by one test.
type prosody struct {
	t    testing.TB
	opts prosodyOptions

	// Dir holds the configuration, data, pid file, log and certificates.
	Dir string
	// Addr is the c2s listener, "127.0.0.1:PORT".
	Addr string
	// Domain is the virtual host, "localhost".
	Domain string
	// CAFile is the PEM file of the CA that signed Prosody's certificate
	// (TLS mode only).
	CAFile string
	// CAPool trusts CAFile (TLS mode only).
	CAPool *x509.CertPool
	// Passwords maps each user in testUsers to its password.
	Passwords map[string]string
	// WebSocketURL is mod_websocket's endpoint,
	// ws://127.0.0.1:PORT/xmpp-websocket (WebSocket mode only).
	WebSocketURL string

	configPath string
	logPath    string
	outPath    string

	mu   sync.Mutex
	proc *process // the running (or last) Prosody, nil before the first start
}

// prosodyBinary returns the path of the prosody executable, or "" if it is
// not installed. BOSHD_PROSODY overrides the path.
func prosodyBinary() string {
	if p := os.Getenv("BOSHD_PROSODY"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return ""
		}
		return p
	}
	if _, err := os.Stat("/usr/bin/prosody"); err == nil {
		return "/usr/bin/prosody"
	}
	if p, err := exec.LookPath("prosody"); err == nil {
		return p
	}
	return ""
}

// prosodyRequired reports whether a missing Prosody must fail the tests
// instead of skipping them (CI=true or BOSHD_REQUIRE_PROSODY=1).
func prosodyRequired() bool {
	return os.Getenv("CI") == "true" || os.Getenv("BOSHD_REQUIRE_PROSODY") == "1"
}

// needProsody returns the prosody binary, or skips t when Prosody is not
// installed, unless prosodyRequired: then t fails.
func needProsody(t testing.TB) string {
	t.Helper()
	bin := prosodyBinary()
	if bin == "" {
		if prosodyRequired() {
			t.Fatal("prosody is not installed (apt-get install -y prosody); it is required because CI=true or BOSHD_REQUIRE_PROSODY=1")
		}
		t.Skip("prosody is not installed (apt-get install -y prosody); set BOSHD_REQUIRE_PROSODY=1 to make this a failure")
	}
	return bin
}

// startProsody starts a Prosody for t with the given options and returns it
// once its c2s port answers a stream header with <stream:features/>. The
// process is killed in t.Cleanup; when t failed, the tail of Prosody's log is
// printed. startProsody skips t when Prosody is not installed, unless
// prosodyRequired.
func startProsody(t testing.TB, opts prosodyOptions) *prosody {
	t.Helper()
	bin := needProsody(t)

	dir := t.TempDir()
	p := &prosody{
		t:          t,
		opts:       opts,
		Dir:        dir,
		Domain:     prosodyDomain,
		Passwords:  make(map[string]string),
		configPath: filepath.Join(dir, "prosody.cfg.lua"),
		logPath:    filepath.Join(dir, "prosody.log"),
		outPath:    filepath.Join(dir, "prosody.out"),
	}
	for _, dirName := range []string{"data", "certs"} {
		if err := os.MkdirAll(filepath.Join(dir, dirName), 0o700); err != nil {
			t.Fatalf("prosody: %v", err)
		}
	}
	if opts.TLS {
		if err := p.writeCertificates(); err != nil {
			t.Fatalf("prosody: generating certificates: %v", err)
		}
	}
	for _, user := range testUsers {
		password := randomToken(12)
		if err := writeProsodyAccount(filepath.Join(dir, "data"), p.Domain, user, password); err != nil {
			t.Fatalf("prosody: registering %s: %v", user, err)
		}
		p.Passwords[user] = password
	}

	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			p.dumpLog()
		}
	})

	// A free port can be taken by someone else between picking and binding
	// it; if Prosody dies before it is ready, retry on another port.
	var lastErr error
	for attempt := 1; attempt <= 3; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("prosody: %v", err)
		}
		p.Addr = net.JoinHostPort("127.0.0.1", fmt.Sprint(port))
		if err := p.writeConfig(port); err != nil {
			t.Fatalf("prosody: writing config: %v", err)
		}
		if err := p.start(bin); err != nil {
			t.Fatalf("prosody: %v", err)
		}
		lastErr = p.waitReady(prosodyStartTimeout)
		if lastErr == nil {
			return p
		}
		p.Kill()
		t.Logf("prosody: attempt %d on port %d failed: %v", attempt, port, lastErr)
	}
	p.dumpLog()
	t.Fatalf("prosody did not start: %v", lastErr)
	return nil
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("picking a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// luaString quotes s as a Lua string literal.
func luaString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

// writeConfig writes the Prosody configuration for a c2s listener on port.
func (p *prosody) writeConfig(port int) error {
	modules := []string{"roster", "saslauth", "disco", "ping"}
	if p.opts.TLS {
		modules = append(modules, "tls")
	}
	if p.opts.Smacks {
		modules = append(modules, "smacks")
	}
	httpPorts := ""
	if p.opts.WebSocket {
		modules = append(modules, "websocket")
		httpPort, err := freePort()
		if err != nil {
			return err
		}
		httpPorts = fmt.Sprint(httpPort)
		p.WebSocketURL = fmt.Sprintf("ws://127.0.0.1:%d/xmpp-websocket", httpPort)
	}
	quoted := make([]string, len(modules))
	for i, m := range modules {
		quoted[i] = luaString(m)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "-- Generated by boshd's integration tests.\n")
	fmt.Fprintf(&b, "run_as_root = true\n")
	fmt.Fprintf(&b, "pidfile = %s\n", luaString(filepath.Join(p.Dir, "prosody.pid")))
	fmt.Fprintf(&b, "data_path = %s\n", luaString(filepath.Join(p.Dir, "data")))
	fmt.Fprintf(&b, "certificates = %s\n", luaString(filepath.Join(p.Dir, "certs")))
	level := p.opts.LogLevel
	if level == "" {
		level = "debug"
	}
	fmt.Fprintf(&b, "log = { { levels = { min = %s }, to = \"file\", filename = %s } }\n", luaString(level), luaString(p.logPath))
	fmt.Fprintf(&b, "interfaces = { \"127.0.0.1\" }\n")
	fmt.Fprintf(&b, "local_interfaces = { \"127.0.0.1\" }\n")
	fmt.Fprintf(&b, "c2s_interfaces = { \"127.0.0.1\" }\n")
	fmt.Fprintf(&b, "c2s_ports = { %d }\n", port)
	fmt.Fprintf(&b, "c2s_direct_tls_ports = {}\n")
	fmt.Fprintf(&b, "s2s_ports = {}\n")
	fmt.Fprintf(&b, "s2s_interfaces = {}\n")
	fmt.Fprintf(&b, "http_ports = { %s }\n", httpPorts)
	if p.opts.WebSocket {
		// Loopback only; the test pages are on boshd's origin.
		fmt.Fprintf(&b, "http_interfaces = { \"127.0.0.1\" }\n")
		fmt.Fprintf(&b, "consider_websocket_secure = true\n")
		fmt.Fprintf(&b, "cross_domain_websocket = true\n")
	}
	fmt.Fprintf(&b, "https_ports = {}\n")
	fmt.Fprintf(&b, "modules_enabled = { %s }\n", strings.Join(quoted, ", "))
	fmt.Fprintf(&b, "modules_disabled = { \"s2s\", \"s2s_auth_certs\", \"offline\" }\n")
	fmt.Fprintf(&b, "authentication = \"internal_hashed\"\n")
	fmt.Fprintf(&b, "storage = \"internal\"\n")
	if p.opts.TLS {
		fmt.Fprintf(&b, "c2s_require_encryption = %v\n", !p.opts.TLSOptional)
		fmt.Fprintf(&b, "allow_unencrypted_plain_auth = %v\n", p.opts.TLSOptional)
		protocol := ""
		if p.opts.TLS12 {
			protocol = `, protocol = "tlsv1_2"`
		}
		ssl := fmt.Sprintf("{ certificate = %s, key = %s%s }",
			luaString(filepath.Join(p.Dir, "certs", "localhost.crt")),
			luaString(filepath.Join(p.Dir, "certs", "localhost.key")), protocol)
		fmt.Fprintf(&b, "ssl = %s\n", ssl)
		fmt.Fprintf(&b, "VirtualHost %s\n", luaString(p.Domain))
		fmt.Fprintf(&b, "\tssl = %s\n", ssl)
	} else {
		fmt.Fprintf(&b, "c2s_require_encryption = false\n")
		fmt.Fprintf(&b, "allow_unencrypted_plain_auth = true\n")
		fmt.Fprintf(&b, "VirtualHost %s\n", luaString(p.Domain))
	}
	return os.WriteFile(p.configPath, []byte(b.String()), 0o600)
}

// start launches Prosody in the foreground (-F) as a process of the test.
func (p *prosody) start(bin string) error {
	out, err := os.OpenFile(p.outPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer out.Close() // Prosody has its own copy
	cmd := exec.Command(bin, "--config", p.configPath, "-F")
	cmd.Dir = p.Dir
	cmd.Stdout = out
	cmd.Stderr = out
	proc, err := startProcess(cmd)
	if err != nil {
		return fmt.Errorf("starting %s: %w", bin, err)
	}
	p.mu.Lock()
	p.proc = proc
	p.mu.Unlock()
	return nil
}

// process returns the running (or last) Prosody process, or nil.
func (p *prosody) process() *process {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.proc
}

// waitReady polls the c2s port until Prosody answers a stream header with
// <stream:features/>, the process exits, or timeout passes.
func (p *prosody) waitReady(timeout time.Duration) error {
	proc := p.process()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for {
		if !proc.Running() {
			return fmt.Errorf("prosody exited before it was ready (%v); output: %s", proc.Err(), readTail(p.outPath, 20))
		}
		lastErr = p.probe(deadline)
		if lastErr == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %w", timeout, lastErr)
		}
		proc.WaitExit(25 * time.Millisecond) // a poll interval, cut short if it exits
	}
}

// probe opens one c2s stream and reads its features.
func (p *prosody) probe(deadline time.Time) error {
	d := net.Dialer{Deadline: deadline}
	conn, err := d.Dial("tcp", p.Addr)
	if err != nil {
		return err
	}
	x := newXMPPConn(conn, deadline)
	defer x.Close()
	features, err := x.OpenStream(p.Domain)
	if err != nil {
		return err
	}
	// The host is fully up once it offers what the mode needs.
	if p.opts.TLS && features.Child(nsTLS, "starttls") == nil {
		return fmt.Errorf("no <starttls/> in %s", features)
	}
	if !p.opts.TLS && features.Child(nsSASL, "mechanisms") == nil {
		return fmt.Errorf("no SASL mechanisms in %s", features)
	}
	return nil
}

// Running reports whether the Prosody process has not exited yet.
func (p *prosody) Running() bool {
	proc := p.process()
	return proc != nil && proc.Running()
}

// Stop shuts Prosody down gracefully (SIGTERM: it closes every c2s stream
// with a system-shutdown stream error) and waits for it to exit; after
// prosodyStopTimeout it is killed. Stop may be called more than once.
func (p *prosody) Stop() {
	if proc := p.process(); proc != nil && !proc.Stop(syscall.SIGTERM, prosodyStopTimeout) {
		p.t.Errorf("prosody did not stop within %v after SIGTERM; killed it", prosodyStopTimeout)
	}
}

// Kill kills Prosody (SIGKILL: its TCP connections drop without a closing
// </stream:stream>) and waits for it to be reaped. Kill may be called more
// than once.
func (p *prosody) Kill() {
	if proc := p.process(); proc != nil && !proc.Kill() {
		p.t.Errorf("prosody (pid %d) was not reaped %v after SIGKILL", proc.Pid(), killTimeout)
	}
}

// Log returns Prosody's log file so far.
func (p *prosody) Log() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", p.logPath, err)
	}
	return string(b)
}

// dumpLog prints the tail of Prosody's log and console output.
func (p *prosody) dumpLog() {
	p.t.Helper()
	p.t.Logf("prosody config %s:\n%s", p.configPath, readTail(p.configPath, 100))
	p.t.Logf("prosody console output:\n%s", readTail(p.outPath, 30))
	p.t.Logf("prosody log (last %d lines of %s):\n%s", prosodyLogTail, p.logPath, readTail(p.logPath, prosodyLogTail))
}

// readTail returns the last n lines of the file at path.
func readTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d lines omitted)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// randomToken returns n random bytes as a hex string.
func randomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// prosodyEncode escapes a host or user name for a Prosody data path the way
// util.datamanager does (every non-alphanumeric byte as %xx).
func prosodyEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02x", c)
		}
	}
	return b.String()
}

// writeProsodyAccount registers user@host with password by writing the
// account file mod_auth_internal_hashed (Prosody 0.12, password_hash SHA-1)
// reads: SCRAM-SHA-1 StoredKey and ServerKey in hex, the salt and the
// iteration count. It does what `prosodyctl register` does without starting
// Lua once per user.
func writeProsodyAccount(dataDir, host, user, password string) error {
	const iterations = 10000 // Prosody's default_iteration_count
	salt := randomUUID()
	salted, err := pbkdf2.Key(sha1.New, password, []byte(salt), iterations, sha1.Size)
	if err != nil {
		return err
	}
	storedKey, serverKey := scramSHA1Keys(salted)
	dir := filepath.Join(dataDir, prosodyEncode(host), "accounts")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	content := fmt.Sprintf("return {\n\t[\"iteration_count\"] = %d;\n\t[\"salt\"] = %s;\n\t[\"server_key\"] = %s;\n\t[\"stored_key\"] = %s;\n};\n",
		iterations, luaString(salt), luaString(hex.EncodeToString(serverKey)), luaString(hex.EncodeToString(storedKey)))
	return os.WriteFile(filepath.Join(dir, prosodyEncode(user)+".dat"), []byte(content), 0o600)
}

// scramSHA1Keys derives the SCRAM-SHA-1 StoredKey and ServerKey (RFC 5802)
// from a salted password.
func scramSHA1Keys(salted []byte) (storedKey, serverKey []byte) {
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha1.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	clientKey := mac(salted, "Client Key")
	sum := sha1.Sum(clientKey)
	return sum[:], mac(salted, "Server Key")
}

// randomUUID returns a random (version 4) UUID string, the salt format
// Prosody itself uses.
func randomUUID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// writeCertificates generates a CA and a server certificate for localhost
// and 127.0.0.1 signed by it, writes them as PEM into p.Dir and sets
// CAFile and CAPool.
func (p *prosody) writeCertificates() error {
	ca, err := testcert.NewCA("boshd integration test CA")
	if err != nil {
		return err
	}
	server, err := ca.Issue(p.Domain, "127.0.0.1")
	if err != nil {
		return err
	}
	certs := filepath.Join(p.Dir, "certs")
	p.CAFile = filepath.Join(certs, "ca.crt")
	if err := os.WriteFile(p.CAFile, ca.PEM(), 0o600); err != nil {
		return err
	}
	if err := server.WriteFiles(filepath.Join(certs, "localhost.crt"), filepath.Join(certs, "localhost.key")); err != nil {
		return err
	}
	p.CAPool = ca.Pool()
	return nil
}

// xmppConn is a minimal direct XMPP client stream, used to check the
// harness and to see what Prosody itself offers without boshd in between.
type xmppConn struct {
	conn     net.Conn
	dec      *xml.Decoder
	deadline time.Time
	// writeTimeout, if set, bounds each Send from its start instead.
	writeTimeout time.Duration
}

func newXMPPConn(conn net.Conn, deadline time.Time) *xmppConn {
	_ = conn.SetDeadline(deadline)
	return &xmppConn{conn: conn, dec: xml.NewDecoder(bufio.NewReader(conn)), deadline: deadline}
}

// dialXMPP connects to addr with every read and write bounded by timeout.
func dialXMPP(addr string, timeout time.Duration) (*xmppConn, error) {
	deadline := time.Now().Add(timeout)
	d := net.Dialer{Deadline: deadline}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return newXMPPConn(conn, deadline), nil
}

func (x *xmppConn) Close() error { return x.conn.Close() }

// Send writes raw XML.
func (x *xmppConn) Send(s string) error {
	if x.writeTimeout > 0 {
		_ = x.conn.SetWriteDeadline(time.Now().Add(x.writeTimeout))
	}
	_, err := x.conn.Write([]byte(s))
	return err
}

// OpenStream sends a stream header for domain and returns the server's
// <stream:features/>.
func (x *xmppConn) OpenStream(domain string) (*Element, error) {
	header := fmt.Sprintf("<?xml version='1.0'?><stream:stream to='%s' version='1.0' xml:lang='en' xmlns='%s' xmlns:stream='%s'>",
		domain, nsClient, nsStream)
	if err := x.Send(header); err != nil {
		return nil, err
	}
	for {
		tok, err := x.dec.Token()
		if err != nil {
			return nil, fmt.Errorf("reading stream header: %w", err)
		}
		if start, ok := tok.(xml.StartElement); ok {
			if start.Name.Space != nsStream || start.Name.Local != "stream" {
				return nil, fmt.Errorf("expected <stream:stream>, got <%s xmlns=%q>", start.Name.Local, start.Name.Space)
			}
			break
		}
	}
	features, err := x.Next()
	if err != nil {
		return nil, err
	}
	if !features.Is(nsStream, "features") {
		return nil, fmt.Errorf("expected <stream:features/>, got %s", features)
	}
	return features, nil
}

// Next reads the next top-level element of the stream.
func (x *xmppConn) Next() (*Element, error) {
	for {
		tok, err := x.dec.Token()
		if err != nil {
			return nil, err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			return readElement(x.dec, tok, nil, 0)
		case xml.EndElement:
			return nil, errors.New("stream closed by server")
		}
	}
}

// StartTLS negotiates STARTTLS and reopens the stream, returning the new
// features.
func (x *xmppConn) StartTLS(domain string, roots *x509.CertPool) (*Element, error) {
	if err := x.expect("<starttls xmlns='"+nsTLS+"'/>", nsTLS, "proceed", "STARTTLS refused"); err != nil {
		return nil, err
	}
	tlsConn := tls.Client(x.conn, &tls.Config{ServerName: domain, RootCAs: roots})
	if err := tlsConn.Handshake(); err != nil {
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	x.conn = tlsConn
	x.dec = xml.NewDecoder(bufio.NewReader(tlsConn))
	return x.OpenStream(domain)
}

// AuthPlain authenticates with SASL PLAIN and reopens the stream, returning
// the post-authentication features.
func (x *xmppConn) AuthPlain(domain, user, password string) (*Element, error) {
	creds := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password))
	if err := x.expect("<auth xmlns='"+nsSASL+"' mechanism='PLAIN'>"+creds+"</auth>", nsSASL, "success", "SASL PLAIN failed"); err != nil {
		return nil, err
	}
	x.dec = xml.NewDecoder(bufio.NewReader(x.conn))
	return x.OpenStream(domain)
}

// expect sends s and reads the next element, failing with refused unless
// it is {space}local.
func (x *xmppConn) expect(s, space, local, refused string) error {
	if err := x.Send(s); err != nil {
		return err
	}
	e, err := x.Next()
	if err != nil {
		return err
	}
	if !e.Is(space, local) {
		return fmt.Errorf("%s: %s", refused, e)
	}
	return nil
}

// mechanisms lists the SASL mechanisms in features.
func mechanisms(features *Element) []string {
	var names []string
	if m := features.Child(nsSASL, "mechanisms"); m != nil {
		for _, c := range m.ChildrenNamed(nsSASL, "mechanism") {
			names = append(names, strings.TrimSpace(c.Text))
		}
	}
	return names
}

// directFeatures logs in to p directly (STARTTLS first when offered, then
// SASL PLAIN) and returns what Prosody itself offers: on connecting, before
// authentication (after STARTTLS, if any) and after authentication.
func directFeatures(t *testing.T, p *prosody, user string) (initial, preAuth, postAuth *Element) {
	t.Helper()
	x, err := dialXMPP(p.Addr, eventTimeout)
	if err != nil {
		t.Fatalf("direct: %v", err)
	}
	defer x.Close()
	if initial, err = x.OpenStream(p.Domain); err != nil {
		t.Fatalf("direct: %v", err)
	}
	preAuth = initial
	if initial.Child(nsTLS, "starttls") != nil && p.CAPool != nil {
		if preAuth, err = x.StartTLS(p.Domain, p.CAPool); err != nil {
			t.Fatalf("direct: %v", err)
		}
	}
	if postAuth, err = x.AuthPlain(p.Domain, user, p.Passwords[user]); err != nil {
		t.Fatalf("direct: %v", err)
	}
	return initial, preAuth, postAuth
}

// TestProsodyHarness checks the harness on its own: Prosody starts in both
// modes, answers a raw c2s stream with features, offers SCRAM-SHA-1 (so the
// account files written by writeProsodyAccount are usable) and accepts the
// test users' passwords.
func TestProsodyHarness(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts prosodyOptions
	}{
		{"plaintext", prosodyOptions{}},
		{"tls", prosodyOptions{TLS: true, Smacks: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parallel(t)
			p := startProsody(t, tt.opts)

			x, err := dialXMPP(p.Addr, eventTimeout)
			if err != nil {
				t.Fatal(err)
			}
			defer x.Close()
			features, err := x.OpenStream(p.Domain)
			if err != nil {
				t.Fatalf("raw c2s stream: %v", err)
			}
			t.Logf("initial features: %s", features)
			hasTLS := features.Child(nsTLS, "starttls") != nil
			if hasTLS != tt.opts.TLS {
				t.Fatalf("STARTTLS offered = %v, want %v: %s", hasTLS, tt.opts.TLS, features)
			}
			if tt.opts.TLS {
				if features.Child(nsTLS, "starttls").Child(nsTLS, "required") == nil {
					t.Errorf("STARTTLS not required: %s", features)
				}
				if features, err = x.StartTLS(p.Domain, p.CAPool); err != nil {
					t.Fatalf("STARTTLS with the generated CA: %v", err)
				}
				t.Logf("features after STARTTLS: %s", features)
			}
			mechs := mechanisms(features)
			if !slices.Contains(mechs, "SCRAM-SHA-1") || !slices.Contains(mechs, "PLAIN") {
				t.Fatalf("mechanisms %v lack SCRAM-SHA-1 or PLAIN", mechs)
			}
			postAuth, err := x.AuthPlain(p.Domain, "alice", p.Passwords["alice"])
			if err != nil {
				t.Fatalf("PLAIN with the written account file: %v", err)
			}
			t.Logf("post-auth features: %s", postAuth)
			if postAuth.Child(nsBind, "bind") == nil {
				t.Errorf("no <bind/> after authentication: %s", postAuth)
			}
			hasSM := postAuth.Child(nsSM3, "sm") != nil
			if hasSM != tt.opts.Smacks {
				t.Errorf("stream management offered = %v, want %v", hasSM, tt.opts.Smacks)
			}

			// A wrong password must fail: the account file is really used.
			y, err := dialXMPP(p.Addr, eventTimeout)
			if err != nil {
				t.Fatal(err)
			}
			defer y.Close()
			if _, err := y.OpenStream(p.Domain); err != nil {
				t.Fatal(err)
			}
			if tt.opts.TLS {
				if _, err := y.StartTLS(p.Domain, p.CAPool); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := y.AuthPlain(p.Domain, "alice", "wrong"+p.Passwords["alice"]); err == nil {
				t.Errorf("PLAIN with a wrong password succeeded")
			}
		})
	}
}

// TestProsodyAccountFormat checks writeProsodyAccount's key derivation
// against an account file written by prosodyctl 0.12 (password "secret").
func TestProsodyAccountFormat(t *testing.T) {
	const (
		salt      = "7b64ab6b-ed9d-402c-8024-392e53e27f39"
		serverKey = "9f20551a2048036ab77ba77ac34b3110d16faa4f"
		storedKey = "50025bb1e6d189e346b9ca593d94518e8f15fc3a"
	)
	salted, err := pbkdf2.Key(sha1.New, "secret", []byte(salt), 10000, sha1.Size)
	if err != nil {
		t.Fatal(err)
	}
	gotStored, gotServer := scramSHA1Keys(salted)
	if hex.EncodeToString(gotStored) != storedKey || hex.EncodeToString(gotServer) != serverKey {
		t.Errorf("keys = %x, %x; want %s, %s", gotStored, gotServer, storedKey, serverKey)
	}
	if got := prosodyEncode("a.b@c"); got != "a%2eb%40c" {
		t.Errorf("prosodyEncode = %q", got)
	}
}
