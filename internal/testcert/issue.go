package testcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"time"
)

// This file makes keys and certificates.

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

// SelfSigned returns a self-signed server certificate for hosts, as
// Issue does.
func SelfSigned(hosts ...string) (*Cert, error) {
	return create(serverTemplate(hosts), nil)
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
