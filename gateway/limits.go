package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
)

// sessionLimits counts the sessions held, in all and per client IP, against
// max_sessions and max_sessions_per_ip (docs/CONFORMANCE.md#limits): those
// of every binding, in one count. A slot is taken before the upstream is
// dialled and given back when the session ends, whatever ended it.
type sessionLimits struct {
	// mu guards the fields below; it is a leaf, held only to count.
	mu            sync.Mutex
	max, maxPerIP int            // 0: no limit; changed by set
	total         int            // sessions counted in all
	perIP         map[string]int // sessions per client IP; only IPs with sessions
}

func newSessionLimits(max, maxPerIP int) *sessionLimits {
	return &sessionLimits{max: max, maxPerIP: maxPerIP, perIP: make(map[string]int)}
}

// A LimitError is the error of Acquire: the limit a new session would
// exceed, named by its configuration key.
type LimitError struct {
	// Key is "max_sessions" or "max_sessions_per_ip".
	Key string
	// Limit is the setting's value.
	Limit int
}

func (e *LimitError) Error() string { return fmt.Sprintf("%s (%d) reached", e.Key, e.Limit) }

// set changes the limits. Sessions already over a lowered limit stay.
func (l *sessionLimits) set(max, maxPerIP int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.max, l.maxPerIP = max, maxPerIP
}

// acquire takes a slot for a session of ip. It returns the function that
// gives the slot back, which may be called any number of times, or a
// *LimitError naming the limit reached.
func (l *sessionLimits) acquire(ip string) (release func(), err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.max > 0 && l.total >= l.max {
		return nil, &LimitError{Key: "max_sessions", Limit: l.max}
	}
	if l.maxPerIP > 0 && l.perIP[ip] >= l.maxPerIP {
		return nil, &LimitError{Key: "max_sessions_per_ip", Limit: l.maxPerIP}
	}
	l.total++
	l.perIP[ip]++
	var once sync.Once
	return func() { once.Do(func() { l.release(ip) }) }, nil
}

// adopt takes a slot for ip whatever the limits.
func (l *sessionLimits) adopt(ip string) (release func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total++
	l.perIP[ip]++
	var once sync.Once
	return func() { once.Do(func() { l.release(ip) }) }
}

func (l *sessionLimits) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.perIP[ip]--; l.perIP[ip] <= 0 {
		delete(l.perIP, ip)
	}
}

// counts returns the sessions counted, in all and for ip.
func (l *sessionLimits) counts(ip string) (total, forIP int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total, l.perIP[ip]
}

// proxyList is the parsed trusted_proxies setting: the reverse proxies
// whose X-Forwarded-For header is believed. Nil trusts no proxy.
type proxyList []netip.Prefix

// parseProxies parses trusted_proxies: IP addresses and CIDR prefixes.
func parseProxies(list []string) (proxyList, error) {
	var p proxyList
	for _, s := range list {
		prefix, err := netip.ParsePrefix(s)
		if err != nil {
			addr, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("%q is not an IP address or a CIDR prefix", s)
			}
			prefix = netip.PrefixFrom(addr, addr.BitLen())
		}
		// One spelling per address: an IPv4-mapped IPv6 prefix is the
		// IPv4 prefix it maps, as clientIP unmaps addresses too.
		if a := prefix.Addr(); a.Is4In6() && prefix.Bits() >= 96 {
			prefix = netip.PrefixFrom(a.Unmap(), prefix.Bits()-96)
		}
		p = append(p, prefix.Masked())
	}
	return p, nil
}

// String returns the prefixes, comma-separated, or "none".
func (p proxyList) String() string {
	if len(p) == 0 {
		return "none"
	}
	s := make([]string, len(p))
	for i, prefix := range p {
		s[i] = prefix.String()
	}
	return strings.Join(s, ",")
}

// trusts reports whether a is the address of a trusted proxy.
func (p proxyList) trusts(a netip.Addr) bool {
	for _, prefix := range p {
		if prefix.Contains(a) {
			return true
		}
	}
	return false
}

// clientIP returns the IP address a request comes from, as counted by
// max_sessions_per_ip and logged. It is the host of r.RemoteAddr, unless
// that is a trusted proxy: then the X-Forwarded-For header (all of them, in
// order) is read from the right, each hop a trusted proxy vouching for the
// one before it, and the first address that is not a trusted proxy is the
// client. Addresses to its left were written by the client or by proxies
// nobody vouches for, and are ignored. If every address is trusted, the
// left-most is the client; an entry that is not an IP address stops the
// walk at the trusted proxy that wrote it.
//
// forwardIgnored reports that r has an X-Forwarded-For header from a peer
// whose IP address is not a trusted proxy's: the header was ignored and
// the peer is the client.
func clientIP(r *http.Request, proxies proxyList) (ip string, forwardIgnored bool) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return host, false
	}
	client := peer.Unmap()
	if !proxies.trusts(client) {
		return client.String(), len(r.Header.Values("X-Forwarded-For")) > 0
	}
	hops := forwardedFor(r.Header)
	for i := len(hops) - 1; i >= 0; i-- {
		addr, ok := parseHop(hops[i])
		if !ok {
			break
		}
		client = addr
		if !proxies.trusts(addr) {
			break
		}
	}
	return client.String(), false
}

