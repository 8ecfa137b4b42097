package bosh

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/boshd/boshd/gateway"
	"github.com/boshd/boshd/metrics"
)

// connLimits counts the client connections open through a Listener, per
// IP address, and refuses at accept those over max_conns_per_ip (issue
// 15): a connection holds a file descriptor from accept to close, whatever
// net/http does with it meanwhile, and net/http's header timeout bounds
// how long one lasts but not how many there are, so without a cap one
// address could take every descriptor.
//
// A connection is counted from the moment it is accepted until its socket
// is first closed (countedConn), by whoever closes it: net/http, a parked
// request, the Listener. It is counted before TLS, TLS being served on top
// of the counted socket.
//
// IPv6 addresses are counted one by one, like IPv4 ones: grouping them by
// /64 would bound a host that owns a whole /64, but would also lump
// together every client of a network that shares one (SLAAC behind a
// router, a carrier's customers). The cap is against one address taking
// every descriptor by mistake or malice; the total stays bounded by
// max_sessions, derived from the open file limit.
//
// Connections from the gateway's trusted proxies are counted but never
// refused: a reverse proxy opens one connection per request it forwards
// for all its clients (the README's nginx keeps 256 idle ones per worker
// on top of those), and its clients are bounded by max_sessions_per_ip
// under their own addresses. So are connections from the IP addresses
// of the gateway's peers (docs/design/004-cluster.md): a node forwarding
// requests carries its clients' held requests on connections of its
// own.
type connLimits struct {
	max   int                 // immutable; 0 means no limit
	g     *gateway.Gateway    // immutable; metrics, logger, trusted_proxies; nil: none
	peers map[netip.Addr]bool // immutable; the peers' IP addresses, from g's peers
	// now is time.Now, or a test's clock; immutable.
	now func() time.Time

	mu         sync.Mutex
	perIP      map[netip.Addr]int // guarded by mu; only addresses with connections open
	lastLog    time.Time          // guarded by mu; when a refusal was last logged
	suppressed int                // guarded by mu; refusals not logged since lastLog
	tlsWarned  bool               // guarded by mu; set once warnTLS has logged
}

// refusalLogInterval is the least time between two log lines about
// refused connections: a flood is logged as one line per interval, which
// says how many refusals it stands for.
const refusalLogInterval = 10 * time.Second

func newConnLimits(max int, g *gateway.Gateway, now func() time.Time) *connLimits {
	l := &connLimits{max: max, g: g, now: now, perIP: make(map[netip.Addr]int), peers: make(map[netip.Addr]bool)}
	if g != nil {
		for _, addr := range g.Config().Peers {
			// A peer named by an IP address; one named by a host
			// name goes in trusted_proxies (README).
			if ap, err := netip.ParseAddrPort(addr); err == nil {
				l.peers[ap.Addr().Unmap().WithZone("")] = true
			}
		}
	}
	return l
}

// admit counts c in and returns it wrapped so that closing it counts it
// out; or, if its address has max connections open already, closes c and
// reports false. A connection that is not TCP/IP (a Unix socket, say) is
// returned as it is, uncounted, and so is one already under TLS, which
// cannot be wrapped without hiding its TLS from net/http.
func (l *connLimits) admit(c net.Conn) (net.Conn, bool) {
	if _, isTLS := c.(*tls.Conn); isTLS {
		l.warnTLS()
		return c, true
	}
	ip, ok := ipOf(c.RemoteAddr())
	if !ok {
		return c, true
	}
	capped := l.max > 0 && (l.g == nil || !l.g.Trusts(ip) && !l.peers[ip])
	if !l.take(ip, capped) {
		if l.g != nil {
			l.g.Metrics().ConnRefused(metrics.ConnRefusedPerIP)
		}
		c.Close()
		l.logRefusal(ip)
		return nil, false
	}
	if l.g != nil {
		l.g.Metrics().ConnOpened()
	}
	return &countedConn{Conn: c, limits: l, ip: ip}, true
}

