package gateway

import (
	"fmt"
	"net"
	"strings"

	"mellium.im/xmpp/jid"

	"github.com/boshd/boshd/xmpp"
)

// Conditions of a TargetError, named as the stream error conditions of
// RFC 6120 §4.9.3 and the terminal binding conditions of XEP-0124 §17.2.
const (
	// ImproperAddressing: the client named no domain.
	ImproperAddressing = "improper-addressing"
	// HostUnknown: the domain is not served, or the route not allowed.
	HostUnknown = "host-unknown"
)

// maxErrorLen bounds the message of a TargetError, which quotes client
// input and goes to the logs.
const maxErrorLen = 200

// A TargetError is why Target refused a stream.
type TargetError struct {
	// Condition is ImproperAddressing or HostUnknown.
	Condition string
	// Msg says what was wrong, quoting the client's value (bounded).
	Msg string
}

func (e *TargetError) Error() string { return e.Condition + ": " + e.Msg }

func targetError(cond, format string, args ...any) *TargetError {
	msg := fmt.Sprintf(format, args...)
	if len(msg) > maxErrorLen {
		msg = strings.ToValidUTF8(msg[:maxErrorLen], "") + "…"
	}
	return &TargetError{Condition: cond, Msg: msg}
}

// Target works out where the stream a client asks for goes: the served
// domain in to, at its configured address or, when route is not empty,
// at that route if route_allow lists it (XEP-0124 §7.1), so that clients
// cannot make boshd dial where they like. It dials nothing. The error is
// a *TargetError.
func (g *Gateway) Target(to, route string) (xmpp.Target, error) {
	// XEP-0124 §17.2: only served domains, never dialled otherwise.
	if strings.TrimSpace(to) == "" {
		return xmpp.Target{}, &TargetError{Condition: ImproperAddressing, Msg: "missing to"}
	}
	j, err := jid.Parse(to)
	if err != nil || j.Localpart() != "" || j.Resourcepart() != "" {
		return xmpp.Target{}, targetError(HostUnknown, "to %q is not a domain", to)
	}
	domain := j.Domainpart()
	dyn := g.dyn.Load()
	addr, served := dyn.upstreams[domain]
	if !served {
		return xmpp.Target{}, targetError(HostUnknown, "domain %q is not served", domain)
	}
	if route != "" {
		// XEP-0124 §7.1: route is split on colons, and honoured only
		// when listed.
		routeAddr, ok := dyn.routes[route]
		if !ok {
			return xmpp.Target{}, targetError(HostUnknown, "route %q is not allowed", route)
		}
		addr = routeAddr
	}
	return xmpp.Target{Domain: domain, Addr: addr}, nil
}

// routeAddr returns the host:port of a route value xmpp:host:port.
func routeAddr(route string) (string, error) {
	rest, ok := strings.CutPrefix(route, "xmpp:")
	if !ok {
		return "", fmt.Errorf("route %q does not start with xmpp:", route)
	}
	host, port, err := net.SplitHostPort(rest)
	if err != nil {
		return "", fmt.Errorf("route %q: %v", route, err)
	}
	return net.JoinHostPort(host, port), nil
}
