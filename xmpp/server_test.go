package xmpp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"testing"
	"time"

	"github.com/boshd/boshd/internal/testcert"
	"github.com/boshd/boshd/internal/wait"
	"github.com/boshd/boshd/internal/xmpptest"
)

// This file holds the fake XMPP server the tests script.

const testDomain = xmpptest.Domain

// Feature lists the fake servers offer.
const (
	featuresTLS = `<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>`
	// featuresAuth is what a server offers before authentication, with
	// everything the filter must remove.
	featuresAuth = `<stream:features>` +
		`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>` +
		`<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1-PLUS</mechanism><mechanism>SCRAM-SHA-1</mechanism><mechanism>PLAIN</mechanism></mechanisms>` +
		`<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'><channel-binding type='tls-exporter'/></sasl-channel-binding>` +
		`<compression xmlns='http://jabber.org/features/compress'><method>zlib</method></compression>` +
		`<sm xmlns='urn:xmpp:sm:3'/>` +
		`</stream:features>`
	wantFeaturesAuth = `<stream:features xmlns:stream='http://etherx.jabber.org/streams'>` +
		`<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1</mechanism><mechanism>PLAIN</mechanism></mechanisms>` +
		`</stream:features>`
	// featuresPlainAuth has nothing to remove.
	featuresPlainAuth     = `<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>`
	wantFeaturesPlainAuth = `<stream:features xmlns:stream='http://etherx.jabber.org/streams'><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>`
	featuresBind          = `<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><sm xmlns='urn:xmpp:sm:3'/></stream:features>`
	wantFeaturesBind      = `<stream:features xmlns:stream='http://etherx.jabber.org/streams'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>`
)

// serverHeader is the stream header the fake server sends.
func serverHeader(id string) string { return xmpptest.Header(id, testDomain) }

// serve starts a fake server on a loopback port that runs script on each
// connection, and returns its address. A script error fails the test.
// When the test ends the connection is closed (which unblocks the
// script) and the script must return.
func serve(t *testing.T, script xmpptest.Script) string {
	t.Helper()
	return xmpptest.NewServer(t, script).Addr()
}

// serveRest serves a stream that opens with featuresPlainAuth and then
// reads all the client sends until it closes the socket: the returned
// channel receives what that was.
func serveRest(t *testing.T) (addr string, rest <-chan string) {
	t.Helper()
	ch := make(chan string, 1)
	addr = serve(t, xmpptest.Opened("s1", featuresPlainAuth, func(p *xmpptest.Peer) error {
		b, _ := io.ReadAll(p.Reader())
		ch <- string(b)
		return nil
	}))
	return addr, ch
}

// dialTest dials addr with d for testDomain, with a deadline, and closes
// the Conn when the test ends.
func dialTest(t *testing.T, d *Dialer, addr string) (*Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.Dial(ctx, Target{Domain: testDomain, Addr: addr, Lang: "en"})
	if c != nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

// mustDial is dialTest failing the test on error.
func mustDial(t *testing.T, d *Dialer, addr string) *Conn {
	t.Helper()
	c, err := dialTest(t, d, addr)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	return c
}

// result is what one Next call returned.
type result struct {
	b   []byte
	err error
}

// goNext calls c.Next in a goroutine and returns a channel for its result.
func goNext(c *Conn) <-chan result {
	ch := make(chan result, 1)
	go func() {
		b, err := c.Next()
		ch <- result{b, err}
	}()
	return ch
}

// await waits for a result, failing the test after a deadline.
func await(t *testing.T, ch <-chan result) result {
	t.Helper()
	return wait.Receive(t, ch, "Next to return")
}

// testPKI is a CA and a server certificate for testDomain signed by it.
type testPKI struct {
	roots  *x509.CertPool // holds the CA
	server *tls.Config    // serves the certificate
}

// certs returns a new test PKI.
func certs(t *testing.T) testPKI {
	t.Helper()
	server, roots := testcert.Server(t, testDomain)
	return testPKI{roots: roots, server: server}
}
