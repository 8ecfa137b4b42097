package gateway

import (
	"net"
	"net/http"
	"net/url"
	"strings"
)

// CORS is the cors_origins setting in force (docs/CONFORMANCE.md#cors):
// which origins may call boshd from a browser. A value is never modified.
type CORS struct {
	any     bool            // "*" listed: any origin, without credentials
	origins map[string]bool // exactly listed origins, lower case
}

func newCORS(list []string) CORS {
	c := CORS{origins: make(map[string]bool)}
	for _, o := range list {
		if o == "*" {
			c.any = true
		} else {
			c.origins[strings.ToLower(o)] = true
		}
	}
	return c
}

// CORS returns the cors_origins in force.
func (g *Gateway) CORS() *CORS { return &g.dyn.Load().cors }

// Enabled reports whether any origin is allowed: cors_origins is not
// empty.
func (c *CORS) Enabled() bool { return c.any || len(c.origins) > 0 }

// Any reports whether cors_origins has "*": any origin, without
// credentials.
func (c *CORS) Any() bool { return c.any }

// Lists reports whether cors_origins lists origin itself (ignoring case).
func (c *CORS) Lists(origin string) bool { return c.origins[strings.ToLower(origin)] }

// AllowOrigin reports whether a WebSocket upgrade r may proceed from its
// Origin (RFC 6455 §10.2): one that has none, not being a browser's, or
// one listed in cors_origins ("*": any), the origin of public_url or of
// public_websocket_url (ws taken as http, wss as https), or one whose
// host and port are those of r's Host. The scheme is ignored in the last
// case, which holds behind a proxy that terminates TLS.
func (g *Gateway) AllowOrigin(r *http.Request) bool {
	origins := r.Header.Values("Origin")
	if len(origins) == 0 {
		return true
	}
	if len(origins) > 1 {
		return false
	}
	origin := origins[0]
	if c := g.CORS(); c.Any() || c.Lists(origin) {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Scheme == "" || u.Host == "" || u.Path != "" || u.User != nil {
		return false // "null", or not scheme://host[:port]
	}
	if isOriginOf(u, g.cfg.PublicURL) || isOriginOf(u, g.cfg.PublicWebSocketURL) {
		return true
	}
	return r.Host != "" && strings.EqualFold(hostPort(u.Scheme, u.Host), hostPort(u.Scheme, r.Host))
}

// isOriginOf reports whether origin is the origin of the absolute URL
// public (RFC 6454 §4): the same scheme, host and port, ws and wss taken
// as http and https, whose pages are served on the same ports. An empty
// or unparsable public has no origin.
func isOriginOf(origin *url.URL, public string) bool {
	if public == "" {
		return false
	}
	p, err := url.Parse(public)
	if err != nil || p.Host == "" {
		return false
	}
	scheme := strings.ToLower(p.Scheme)
	switch scheme {
	case "ws":
		scheme = "http"
	case "wss":
		scheme = "https"
	}
	return strings.EqualFold(origin.Scheme, scheme) &&
		strings.EqualFold(hostPort(origin.Scheme, origin.Host), hostPort(scheme, p.Host))
}

// hostPort returns host, a host[:port], without its port if that is the
// default one of scheme, so that http://example.org:80 and
// http://example.org compare equal.
func hostPort(scheme, host string) string {
	h, port, err := net.SplitHostPort(host)
	if err != nil {
		return host
	}
	switch strings.ToLower(scheme) + ":" + port {
	case "http:80", "https:443", "ws:80", "wss:443":
		if strings.Contains(h, ":") {
			return "[" + h + "]"
		}
		return h
	}
	return host
}
