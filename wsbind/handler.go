package wsbind

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/boshd/boshd/config"
	"github.com/boshd/boshd/gateway"
	"github.com/boshd/boshd/internal/netpoll"
	"github.com/boshd/boshd/metrics"
)

// Reasons an upgrade is refused by admission (see refusedAdmission).
const (
	refusedLimit    = "limit"
	refusedShutdown = "shutdown"
	refusedDraining = "draining"
)

// Handler serves XMPP over WebSocket (RFC 7395): each upgrade request it
// accepts becomes a session relaying between the client's WebSocket and
// an upstream XMPP client stream dialled through its Gateway, which it
// shares with BOSH (the limits, the upstreams, the poller, the metrics).
// Mount it at the configuration's websocket_path; it answers any path it
// is given. Create one with NewHandler.
type Handler struct {
	g       *gateway.Gateway
	cfg     config.Config // immutable: g's
	log     *slog.Logger
	metrics *metrics.Metrics
	poller  *netpoll.Poller // nil: client sockets are not parked
	pings   *pinger         // nil: no pings
	// ctx is cancelled by Shutdown: it bounds dialling.
	ctx    context.Context
	cancel context.CancelFunc

	// mu guards sessions and stopping. A leaf: never held while calling
	// into a session.
	mu       sync.Mutex
	sessions map[*session]struct{}
	stopping bool
	// gone is signalled (without blocking) each time a session leaves
	// sessions, for Shutdown.
	gone chan struct{}

	// conns counts the client connections of sessions added and not yet
	// closed: a session that has ended may still be waiting for its
	// client's close frame, which Shutdown waits for too.
	conns sync.WaitGroup

	live   atomic.Int64 // sessions upgraded and not yet ended
	parked atomic.Int64 // client connections parked in poller
}

// Stats are a Handler's numbers at one moment.
type Stats struct {
	// Live counts the sessions upgraded and not yet ended.
	Live int64
	// Parked counts the idle client connections waiting with no
	// goroutine in the gateway's poller.
	Parked int64
}

// NewHandler returns a Handler for the sessions of g, configured by g's
// configuration (websocket_max_message_size, websocket_ping_interval,
// park_held, park_after, max_element_depth, connect_timeout,
// upstream_write_timeout), whose WebSocket numbers it adds to g's
// metrics.
func NewHandler(g *gateway.Gateway) *Handler {
	ctx, cancel := context.WithCancel(context.Background())
	h := &Handler{
		g:        g,
		cfg:      g.Config(),
		log:      g.Logger(),
		metrics:  g.Metrics(),
		poller:   g.Poller(),
		ctx:      ctx,
		cancel:   cancel,
		sessions: make(map[*session]struct{}),
		gone:     make(chan struct{}, 1),
	}
	if h.cfg.WebSocketPingInterval > 0 {
		h.pings = newPinger(h.cfg.WebSocketPingInterval)
	}
	g.AddGauges(func() metrics.Gauges {
		return metrics.Gauges{WebSocketLive: h.live.Load(), WebSocketParked: h.parked.Load()}
	})
	return h
}

// Stats returns h's numbers now.
func (h *Handler) Stats() Stats {
	return Stats{Live: h.live.Load(), Parked: h.parked.Load()}
}

