package xmpp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
)

// tlsMode is a parsed Dialer.TLSMode.
type tlsMode uint8

const (
	tlsStartTLS  tlsMode = iota // STARTTLS when offered; none only on loopback
	tlsRequired                 // STARTTLS or fail
	tlsPlaintext                // never STARTTLS; loopback only
)

// parseTLSMode parses a Dialer.TLSMode value.
func parseTLSMode(s string) (tlsMode, error) {
	switch s {
	case "", "starttls":
		return tlsStartTLS, nil
	case "required":
		return tlsRequired, nil
	case "plaintext":
		return tlsPlaintext, nil
	}
	return 0, fmt.Errorf("xmpp: unknown TLS mode %q (want starttls, required or plaintext)", s)
}

// Errors of decideTLS.
var (
	errNoStartTLS = errors.New("STARTTLS required but not offered by the server")
	errPlainAddr  = errors.New("unencrypted stream refused for a non-loopback address")
)

// decideTLS says whether to do STARTTLS, given the mode, whether the server
// offered it and whether the connection goes to a loopback address.
func decideTLS(mode tlsMode, offered, loopback bool) (bool, error) {
	switch {
	case mode == tlsPlaintext && !loopback:
		return false, errPlainAddr
	case mode == tlsPlaintext:
		return false, nil
	case offered:
		return true, nil
	case mode == tlsRequired:
		return false, errNoStartTLS
	case !loopback:
		return false, fmt.Errorf("%w (the server offers no STARTTLS)", errPlainAddr)
	}
	return false, nil
}

// maxTLSConfigs bounds the Configs a Dialer keeps; domains past it get a
// Config of their own per stream.
const maxTLSConfigs = 1000

// tlsConfig returns the client Config for streams to domain: its
// certificate verified for domain against d.RootCAs (nil: the system
// roots). Streams to one domain share it, since a Config is never
// modified once in use.
func (d *Dialer) tlsConfig(domain string) *tls.Config {
	if v, ok := d.tlsConfigs.Load(domain); ok {
		if cfg := v.(*tls.Config); cfg.RootCAs == d.RootCAs {
			return cfg
		}
	}
	cfg := &tls.Config{
		ServerName: domain,
		RootCAs:    d.RootCAs,
		MinVersion: tls.VersionTLS12,
	}
	if d.tlsConfigCount.Load() < maxTLSConfigs {
		if _, loaded := d.tlsConfigs.Swap(domain, cfg); !loaded {
			d.tlsConfigCount.Add(1)
		}
	}
	return cfg
}

// startTLS asks for STARTTLS on the open stream, and on <proceed/> runs the
// TLS handshake over tcp with cfg. The caller then opens a new stream.
func (c *Conn) startTLS(ctx context.Context, cfg *tls.Config, tcp net.Conn) error {
	if err := c.write([]byte("<starttls xmlns='" + nsTLS + "'/>")); err != nil {
		return err
	}
	el, err := c.reader().Next()
	if err != nil {
		return readError("reading STARTTLS answer", err)
	}
	switch {
	case el.NS == nsStream && el.Name.Local == "error":
		return parseStreamError(el.Raw)
	case el.NS == nsTLS && el.Name.Local == "failure":
		return fmt.Errorf("xmpp: %s refused STARTTLS", c.target.Domain)
	case el.NS != nsTLS || el.Name.Local != "proceed":
		return fmt.Errorf("xmpp: expected STARTTLS <proceed/>, got <%s xmlns='%s'>", el.Name.Local, el.NS)
	}
	if c.src.buffered() != 0 {
		return fmt.Errorf("xmpp: %s sent data after <proceed/> before the TLS handshake", c.target.Domain)
	}
	tc := tls.Client(tcp, cfg)
	c.nc = tc
	c.src.setConn(tc)
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("xmpp: TLS handshake with %s: %w", c.target.Domain, err)
	}
	c.secure = true
	return nil
}
