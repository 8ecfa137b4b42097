package testcert_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"path/filepath"
	"testing"

	"github.com/boshd/boshd/internal/testcert"
)

// handshake runs a TLS handshake between a server with cfg and a client
// trusting roots, for serverName.
func handshake(cfg *tls.Config, roots *x509.CertPool, serverName string) error {
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		return err
	}
	defer ln.Close()
	go func() {
		if s, err := ln.Accept(); err == nil {
			s.(*tls.Conn).Handshake()
			s.Close()
		}
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, ServerName: serverName})
	if err != nil {
		return err
	}
	return c.Close()
}

func TestIssued(t *testing.T) {
	t.Parallel()
	server, roots := testcert.Server(t, "example.test", "127.0.0.1")
	for _, name := range []string{"example.test", "127.0.0.1"} {
		if err := handshake(server, roots, name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	var hostErr x509.HostnameError
	if err := handshake(server, roots, "other.test"); !errors.As(err, &hostErr) {
		t.Errorf("other.test: %v, want a hostname error", err)
	}
	var unknown *tls.CertificateVerificationError
	if err := handshake(server, x509.NewCertPool(), "example.test"); !errors.As(err, &unknown) {
		t.Errorf("with no roots: %v, want a verification error", err)
	}
}

func TestSelfSignedFiles(t *testing.T) {
	t.Parallel()
	c, err := testcert.SelfSigned("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	if err := c.WriteFiles(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(c.Leaf)
	if err := handshake(&tls.Config{Certificates: []tls.Certificate{pair}}, roots, "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	other, err := testcert.SelfSigned("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if other.Leaf.SerialNumber.Cmp(c.Leaf.SerialNumber) == 0 {
		t.Error("two certificates with one serial number")
	}
}