// Acquire takes a slot for a session of the client at ip, as ClientIP
// returns it, against max_sessions and max_sessions_per_ip
// (docs/CONFORMANCE.md#limits). A binding takes it before dialling the
// upstream, so that a client over its limit never reaches it, and gives
// it back by calling release when the session ends, whatever ended it, or
// at once if none is made; release may be called any number of times. err
// is a *LimitError naming the limit reached.
func (g *Gateway) Acquire(ip string) (release func(), err error) {
	return g.limits.acquire(ip)
}

// Adopt takes a slot for a session of the client at ip that the old
// process of a live upgrade handed over, whatever the limits: the session
// exists already, and counts against them from now on. release is as
// Acquire's.
func (g *Gateway) Adopt(ip string) (release func()) {
	return g.limits.adopt(ip)
}

// Sessions returns the sessions counted against the limits, in all and
// for the client at ip.
func (g *Gateway) Sessions(ip string) (total, forIP int) {
	return g.limits.counts(ip)
}

// Trusts reports whether a is the address of a proxy listed in the
// trusted_proxies in force.
func (g *Gateway) Trusts(a netip.Addr) bool {
	return g.dyn.Load().proxies.trusts(a)
}

// ClientIP returns the IP address r comes from under the trusted_proxies
// in force, as counted by max_sessions_per_ip and logged: see clientIP.
// The first time it finds an X-Forwarded-For header ignored, it logs a
// warning naming the peer: behind a reverse proxy missing from
// trusted_proxies, every client has the proxy's address, and
// max_sessions_per_ip caps the whole server. Once per Gateway is enough
// to point at the setting, and costs no state per address.
//
// forwardIgnored reports that r has an X-Forwarded-For header from a peer
// whose IP address is not a trusted proxy's: the header was ignored and
// the peer is the client.
func (g *Gateway) ClientIP(r *http.Request) (ip string, forwardIgnored bool) {
	// One read of the dynamic configuration: the warning names the
	// trusted_proxies the address was resolved under, not a list
	// reloaded in between.
	proxies := g.dyn.Load().proxies
	ip, forwardIgnored = clientIP(r, proxies)
	if forwardIgnored && g.forwardWarned.CompareAndSwap(false, true) {
		g.log.WarnContext(r.Context(), "X-Forwarded-For ignored: its sender is not in trusted_proxies, so every client it forwards counts as the sender against max_sessions_per_ip; if the sender is your reverse proxy, add its address to trusted_proxies (logged once)",
			"peer", ip, "trusted_proxies", proxies.String())
	}
	return ip, forwardIgnored
}

// LogRefusal logs a session of ip refused with err, the *LimitError of
// Acquire, naming the address, the setting and its value: at warn for
// max_sessions, which concerns the operator, at info for
// max_sessions_per_ip, which usually concerns one client, unless the
// address may be a proxy's (forwardIgnored, as ClientIP returned it).
func (g *Gateway) LogRefusal(ctx context.Context, ip string, forwardIgnored bool, err error) {
	level, attrs := slog.LevelInfo, []any{"ip", ip}
	var le *LimitError
	if errors.As(err, &le) {
		attrs = append(attrs, "limit", le.Limit)
		if le.Key == "max_sessions" {
			level = slog.LevelWarn
		}
	}
	if forwardIgnored && level == slog.LevelInfo {
		attrs = append(attrs, "hint", "X-Forwarded-For was ignored: if "+ip+" is your reverse proxy, add it to trusted_proxies")
	}
	g.log.Log(ctx, level, "session refused: "+err.Error(), attrs...)
}

// forwardedFor returns the addresses listed in the X-Forwarded-For headers
// of h, left to right.
func forwardedFor(h http.Header) []string {
	var hops []string
	for _, v := range h.Values("X-Forwarded-For") {
		for hop := range strings.SplitSeq(v, ",") {
			hops = append(hops, strings.TrimSpace(hop))
		}
	}
	return hops
}

// parseHop parses one X-Forwarded-For entry: an IP address, possibly with
// a port ("192.0.2.1:4711", "[2001:db8::1]:4711") as some proxies write.
func parseHop(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")); err == nil {
		return a.Unmap(), true
	}
	return netip.Addr{}, false
}