// ServeHTTP upgrades r to an XMPP WebSocket session, or refuses it with
// an HTTP error before anything is dialled or counted: a request that is
// not a WebSocket handshake, does not offer the xmpp subprotocol, comes
// from a page whose Origin the gateway does not allow, or is over a
// session limit, or one that arrives while the server is stopping or
// draining.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ip, forwardIgnored := h.g.ClientIP(r)
	var release func()
	u := upgrader{
		checkOrigin: h.g.AllowOrigin,
		timeout:     handshakeTimeout,
		admit: func() error {
			if h.isStopping() {
				return refuse(http.StatusServiceUnavailable, refusedShutdown, "the server is shutting down", nil)
			}
			if h.g.Draining() {
				// docs/design/004-cluster.md, "Drain": a balancer retries it on another node.
				w.Header().Set("Retry-After", "1")
				return refuse(http.StatusServiceUnavailable, refusedDraining, "the server is draining", nil)
			}
			var err error
			release, err = h.g.Acquire(ip)
			if err != nil {
				h.g.LogRefusal(r.Context(), ip, forwardIgnored, err)
				status := http.StatusServiceUnavailable
				var le *gateway.LimitError
				if errors.As(err, &le) && le.Key == "max_sessions_per_ip" {
					status = http.StatusTooManyRequests
				}
				return refuse(status, refusedLimit, err.Error(), err)
			}
			return nil
		},
	}
	conn, buffered, err := u.upgrade(w, r)
	if err != nil {
		var ue *upgradeError
		if errors.As(err, &ue) {
			h.metrics.WebSocketUpgradeRefused(ue.reason)
			h.log.Info("websocket upgrade refused", "ip", ip, "status", ue.status, "reason", ue.reason, "err", ue.msg)
		} else {
			h.log.Info("websocket upgrade failed", "ip", ip, "err", err)
		}
		if release != nil {
			release()
		}
		return
	}
	s := newSession(h, conn, buffered, ip, r.TLS != nil, release)
	if !h.add(s) {
		// Shutdown began between admission and now.
		s.w.writeClose(closeServiceRestart, "the server is shutting down")
		conn.Close()
		release()
		return
	}
	h.metrics.WebSocketSessionCreated()
	s.logger().Info("websocket session", "ip", ip, "peer", r.RemoteAddr, "tls", r.TLS != nil)
	// This goroutine, net/http's, reads the client until it parks.
	s.readClient()
}

// handshakeTimeout bounds writing the 101 response.
const handshakeTimeout = 10 * time.Second

// isStopping reports whether Shutdown has begun.
func (h *Handler) isStopping() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stopping
}

// add registers s, unless h is stopping.
func (h *Handler) add(s *session) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopping {
		return false
	}
	h.sessions[s] = struct{}{}
	h.live.Add(1)
	h.conns.Add(1)
	if h.pings != nil {
		h.pings.add(s)
	}
	return true
}

// remove forgets s, once it has ended.
func (h *Handler) remove(s *session) {
	h.mu.Lock()
	_, ok := h.sessions[s]
	delete(h.sessions, s)
	h.mu.Unlock()
	if !ok {
		return
	}
	h.live.Add(-1)
	if h.pings != nil {
		h.pings.remove(s)
	}
	select {
	case h.gone <- struct{}{}:
	default:
	}
}

// Shutdown stops h gracefully (design 003, "Shutdown and dropped
// connections"): new upgrades are refused with 503, and every session is
// ended with close code 1012 (service restart). A session whose client
// enabled resumable stream management has its upstream dropped, without
// </stream:stream>, so that the client resumes it on another boshd; any
// other gets <system-shutdown/> and <close/> first, and its upstream is
// closed cleanly. Shutdown waits until every session is over and every
// client connection closed (a client's answer to the close frame is
// awaited for at most 2 s), or until ctx is done; then it cuts what is
// left and returns ctx's error. It marks the gateway as stopping too.
func (h *Handler) Shutdown(ctx context.Context) error {
	h.g.Stop()
	h.mu.Lock()
	h.stopping = true
	list := make([]*session, 0, len(h.sessions))
	for s := range h.sessions {
		list = append(list, s)
	}
	h.mu.Unlock()
	h.cancel()
	if h.pings != nil {
		h.pings.stop()
	}
	for _, s := range list {
		go s.end(endShutdown, nil)
	}
	closed := make(chan struct{})
	go func() {
		h.conns.Wait()
		close(closed)
	}()
	for {
		if h.live.Load() == 0 {
			select {
			case <-closed:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		select {
		case <-h.gone:
		case <-ctx.Done():
			h.mu.Lock()
			list = list[:0]
			for s := range h.sessions {
				list = append(list, s)
			}
			h.mu.Unlock()
			for _, s := range list {
				s.cut()
			}
			return ctx.Err()
		}
	}
}

// EndUnserved ends, with the stream error host-gone, the sessions whose
// domain the gateway no longer serves, and returns how many. Call it once
// the gateway's configuration has been reloaded (gateway.Gateway.Reload,
// or bosh.Handler.Reload, which reloads the gateway the two handlers
// share), as BOSH ends its own sessions for those domains.
func (h *Handler) EndUnserved() int {
	h.mu.Lock()
	var gone []*session
	for s := range h.sessions {
		if d := s.streamDomain(); d != "" && !h.g.Serves(d) {
			gone = append(gone, s)
		}
	}
	h.mu.Unlock()
	for _, s := range gone {
		go s.endWith(endHostGone, "host-gone", "the domain is no longer served here", nil)
	}
	return len(gone)
}