// ipOf returns the IP address of a, unmapped and without zone, so that
// each address is counted under one spelling; false if a has none.
func ipOf(a net.Addr) (netip.Addr, bool) {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Addr{}, false
	}
	ip := ta.AddrPort().Addr().Unmap().WithZone("")
	return ip, ip.IsValid()
}

// take counts a connection of ip in, unless capped and ip has max open.
func (l *connLimits) take(ip netip.Addr, capped bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if capped && l.perIP[ip] >= l.max {
		return false
	}
	l.perIP[ip]++
	return true
}

// release counts a connection of ip out: in the metrics first, so that
// once an address's count is down, so is the gauge.
func (l *connLimits) release(ip netip.Addr) {
	if l.g != nil {
		l.g.Metrics().ConnClosed()
	}
	l.give(ip)
}

// give takes a connection of ip off the count.
func (l *connLimits) give(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perIP[ip]--; l.perIP[ip] <= 0 {
		delete(l.perIP, ip)
	}
}

// open returns the connections of ip counted open.
func (l *connLimits) open(ip netip.Addr) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.perIP[ip]
}

// logRefusal logs a connection of ip refused, unless a refusal was
// logged less than refusalLogInterval ago.
func (l *connLimits) logRefusal(ip netip.Addr) {
	if l.g == nil {
		return
	}
	log, suppressed := l.shouldLog()
	if log {
		l.g.Logger().Warn("connection refused: max_conns_per_ip reached", "ip", ip, "limit", l.max, "suppressed", suppressed,
			"hint", "if "+ip.String()+" is your reverse proxy, add it to trusted_proxies: a trusted proxy's connections are not capped")
	}
}

// shouldLog reports whether a refusal is to be logged now, and how many
// were not since the last one that was.
func (l *connLimits) shouldLog() (log bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if !l.lastLog.IsZero() && now.Sub(l.lastLog) < refusalLogInterval {
		l.suppressed++
		return false, 0
	}
	suppressed, l.suppressed, l.lastLog = l.suppressed, 0, now
	return true, suppressed
}

// warnTLS logs, the first time it is called, that connections arrive
// under TLS already and so go uncounted.
func (l *connLimits) warnTLS() {
	if l.g == nil || !l.setTLSWarned() {
		return
	}
	l.g.Logger().Error("client connections are not counted or capped (max_conns_per_ip): the Listener's inner listener serves TLS; give it a plain TCP listener and the TLS config in ListenerOptions.TLSConfig")
}

// setTLSWarned sets tlsWarned and reports whether it was not set.
func (l *connLimits) setTLSWarned() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	first := !l.tlsWarned
	l.tlsWarned = true
	return first
}

// countedConn is a client connection counted by connLimits until its
// first Close. It lets through what net/http and parking look for on a
// *net.TCPConn: the socket (syscall.Conn), sendfile (io.ReaderFrom) and
// half-close.
type countedConn struct {
	net.Conn
	limits *connLimits // immutable
	ip     netip.Addr  // immutable
	once   sync.Once   // counts the connection out
}

// Close closes the connection and, the first time, counts it out.
func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.limits.release(c.ip) })
	return err
}

// SyscallConn returns the socket's raw connection, for watching it while
// a request is parked.
func (c *countedConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.ErrUnsupported
	}
	return sc.SyscallConn()
}

// ReadFrom copies r to the connection, with sendfile or splice when the
// socket can.
func (c *countedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(c.Conn, r)
}

// CloseWrite shuts down the writing side of the socket, as net/http does
// before closing a connection whose request it did not read whole.
func (c *countedConn) CloseWrite() error {
	cw, ok := c.Conn.(interface{ CloseWrite() error })
	if !ok {
		return errors.ErrUnsupported
	}
	return cw.CloseWrite()
}
