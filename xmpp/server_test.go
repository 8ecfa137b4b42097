package xmpp

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/boshd/boshd/internal/rawxml"
)

// This file holds the fake XMPP server the tests script.

const testDomain = "example.test"

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
func serverHeader(id string) string {
	return `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='` + id + `' from='` + testDomain + `' version='1.0'>`
}

// peer is the server side of one connection, driven by a test's script.
type peer struct {
	nc   net.Conn
	br   *bufio.Reader
	rd   *rawxml.Reader
	quit <-chan struct{} // closed when the test ends
}

// readHeader reads the client's stream header, starting a new reader.
func (p *peer) readHeader() (rawxml.Root, error) {
	p.rd = rawxml.NewReader(p.br, rawxml.Options{})
	return p.rd.Root()
}

// next reads the client's next element.
func (p *peer) next() (string, error) {
	el, err := p.rd.Next()
	return string(el.Raw), err
}

// expect reads the client's next element and checks it is want.
func (p *peer) expect(want string) error {
	got, err := p.next()
	if err != nil {
		return fmt.Errorf("waiting for %s: %w", want, err)
	}
	if got != want {
		return fmt.Errorf("got %s, want %s", got, want)
	}
	return nil
}

func (p *peer) send(s string) error {
	_, err := p.nc.Write([]byte(s))
	return err
}

// open reads the client's header and answers with a header and features.
func (p *peer) open(id, features string) error {
	if _, err := p.readHeader(); err != nil {
		return fmt.Errorf("reading client header: %w", err)
	}
	return p.send(serverHeader(id) + features)
}

// acceptTLS answers the client's <starttls/> and runs the server side of
// the handshake.
func (p *peer) acceptTLS(cfg *tls.Config) error {
	if err := p.expect(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`); err != nil {
		return err
	}
	if err := p.send(`<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`); err != nil {
		return err
	}
	return p.acceptTLSOver(p.nc, cfg)
}

// acceptTLSOver is acceptTLS after <proceed/>: the handshake over nc,
// which carries p's connection (a wrapper of p.nc, say).
func (p *peer) acceptTLSOver(nc net.Conn, cfg *tls.Config) error {
	if nc != p.nc {
		if err := p.expect(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`); err != nil {
			return err
		}
		if err := p.send(`<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`); err != nil {
			return err
		}
	}
	tc := tls.Server(nc, cfg)
	if err := tc.Handshake(); err != nil {
		return err
	}
	p.nc = tc
	p.br.Reset(tc)
	return nil
}

// waitQuit blocks until the test ends.
func (p *peer) waitQuit() { <-p.quit }

// serve starts a fake server on a loopback port that runs script on the
// first connection, and returns its address. A script error fails the
// test. When the test ends the connection is closed (which unblocks the
// script) and serve waits for the script to return.
func serve(t *testing.T, script func(p *peer) error) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	quit := make(chan struct{})
	done := make(chan struct{})
	var (
		mu   sync.Mutex
		conn net.Conn
	)
	go func() {
		defer close(done)
		nc, err := ln.Accept()
		if err != nil {
			t.Errorf("server: accept: %v", err)
			return
		}
		mu.Lock()
		conn = nc
		mu.Unlock()
		p := &peer{nc: nc, br: bufio.NewReaderSize(nc, 512), quit: quit}
		err = script(p)
		p.nc.Close()
		if err != nil {
			t.Errorf("server: %v", err)
		}
	}()
	t.Cleanup(func() {
		close(quit)
		ln.Close()
		mu.Lock()
		if conn != nil {
			conn.Close()
		}
		mu.Unlock()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("server script did not return")
		}
	})
	return ln.Addr().String()
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
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("Next did not return")
		return result{}
	}
}

// testPKI is a CA and a server certificate for testDomain signed by it.
type testPKI struct {
	roots  *x509.CertPool // holds the CA
	server *tls.Config    // serves the certificate
}

var (
	pkiOnce sync.Once
	pki     testPKI
	pkiErr  error
)

// certs returns the test PKI, generating it on first use.
func certs(t *testing.T) testPKI {
	t.Helper()
	pkiOnce.Do(func() { pki, pkiErr = newPKI() })
	if pkiErr != nil {
		t.Fatal(pkiErr)
	}
	return pki
}

func newPKI() (testPKI, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return testPKI{}, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "boshd test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return testPKI{}, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return testPKI{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return testPKI{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: testDomain},
		DNSNames:     []string{testDomain},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return testPKI{}, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	return testPKI{
		roots: roots,
		server: &tls.Config{
			Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		},
	}, nil
}
