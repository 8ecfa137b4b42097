package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmpp/jid"
)

// Limits checked by Validate.
const (
	minMaxWait     = time.Second
	maxMaxWait     = time.Hour
	minMaxHold     = 1
	maxMaxHold     = 10
	minInactivity  = time.Second
	minMaxBodySize = 1024
	maxMaxBodySize = 64 << 20
)

// Validate reports whether c can be used by a server. It returns nil, or
// every problem found joined with errors.Join, each naming the key and the
// bad value. Validate reads the upstream_ca_file, if set, to check that it
// holds a certificate.
func (c Config) Validate() error {
	var p problems
	if _, ok := splitHostPort(c.Listen, 0); !ok {
		p.add("listen", "must be host:port with a port 0-65535, got %q", c.Listen)
	}
	if !strings.HasPrefix(c.Path, "/") {
		p.add("path", "must start with \"/\", got %q", c.Path)
	}
	for _, origin := range c.CORSOrigins {
		if err := checkOrigin(origin); err != nil {
			p.add("cors_origins", "%v", err)
		}
	}
	if c.PublicURL != "" {
		if err := checkPublicURL(c.PublicURL); err != nil {
			p.add("public_url", "%v", err)
		}
	}
	for _, proxy := range c.TrustedProxies {
		if err := checkProxy(proxy); err != nil {
			p.add("trusted_proxies", "%v", err)
		}
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		p.add("tls_cert_file", "tls_cert_file and tls_key_file must be set together")
	}
	if c.TLSCertFile != "" && c.TLSKeyFile != "" {
		if _, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile); err != nil {
			p.add("tls_cert_file", "%v", err)
		}
	}
	if c.AdminListen != "" {
		if _, ok := splitHostPort(c.AdminListen, 0); !ok {
			p.add("admin_listen", "must be host:port with a port 0-65535, got %q", c.AdminListen)
		}
	}
	if c.StaticDir != "" {
		if fi, err := os.Stat(c.StaticDir); err != nil {
			p.add("static_dir", "%v", err)
		} else if !fi.IsDir() {
			p.add("static_dir", "%q is not a directory", c.StaticDir)
		}
	}

	plaintext := false
	switch c.UpstreamTLS {
	case "starttls", "required":
	case "plaintext":
		plaintext = true
	default:
		p.add("upstream_tls", "must be starttls, required or plaintext, got %q", c.UpstreamTLS)
	}
	if len(c.Upstreams) == 0 {
		p.add("upstreams", "must name at least one XMPP domain")
	}
	for _, domain := range slices.Sorted(maps.Keys(c.Upstreams)) {
		addr := c.Upstreams[domain]
		if err := checkDomain(domain); err != nil {
			p.add("upstreams", "%v", err)
		}
		switch host, ok := splitHostPort(addr, 1); {
		case addr == "" && plaintext:
			p.add("upstreams", "%s: DNS SRV lookup (empty address) is not allowed with upstream_tls \"plaintext\"", domain)
		case addr == "":
		case !ok || host == "":
			p.add("upstreams", "%s: address must be empty (DNS SRV) or host:port with a port 1-65535, got %q", domain, addr)
		case plaintext && !isLoopback(host):
			p.add("upstreams", "%s: address must be a loopback IP address or localhost with upstream_tls \"plaintext\", got %q", domain, addr)
		}
	}
	if c.UpstreamCAFile != "" {
		if err := checkCAFile(c.UpstreamCAFile); err != nil {
			p.add("upstream_ca_file", "%v", err)
		}
	}
	for _, route := range c.RouteAllow {
		addr, isXMPP := strings.CutPrefix(route, "xmpp:")
		switch host, ok := splitHostPort(addr, 1); {
		case !isXMPP || !ok || host == "":
			p.add("route_allow", "must be xmpp:host:port with a port 1-65535, got %q", route)
		case plaintext && !isLoopback(host):
			p.add("route_allow", "must be on a loopback IP address or localhost with upstream_tls \"plaintext\", got %q", route)
		}
	}
	if c.ConnectTimeout <= 0 {
		p.add("connect_timeout", "must be positive, got %q", c.ConnectTimeout)
	}
	if c.UpstreamWriteTimeout <= 0 {
		p.add("upstream_write_timeout", "must be positive, got %q", c.UpstreamWriteTimeout)
	}

	if c.MaxWait < minMaxWait || c.MaxWait > maxMaxWait {
		p.add("max_wait", "must be between 1s and 1h, got %q", c.MaxWait)
	}
	if c.MaxHold < minMaxHold || c.MaxHold > maxMaxHold {
		p.add("max_hold", "must be between %d and %d, got %d", minMaxHold, maxMaxHold, c.MaxHold)
	}
	if c.Inactivity < minInactivity {
		p.add("inactivity", "must be at least 1s, got %q", c.Inactivity)
	}
	if c.Polling < 0 {
		p.add("polling", "must not be negative, got %q", c.Polling)
	}
	if c.MaxPause < 0 {
		p.add("max_pause", "must not be negative, got %q", c.MaxPause)
	}

	if c.ParkAfter < 0 {
		p.add("park_after", "must not be negative, got %q", c.ParkAfter)
	}

	if c.MaxBodySize < minMaxBodySize || c.MaxBodySize > maxMaxBodySize {
		p.add("max_body_size", "must be between %d and %d (64 MiB), got %d", minMaxBodySize, maxMaxBodySize, c.MaxBodySize)
	}
	if c.MaxElementDepth < 8 || c.MaxElementDepth > 1000 {
		p.add("max_element_depth", "must be between 8 and 1000, got %d", c.MaxElementDepth)
	}
	if c.MaxQueueBytes < c.MaxBodySize {
		p.add("max_queue_bytes", "must be at least max_body_size (%d), got %d", c.MaxBodySize, c.MaxQueueBytes)
	}
	if c.MaxSessions < 0 {
		p.add("max_sessions", "must not be negative (0 means no limit), got %d", c.MaxSessions)
	}
	if c.MaxSessionsPerIP < 0 {
		p.add("max_sessions_per_ip", "must not be negative (0 means no limit), got %d", c.MaxSessionsPerIP)
	}

	if _, ok := parseLevel(c.LogLevel); !ok {
		p.add("log_level", "must be debug, info, warn or error, got %q", c.LogLevel)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		p.add("log_format", "must be text or json, got %q", c.LogFormat)
	}
	if c.ShutdownTimeout <= 0 {
		p.add("shutdown_timeout", "must be positive, got %q", c.ShutdownTimeout)
	}
	return errors.Join(p...)
}

