package bosh

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/boshd/boshd/gateway"
	"github.com/boshd/boshd/internal/netpoll"
)

// Listener is a net.Listener for the http.Server that serves a Handler. It
// lets the handler park held requests (docs/design/002): take a
// connection whose request waits from net/http, so that waiting costs no
// goroutine of net/http's and none of its buffers, and give it back once
// the response is written, to be served again as a new connection.
//
// Wrap the server's listener, outside any TLS listener, and set the
// server's ConnContext to the Listener's:
//
//	ln := bosh.NewListener(inner) // inner: net.Listen, or tls.NewListener(...)
//	srv := &http.Server{Handler: h, ConnContext: ln.ConnContext}
//	srv.Serve(ln)
//
// To bound the connections each client address may hold open, make it
// with NewListenerWith, which serves TLS itself so as to count
// connections before TLS:
//
//	ln, err := bosh.NewListenerWith(inner, bosh.ListenerOptions{ // inner: net.Listen
//		TLSConfig: tlsConfig,   // nil for plain HTTP
//		Gateway:   h.Gateway(), // max_conns_per_ip, metrics, logs, trusted_proxies
//	})
//
// A handler served without a Listener holds requests in net/http.
type Listener struct {
	// IdleTimeout is how long a connection given back after a parked
	// request may wait for its next request before it is closed, as
	// http.Server's IdleTimeout does for others; zero means 2 minutes.
	// Set it before serving.
	IdleTimeout time.Duration

	tlsConfig *tls.Config   // immutable; nil: connections served as accepted
	conns     *connLimits   // immutable; nil: connections not counted
	accepted  chan accepted // from the goroutine calling inner.Accept
	back      chan net.Conn // connections given back
	done      chan struct{} // closed by Close
	close     sync.Once
	// stopped is set by StopAccepting: inner is closed, and its
	// accept error is not passed on; Resume clears it.
	stopped atomic.Bool

	// mu guards resting, and is held only to change or take the map:
	// no I/O, no other lock taken under it. rest takes it under a
	// restingConn's mu (that order, never the other). conns has a lock
	// of its own, a leaf: nothing is locked, logged or done on a socket
	// under it; it is taken by closing a connection, never under a
	// restingConn's mu.
	mu      sync.Mutex
	resting map[*restingConn]struct{} // guarded by mu; connections waiting for a request; closed by Close
	// inner is the listening socket, accepted from by one goroutine,
	// which closes acceptDone as it returns. Guarded by mu: Resume
	// replaces both.
	inner      net.Listener
	acceptDone chan struct{}
}

type accepted struct {
	conn net.Conn
	err  error
}

// NewListener returns a Listener accepting connections from inner, which
// it starts doing at once, on a goroutine of its own. It serves them as
// inner returns them, uncounted.
func NewListener(inner net.Listener) *Listener {
	return newListener(inner, ListenerOptions{}, time.Now)
}

// ListenerOptions configure a Listener made by NewListenerWith. The zero
// value makes the Listener NewListener does.
type ListenerOptions struct {
	// TLSConfig, if not nil, has the Listener serve TLS on the
	// connections it accepts, as tls.NewListener would: inner is then a
	// plain TCP listener, so that connections are counted, and refused,
	// before any TLS handshake. Set it up as http.Server.TLSConfig
	// (NextProtos "h2" and "http/1.1" for HTTP/2).
	TLSConfig *tls.Config

	// MaxConnsPerIP bounds the client connections open at once from one
	// IP address for a Listener without a Gateway; 0 means no limit, and
	// it must be 0 when Gateway is set: the cap is then the gateway's
	// max_conns_per_ip (Gateway.Config().MaxConnsPerIP), validated with
	// the rest of its configuration. A connection over the cap is closed
	// as soon as accepted, before anything is read from it or written to
	// it (with TLS, nothing plaintext can be). A connection counts from
	// accept to close, while a parked request waits on it and between
	// requests too. Connections from the Gateway's trusted_proxies are
	// counted but never refused: a reverse proxy carries all its
	// clients' requests. Connections that are not TCP are not counted,
	// nor are any when inner serves TLS itself (use TLSConfig instead):
	// that is logged once.
	MaxConnsPerIP int

	// Gateway is the gateway.Gateway of the bindings served through the
	// Listener, if any: its metrics count the connections open and
	// refused (boshd_connections_open, boshd_connections_refused_total),
	// its logger logs refusals (at most one line per 10 seconds), and its
	// trusted_proxies, as reloaded, are exempt from the cap; and its
	// max_conns_per_ip, as the gateway was created with, is the cap.
	Gateway *gateway.Gateway
}

