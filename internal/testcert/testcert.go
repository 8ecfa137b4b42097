package testcert

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"testing"
)

// CA is a certificate authority that issues server certificates.
type CA struct {
	// Cert is the CA's own certificate.
	Cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// Cert is a certificate with its private key.
type Cert struct {
	// Leaf is the parsed certificate.
	Leaf *x509.Certificate
	key  *ecdsa.PrivateKey
}

// Pool returns a pool holding ca's certificate alone, for a client's
// RootCAs.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// PEM returns ca's certificate in PEM.
func (ca *CA) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// TLS returns c as a tls.Certificate.
func (c *Cert) TLS() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{c.Leaf.Raw}, PrivateKey: c.key, Leaf: c.Leaf}
}

// ServerConfig returns a tls.Config that serves c.
func (c *Cert) ServerConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{c.TLS()}}
}

// CertPEM returns the certificate in PEM.
func (c *Cert) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Leaf.Raw})
}

// KeyPEM returns the private key in PEM, as PKCS #8.
func (c *Cert) KeyPEM() []byte {
	der, err := x509.MarshalPKCS8PrivateKey(c.key)
	if err != nil {
		panic(err) // an ECDSA key always marshals
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// WriteFiles writes the certificate and the key as PEM to certFile and
// keyFile, readable by their owner only.
func (c *Cert) WriteFiles(certFile, keyFile string) error {
	if err := os.WriteFile(certFile, c.CertPEM(), 0o600); err != nil {
		return err
	}
	return os.WriteFile(keyFile, c.KeyPEM(), 0o600)
}

// Server returns a tls.Config serving a certificate for hosts issued by a
// new CA, and a pool that trusts that CA, failing t on error. It is what
// most tests of a TLS server need.
func Server(t testing.TB, hosts ...string) (server *tls.Config, roots *x509.CertPool) {
	t.Helper()
	ca, err := NewCA("boshd test CA")
	if err != nil {
		t.Fatal(err)
	}
	c, err := ca.Issue(hosts...)
	if err != nil {
		t.Fatal(err)
	}
	return c.ServerConfig(), ca.Pool()
}