// SlogLevel returns the slog level named by c.LogLevel, or slog.LevelInfo if
// it names none.
func (c Config) SlogLevel() slog.Level {
	l, _ := parseLevel(c.LogLevel)
	return l
}

// parseLevel returns the slog level named by a log_level value, and whether
// there is one. It returns slog.LevelInfo if there is none.
func parseLevel(s string) (slog.Level, bool) {
	switch s {
	case "debug":
		return slog.LevelDebug, true
	case "info":
		return slog.LevelInfo, true
	case "warn":
		return slog.LevelWarn, true
	case "error":
		return slog.LevelError, true
	}
	return slog.LevelInfo, false
}

// problems collects the errors found by Validate.
type problems []error

// add records a problem with key, described by format and args.
func (p *problems) add(key, format string, args ...any) {
	*p = append(*p, fmt.Errorf("config: %s: %s", key, fmt.Sprintf(format, args...)))
}

// splitHostPort splits addr into host and port, and reports whether it is
// host:port with a decimal port between minPort and 65535. The host may be
// empty.
func splitHostPort(addr string, minPort int) (host string, ok bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" || strings.TrimLeft(port, "0123456789") != "" {
		return "", false
	}
	n, err := strconv.Atoi(port)
	return host, err == nil && n >= minPort && n <= 65535
}

// isLoopback reports whether host is "localhost" or a loopback IP address.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkDomain checks that domain is a bare XMPP domain in normalised form.
func checkDomain(domain string) error {
	j, err := jid.Parse(domain)
	switch {
	case err != nil:
		return fmt.Errorf("%q is not a valid XMPP domain: %v", domain, err)
	case j.Localpart() != "" || j.Resourcepart() != "":
		return fmt.Errorf("%q is a JID, not an XMPP domain", domain)
	case j.String() != domain:
		return fmt.Errorf("%q is not a normalised XMPP domain (want %q)", domain, j.String())
	}
	return nil
}

// checkOrigin checks that origin is "*" or a web origin as browsers send it
// in the Origin header: scheme://host[:port], with no user, path, query or
// fragment.
func checkOrigin(origin string) error {
	if origin == "*" {
		return nil
	}
	const want = `must be "*" or scheme://host[:port] with no path`
	u, err := url.Parse(origin)
	if err != nil || u.Scheme == "" || u.Opaque != "" || u.Hostname() == "" {
		return fmt.Errorf("%s, got %q", want, origin)
	}
	if u.User != nil || u.Path != "" || u.RawPath != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(origin, "#") {
		return fmt.Errorf("%s (not even \"/\"), got %q", want, origin)
	}
	if strings.Contains(u.Host, "*") {
		return fmt.Errorf("wildcards are not supported except \"*\" alone, got %q", origin)
	}
	if n, err := strconv.Atoi(u.Port()); strings.HasSuffix(u.Host, ":") || u.Port() != "" && (err != nil || n < 1 || n > 65535) {
		return fmt.Errorf("%s and a port 1-65535, got %q", want, origin)
	}
	return nil
}

// checkPublicURL checks that u is an absolute http or https URL with a
// host, and no user, query or fragment.
func checkPublicURL(u string) error {
	const want = "must be an absolute http:// or https:// URL such as https://chat.example.org/http-bind"
	parsed, err := url.Parse(u)
	if err != nil || (parsed.Scheme != "http" && parsed.Scheme != "https") || parsed.Opaque != "" || parsed.Hostname() == "" {
		return fmt.Errorf("%s, got %q", want, u)
	}
	if parsed.User != nil || parsed.RawQuery != "" || parsed.ForceQuery || parsed.Fragment != "" || strings.Contains(u, "#") {
		return fmt.Errorf("%s, with no user, query or fragment, got %q", want, u)
	}
	return nil
}

// checkProxy checks that proxy is an IP address or a CIDR prefix.
func checkProxy(proxy string) error {
	if _, err := netip.ParseAddr(proxy); err == nil {
		return nil
	}
	if _, err := netip.ParsePrefix(proxy); err == nil {
		return nil
	}
	return fmt.Errorf("must be an IP address or a CIDR prefix such as 10.0.0.0/8, got %q", proxy)
}

// checkCAFile checks that the file name holds at least one PEM certificate.
func checkCAFile(name string) error {
	pem, err := os.ReadFile(name)
	if err != nil {
		return err
	}
	if !x509.NewCertPool().AppendCertsFromPEM(pem) {
		return fmt.Errorf("%q holds no PEM certificate", name)
	}
	return nil
}