// NewListenerWith returns a Listener accepting connections from inner as
// opts say, which it starts doing at once, on a goroutine of its own. It
// returns an error, and does not use inner, if opts are not valid.
func NewListenerWith(inner net.Listener, opts ListenerOptions) (*Listener, error) {
	if opts.MaxConnsPerIP < 0 {
		return nil, fmt.Errorf("bosh: max_conns_per_ip must not be negative (0 means no limit), got %d", opts.MaxConnsPerIP)
	}
	if opts.MaxConnsPerIP != 0 && opts.Gateway != nil {
		return nil, fmt.Errorf("bosh: ListenerOptions.MaxConnsPerIP is for a Listener without a Gateway; with one, set max_conns_per_ip in the gateway's configuration")
	}
	return newListener(inner, opts, time.Now), nil
}

// newListener is NewListenerWith with the clock refusals are logged by.
func newListener(inner net.Listener, opts ListenerOptions, now func() time.Time) *Listener {
	l := &Listener{
		tlsConfig:  opts.TLSConfig,
		accepted:   make(chan accepted),
		back:       make(chan net.Conn, backQueue),
		done:       make(chan struct{}),
		resting:    make(map[*restingConn]struct{}),
		inner:      inner,
		acceptDone: make(chan struct{}),
	}
	g, max := opts.Gateway, opts.MaxConnsPerIP
	if g != nil {
		max = g.Config().MaxConnsPerIP
	}
	if max > 0 || g != nil {
		l.conns = newConnLimits(max, g, now)
	}
	go l.acceptInner(inner, l.acceptDone)
	return l
}

// Accept returns the next connection: a new one from the inner listener
// or one given back after a parked request was answered. Errors of the
// inner listener are returned as they are.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.back:
		return c, nil
	case a := <-l.accepted:
		return a.conn, a.err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// acceptInner accepts from inner, one connection (or error) at a time,
// until the Listener is closed or stops accepting; it closes done as it
// returns.
func (l *Listener) acceptInner(inner net.Listener, done chan struct{}) {
	defer close(done)
	for {
		c, err := inner.Accept()
		if err != nil && l.stopped.Load() {
			return
		}
		if err == nil {
			var ok bool
			if c, ok = l.admit(c); !ok {
				continue
			}
		}
		select {
		case l.accepted <- accepted{c, err}:
		case <-l.done:
			if c != nil {
				c.Close()
			}
			return
		}
	}
}

// admit returns c as the server is to get it: counted, and under TLS if
// the Listener serves TLS and c is not under TLS already; or false if c is
// refused, which closed it.
func (l *Listener) admit(c net.Conn) (net.Conn, bool) {
	if l.conns != nil {
		var ok bool
		if c, ok = l.conns.admit(c); !ok {
			return nil, false
		}
	}
	// A connection the inner listener already serves TLS on (inner is a
	// tls.NewListener, and TLSConfig was set too) is served as it is:
	// TLS inside TLS would fail every handshake. If connections are
	// counted, connLimits logged it as not counted.
	if _, isTLS := c.(*tls.Conn); l.tlsConfig != nil && !isTLS {
		c = tls.Server(c, l.tlsConfig)
	}
	return c, true
}

