// Package testcert makes certificates for tests: a certificate authority,
// server certificates it issues for host names and IP addresses, and
// self-signed ones, as tls values, as PEM, or written to files.
//
// Keys are ECDSA P-256 and certificates are valid from an hour ago for a
// day: for tests only.
package testcert
