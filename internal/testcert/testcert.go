// Package testcert makes certificates for tests: a certificate authority,
// server certificates it issues for host names and IP addresses, and
// self-signed ones, as tls values, as PEM, or written to files.
//
// Keys are ECDSA P-256 and certificates are valid from an hour ago for a
// day: for tests only.
package testcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
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

// NewCA returns a new CA whose certificate has the common name name.
func NewCA(name string) (*CA, error) {
	tmpl := template(name)
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	c, err := create(tmpl, nil)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: c.Leaf, key: c.key}, nil
}

// Issue returns a server certificate signed by ca for hosts, each a DNS
// name or an IP address. The first host is also its common name.
func (ca *CA) Issue(hosts ...string) (*Cert, error) {
	return create(serverTemplate(hosts), ca)
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

// SelfSigned returns a self-signed server certificate for hosts, as
// Issue does.
func SelfSigned(hosts ...string) (*Cert, error) {
	return create(serverTemplate(hosts), nil)
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

// WriteFiles writes the certificate and the key as PEM to name.crt and
// name.key in dir, readable by their owner only, and returns their paths.
func (c *Cert) WriteFiles(dir, name string) (certFile, keyFile string, err error) {
	certFile = filepath.Join(dir, name+".crt")
	keyFile = filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, c.CertPEM(), 0o600); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(keyFile, c.KeyPEM(), 0o600); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
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

// template returns the fields every certificate here has.
func template(name string) *x509.Certificate {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
	}
}

// serverTemplate returns the template of a server certificate for hosts.
func serverTemplate(hosts []string) *x509.Certificate {
	name := ""
	if len(hosts) > 0 {
		name = hosts[0]
	}
	tmpl := template(name)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return tmpl
}

// create makes a key and the certificate of tmpl for it, signed by ca, or
// by itself if ca is nil.
func create(tmpl *x509.Certificate, ca *CA) (*Cert, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	parent, signer := tmpl, key
	if ca != nil {
		parent, signer = ca.Cert, ca.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &Cert{Leaf: leaf, key: key}, nil
}