// Close closes the inner listener and the connections resting between
// requests. Connections given back afterwards are closed.
func (l *Listener) Close() error {
	err := net.ErrClosed
	l.close.Do(func() {
		close(l.done)
		l.mu.Lock()
		inner := l.inner
		resting := l.resting
		l.resting = nil
		l.mu.Unlock()
		err = inner.Close()
		for r := range resting {
			r.mu.Lock()
			t := r.t
			r.mu.Unlock()
			if t != nil {
				t.Stop()
			}
			r.c.Close()
		}
		l.drainBack()
	})
	return err
}

// StopAccepting closes the inner listener, as another process takes over
// its socket (a live upgrade, docs/design/005-live-upgrade.md), while the
// Listener goes on serving the connections it has: Accept returns those
// given back after parked requests until Close. A parked request's answer
// says Connection: close from then on, so that each client's next request
// opens a connection to the new process.
func (l *Listener) StopAccepting() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.stopped.CompareAndSwap(false, true) {
		return nil
	}
	return l.inner.Close()
}

// Resume has a Listener that stopped accepting accept again, from inner:
// a copy of the socket StopAccepting left to another process, kept for
// when that process exits first (a live upgrade's new process dying,
// docs/design/005-live-upgrade.md). Answers say Connection: close no
// longer. It waits for the goroutine that accepted from the old socket
// to return, and fails, closing inner, if the Listener is closed or was
// not stopped.
func (l *Listener) Resume(inner net.Listener) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.resting == nil:
		inner.Close()
		return net.ErrClosed
	case !l.stopped.Load():
		inner.Close()
		return errors.New("bosh: Resume of a Listener that is accepting")
	}
	// The old goroutine returns at once: its socket is closed and
	// stopped is set; it takes no lock.
	<-l.acceptDone
	l.inner, l.acceptDone = inner, make(chan struct{})
	l.stopped.Store(false)
	go l.acceptInner(inner, l.acceptDone)
	return nil
}

// Addr returns the inner listener's address.
func (l *Listener) Addr() net.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inner.Addr()
}

// backQueue is how many given-back connections may wait for Accept.
const backQueue = 256

// defaultIdleTimeout is Listener.IdleTimeout when unset.
const defaultIdleTimeout = 2 * time.Minute

// rest gives c back to the server once the client sends its next request
// on it (or closes it), and waits for that with no goroutine, watched by
// poller; c is closed if nothing comes within IdleTimeout. net/http
// starts its ReadHeaderTimeout on a connection it accepts, so handing it
// an idle keep-alive connection at once would close it under a client
// that reuses it later; and an idle connection costs net/http a goroutine
// and a read buffer.
func (l *Listener) rest(c net.Conn, poller *netpoll.Poller) {
	rc := netpoll.RawConnOf(c)
	if rc == nil || poller == nil {
		l.giveBack(c)
		return
	}
	r := &restingConn{l: l, c: c}
	// r.mu is held from before r is in l.resting (where Close finds it)
	// until w and t are set, so that readable and Close see both or
	// neither. It is let go before closing c, which may write a TLS
	// close_notify: no socket I/O under it.
	r.mu.Lock()
	l.mu.Lock()
	closed := l.resting == nil
	if !closed {
		l.resting[r] = struct{}{}
	}
	l.mu.Unlock()
	if closed {
		r.mu.Unlock()
		c.Close()
		return
	}
	w, err := poller.Watch(rc, netpoll.Readable, r.readable)
	if err != nil {
		r.mu.Unlock()
		l.forget(r)
		go l.giveBack(c)
		return
	}
	r.w = w
	timeout := l.IdleTimeout
	if timeout <= 0 {
		timeout = defaultIdleTimeout
	}
	r.t = time.AfterFunc(timeout, r.expire)
	r.mu.Unlock()
}

// takeResting takes the connections resting on plain sockets whose watch
// it could stop, for moving them to the new process of a live upgrade
// (move.go): they are the caller's, to move, rest again or close. Those
// over TLS stay.
func (l *Listener) takeResting() []net.Conn {
	l.mu.Lock()
	var rs []*restingConn
	for r := range l.resting {
		if plainConn(r.c) != nil {
			rs = append(rs, r)
		}
	}
	l.mu.Unlock()
	var taken []net.Conn
	for _, r := range rs {
		r.mu.Lock()
		w, t := r.w, r.t
		r.mu.Unlock()
		if w == nil || !w.Stop() {
			continue // readable, or expired: on its way already
		}
		if t != nil {
			t.Stop()
		}
		l.forget(r)
		taken = append(taken, r.c)
	}
	return taken
}

