package config

import (
	"bytes"
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
// bad value. Validate reads the upstream_ca_file and the TLS files, if
// set, to check that they hold certificates.
//
// The rule of each key is in its [Setting]; a rule that involves another
// key (max_queue_bytes and max_body_size, say) belongs to one of them.
func (c Config) Validate() error {
	var errs []error
	for _, s := range Settings() {
		if s.check == nil {
			continue
		}
		for _, err := range split(s.check(c)) {
			errs = append(errs, fmt.Errorf("config: %s: %w", s.Key, err))
		}
	}
	return errors.Join(errs...)
}

// split returns the errors joined in err, or err alone, or none if err is
// nil.
func split(err error) []error {
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		return joined.Unwrap()
	}
	if err != nil {
		return []error{err}
	}
	return nil
}

// SlogLevel returns the slog level named by c.LogLevel, or slog.LevelInfo if
// it names none.
func (c Config) SlogLevel() slog.Level {
	switch c.LogLevel {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// number is the type of a numeric setting: a count, a size or a duration.
type number interface{ ~int | ~int64 }

// show formats the value of a numeric setting for an error: a duration
// quoted ("1m30s"), a count or a size as a plain number.
func show[T number](v T) string {
	if d, ok := any(v).(time.Duration); ok {
		return strconv.Quote(d.String())
	}
	return strconv.FormatInt(int64(v), 10)
}

// bound formats a limit of a numeric setting for an error: a duration
// without its zero units (1h, not 1h0m0s), a count or a size as a plain
// number.
func bound[T number](v T) string {
	if d, ok := any(v).(time.Duration); ok {
		s := d.String()
		for _, zero := range []string{"0s", "0m"} {
			if t := strings.TrimSuffix(s, zero); t != s && t != "" && (t[len(t)-1] < '0' || t[len(t)-1] > '9') {
				s = t
			}
		}
		return s
	}
	return strconv.FormatInt(int64(v), 10)
}

// between checks that lo <= v <= hi.
func between[T number](v, lo, hi T) error {
	if v < lo || v > hi {
		return fmt.Errorf("must be between %s and %s, got %s", bound(lo), bound(hi), show(v))
	}
	return nil
}

// atLeast checks that v >= lo.
func atLeast[T number](v, lo T) error {
	if v < lo {
		return fmt.Errorf("must be at least %s, got %s", bound(lo), show(v))
	}
	return nil
}

// positive checks that v > 0.
func positive[T number](v T) error {
	if v <= 0 {
		return fmt.Errorf("must be positive, got %s", show(v))
	}
	return nil
}

// notNegative checks that v >= 0.
func notNegative[T number](v T) error {
	if v < 0 {
		return fmt.Errorf("must not be negative, got %s", show(v))
	}
	return nil
}

// limit checks a limit on a count, where zero means no limit.
func limit(n int) error {
	if n < 0 {
		return fmt.Errorf("must not be negative (0 means no limit), got %d", n)
	}
	return nil
}

// oneOf checks that s is one of the allowed values.
func oneOf(s string, allowed ...string) error {
	if slices.Contains(allowed, s) {
		return nil
	}
	list := strings.Join(allowed[:len(allowed)-1], ", ") + " or " + allowed[len(allowed)-1]
	return fmt.Errorf("must be %s, got %q", list, s)
}

// optional applies check to s unless s is empty, which means "not set".
func optional(s string, check func(string) error) error {
	if s == "" {
		return nil
	}
	return check(s)
}

// each applies check to every item of list and joins the errors.
func each(list []string, check func(string) error) error {
	var errs []error
	for _, item := range list {
		if err := check(item); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// checkHostPort checks a listen address: host:port with a port 0-65535,
// the host possibly empty.
func checkHostPort(addr string) error {
	if _, ok := splitHostPort(addr, 0); !ok {
		return fmt.Errorf("must be host:port with a port 0-65535, got %q", addr)
	}
	return nil
}

// checkPath checks the URL path BOSH is served at.
func checkPath(path string) error {
	if !strings.HasPrefix(path, "/") {
		return fmt.Errorf("must start with \"/\", got %q", path)
	}
	return nil
}

// checkWebSocketPath checks the URL path WebSocket is served at: empty
// (off), or a path that is not BOSH's.
func checkWebSocketPath(c Config) error {
	if c.WebSocketPath == "" {
		return nil
	}
	if err := checkPath(c.WebSocketPath); err != nil {
		return err
	}
	if c.WebSocketPath == c.Path {
		return fmt.Errorf("must differ from path, both %q", c.Path)
	}
	if strings.ContainsAny(c.WebSocketPath, "{} ") || strings.HasPrefix(c.WebSocketPath, "/.well-known/") {
		return fmt.Errorf("must be a plain path outside /.well-known/, got %q", c.WebSocketPath)
	}
	return nil
}

// checkPingInterval checks websocket_ping_interval: 0 (off), or at least
// a second, since pings are scheduled by the second.
func checkPingInterval(d time.Duration) error {
	if d != 0 && d < time.Second {
		return fmt.Errorf("must be 0 or at least 1s, got %v", d)
	}
	return nil
}

// checkDir checks that dir is a directory.
func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%q is not a directory", dir)
	}
	return nil
}

// checkTLSFiles checks that tls_cert_file and tls_key_file are both set,
// to a certificate and its key, or neither.
func checkTLSFiles(c Config) error {
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return errors.New("tls_cert_file and tls_key_file must be set together")
	}
	if c.TLSCertFile != "" {
		_, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
		return err
	}
	return nil
}

// checkUpstreams checks the served domains and their addresses, which
// must be on loopback with upstream_tls "plaintext".
func checkUpstreams(c Config) error {
	if len(c.Upstreams) == 0 {
		return errors.New("must name at least one XMPP domain")
	}
	plaintext := c.UpstreamTLS == "plaintext"
	var errs []error
	for _, domain := range slices.Sorted(maps.Keys(c.Upstreams)) {
		addr := c.Upstreams[domain]
		if err := checkDomain(domain); err != nil {
			errs = append(errs, err)
		}
		switch host, ok := splitHostPort(addr, 1); {
		case addr == "" && plaintext:
			errs = append(errs, fmt.Errorf("%s: DNS SRV lookup (empty address) is not allowed with upstream_tls \"plaintext\"", domain))
		case addr == "":
		case !ok || host == "":
			errs = append(errs, fmt.Errorf("%s: address must be empty (DNS SRV) or host:port with a port 1-65535, got %q", domain, addr))
		case plaintext && !isLoopback(host):
			errs = append(errs, fmt.Errorf("%s: address must be a loopback IP address or localhost with upstream_tls \"plaintext\", got %q", domain, addr))
		}
	}
	return errors.Join(errs...)
}

// checkRoutes checks the allowed routes, which must be on loopback with
// upstream_tls "plaintext".
func checkRoutes(c Config) error {
	var errs []error
	for _, route := range c.RouteAllow {
		addr, isXMPP := strings.CutPrefix(route, "xmpp:")
		switch host, ok := splitHostPort(addr, 1); {
		case !isXMPP || !ok || host == "":
			errs = append(errs, fmt.Errorf("must be xmpp:host:port with a port 1-65535, got %q", route))
		case c.UpstreamTLS == "plaintext" && !isLoopback(host):
			errs = append(errs, fmt.Errorf("must be on a loopback IP address or localhost with upstream_tls \"plaintext\", got %q", route))
		}
	}
	return errors.Join(errs...)
}

// checkQueueBytes checks that a session can queue at least one request
// body's worth of stanzas.
func checkQueueBytes(c Config) error {
	if c.MaxQueueBytes < c.MaxBodySize {
		return fmt.Errorf("must be at least max_body_size (%d), got %d", c.MaxBodySize, c.MaxQueueBytes)
	}
	return nil
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

// checkPublicWebSocketURL checks that u is an absolute ws or wss URL
// with a host, and no user, query or fragment.
func checkPublicWebSocketURL(u string) error {
	const want = "must be an absolute ws:// or wss:// URL such as wss://chat.example.org/xmpp-websocket"
	parsed, err := url.Parse(u)
	if err != nil || (parsed.Scheme != "ws" && parsed.Scheme != "wss") || parsed.Opaque != "" || parsed.Hostname() == "" {
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

// checkPrebind checks the pre-binding settings: a readable token file
// holding a token, a listener to serve it on, and that listener on
// loopback unless prebind_insecure.
func checkPrebind(c Config) error {
	if c.PrebindTokenFile == "" {
		if c.PrebindListen != "" {
			return errors.New("prebind_listen is set but prebind_token_file is not: /prebind is off without a token")
		}
		return nil
	}
	if _, err := ReadToken(c.PrebindTokenFile); err != nil {
		return err
	}
	key, addr := "prebind_listen", c.PrebindListen
	if addr == "" {
		key, addr = "admin_listen", c.AdminListen
	}
	if addr == "" {
		return errors.New("/prebind needs a listener: set admin_listen or prebind_listen")
	}
	if host, ok := splitHostPort(addr, 0); ok && !isLoopback(host) && !c.PrebindInsecure {
		return fmt.Errorf("/prebind would be served over plain HTTP on %s %q, which is not loopback: passwords and the token would cross it; set prebind_insecure if that network is private or TLS is terminated in front", key, addr)
	}
	return nil
}

// ReadToken returns the token in the file name: its content, surrounding
// white space removed. An empty token is an error.
func ReadToken(name string) ([]byte, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	token := bytes.TrimSpace(b)
	if len(token) == 0 {
		return nil, fmt.Errorf("%s holds no token", name)
	}
	return token, nil
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