// Adopt returns c, a connection the old process of a live upgrade handed
// over with a session of another binding (a WebSocket's), counted as the
// connections accepted here are (never refused: it is open already),
// until it is closed.
func (l *Listener) Adopt(c net.Conn) net.Conn { return l.adopt(c) }

// adopt returns c, a connection the old process of a live upgrade handed
// over, counted as the connections accepted here are (never refused: it
// is open already).
func (l *Listener) adopt(c net.Conn) net.Conn {
	if l.conns == nil {
		return c
	}
	ip, ok := ipOf(c.RemoteAddr())
	if !ok {
		return c
	}
	l.conns.take(ip, false)
	if l.conns.g != nil {
		l.conns.g.Metrics().ConnOpened()
	}
	return &countedConn{Conn: c, limits: l.conns, ip: ip}
}

// restingConn is a connection waiting for its client's next request.
type restingConn struct {
	l *Listener
	c net.Conn
	// mu guards w and t, set once rest has both. rest holds it across
	// poller.Watch (netpoll.Poller's mu, then an epoll_ctl system call,
	// which does not block) and takes Listener.mu under it; nothing
	// else is locked under it, and no socket is read, written or closed
	// under it.
	mu sync.Mutex
	w  *netpoll.Watch
	t  *time.Timer
}

// readable runs on the poller's goroutine: the client sent something, or
// closed the connection; net/http finds out which.
func (r *restingConn) readable() {
	r.mu.Lock()
	t := r.t
	r.mu.Unlock()
	if t != nil {
		t.Stop()
	}
	r.l.forget(r)
	// On the poller's goroutine: queue the connection for Accept
	// directly, without a goroutine for the hand-over, unless the
	// queue is full.
	if !r.l.offer(r.c) {
		go r.l.giveBack(r.c)
	}
}

// expire closes a connection idle for IdleTimeout.
func (r *restingConn) expire() {
	r.mu.Lock()
	w := r.w
	r.mu.Unlock()
	if w.Stop() {
		r.l.forget(r)
		r.c.Close()
	}
}

// forget takes r off the resting connections.
func (l *Listener) forget(r *restingConn) {
	l.mu.Lock()
	delete(l.resting, r)
	l.mu.Unlock()
}

// giveBack returns c to the server, or closes it if the Listener is
// closed. It waits for the server to accept c only when the queue of
// given-back connections is full.
func (l *Listener) giveBack(c net.Conn) {
	if l.offer(c) {
		return
	}
	select {
	case l.back <- c:
		l.given()
	case <-l.done:
		c.Close()
	}
}

// offer queues c for Accept if there is room, without waiting.
func (l *Listener) offer(c net.Conn) bool {
	select {
	case l.back <- c:
		l.given()
		return true
	default:
		return false
	}
}

// given follows queueing a connection: Close may have drained the queue
// just before.
func (l *Listener) given() {
	if l.closed() {
		l.drainBack()
	}
}

// drainBack closes the connections given back that Accept did not take.
func (l *Listener) drainBack() {
	for {
		select {
		case c := <-l.back:
			c.Close()
		default:
			return
		}
	}
}

// closed reports whether Close has been called.
func (l *Listener) closed() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// ConnContext is for http.Server.ConnContext: it records in the
// connection's context that c came from l, so the handler may park
// requests that arrive on it.
func (l *Listener) ConnContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, &connOrigin{ln: l, conn: c})
}

type connKey struct{}

// connOrigin is a connection served through a Listener.
type connOrigin struct {
	ln   *Listener
	conn net.Conn
}

// originOf returns where the connection of r came from, nil if not from a
// Listener.
func originOf(ctx context.Context) *connOrigin {
	o, _ := ctx.Value(connKey{}).(*connOrigin)
	return o
}
