package gateway

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/boshd/boshd/config"
	"github.com/boshd/boshd/internal/netpoll"
	"github.com/boshd/boshd/metrics"
	"github.com/boshd/boshd/xmpp"
)

// Gateway is what the bindings of one server share. Create one with New;
// it is safe for concurrent use.
type Gateway struct {
	// cfg is the configuration the gateway was created with; the parts
	// Reload may change are read from dyn instead.
	cfg     config.Config    // immutable
	log     *slog.Logger     // immutable
	dialer  *xmpp.Dialer     // immutable
	limits  *sessionLimits   // max_sessions, max_sessions_per_ip
	metrics *metrics.Metrics // immutable
	dyn     atomic.Pointer[dynamic]

	stopping atomic.Bool
	// draining is set by Drain and cleared by Undrain (drain.go).
	draining atomic.Bool
	// forwardWarned is set by the first ClientIP that finds an
	// X-Forwarded-For header ignored, which it logs.
	forwardWarned atomic.Bool

	// poller parks idle sockets (docs/design/002); nil when parking is
	// off or unavailable. upstreamsParked counts the upstream streams it
	// watches.
	poller          *netpoll.Poller // immutable
	upstreamsParked atomic.Int64

	// gaugesMu guards gauges, the functions the bindings added with
	// AddGauges; it is a leaf, never held while calling them.
	gaugesMu sync.Mutex
	gauges   []func() metrics.Gauges
}

// New returns a Gateway configured by cfg, which it validates. It logs
// through logger, or nowhere if logger is nil. When cfg.ParkHeld is set it
// makes the process's netpoll.Poller, if the system has one, and parks
// idle upstream streams on it.
func New(cfg config.Config, logger *slog.Logger) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	g := &Gateway{
		cfg:    cfg,
		log:    logger,
		limits: newSessionLimits(cfg.MaxSessions, cfg.MaxSessionsPerIP),
		dialer: &xmpp.Dialer{
			TLSMode:      cfg.UpstreamTLS,
			WriteTimeout: cfg.UpstreamWriteTimeout,
		},
	}
	if cfg.UpstreamCAFile != "" {
		pem, err := os.ReadFile(cfg.UpstreamCAFile)
		if err != nil {
			return nil, fmt.Errorf("gateway: upstream_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("gateway: upstream_ca_file: no certificate in %s", cfg.UpstreamCAFile)
		}
		g.dialer.RootCAs = pool
	}
	dyn, err := newDynamic(cfg)
	if err != nil {
		return nil, err
	}
	g.dyn.Store(dyn)
	g.metrics = metrics.New(g.readGauges)
	if cfg.MaxUpstreamLogins > 0 {
		g.dialer.Logins = newLoginGate(cfg.MaxUpstreamLogins, g.metrics)
	}
	if cfg.ParkHeld {
		if g.poller, err = netpoll.New(); err != nil {
			logger.Info("held requests are not parked", "err", err)
		} else {
			// Idle upstream streams wait without a goroutine too.
			g.dialer.Watcher = countingWatcher{g.poller, &g.upstreamsParked}
			g.dialer.ParkAfter = cfg.ParkAfter
		}
	}
	return g, nil
}

// Config returns the configuration the gateway was created with. The
// settings Reload changes are not updated in it.
func (g *Gateway) Config() config.Config { return g.cfg }

// Logger returns the logger the gateway was created with.
func (g *Gateway) Logger() *slog.Logger { return g.log }

// Metrics returns the server's metrics, which every binding feeds.
func (g *Gateway) Metrics() *metrics.Metrics { return g.metrics }

// Poller returns the poller that parks idle sockets, or nil when parking
// is off (park_held) or the system has none.
func (g *Gateway) Poller() *netpoll.Poller { return g.poller }

// AddGauges adds f to what the metrics' gauges read at each scrape: the
// gauges are the sums of what every added f returns. A binding adds one,
// reading its own sessions. f must be quick and must not call AddGauges.
func (g *Gateway) AddGauges(f func() metrics.Gauges) {
	g.gaugesMu.Lock()
	defer g.gaugesMu.Unlock()
	g.gauges = append(g.gauges, f)
}

// readGauges sums the gauges of the bindings and the gateway's own.
func (g *Gateway) readGauges() metrics.Gauges {
	g.gaugesMu.Lock()
	fs := slices.Clone(g.gauges)
	g.gaugesMu.Unlock()
	sum := metrics.Gauges{UpstreamsParked: g.upstreamsParked.Load()}
	for _, f := range fs {
		v := f()
		sum.Live += v.Live
		sum.Held += v.Held
		sum.Queued += v.Queued
		sum.QueuedBytes += v.QueuedBytes
		sum.Parked += v.Parked
		sum.UpstreamsParked += v.UpstreamsParked
		sum.WebSocketLive += v.WebSocketLive
		sum.WebSocketParked += v.WebSocketParked
	}
	return sum
}

// Dial opens the upstream stream of t, bounded by ctx and by
// connect_timeout, and returns once the server's first features are in.
// Its time and result go to boshd_upstream_connect_seconds.
func (g *Gateway) Dial(ctx context.Context, t xmpp.Target) (*xmpp.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.ConnectTimeout)
	defer cancel()
	start := time.Now()
	conn, err := g.dialer.Dial(ctx, t)
	g.metrics.UpstreamConnect(err == nil, time.Since(start).Seconds())
	return conn, err
}

// Resume goes on with an upstream stream the old process of a live
// upgrade handed over (xmpp.Conn.Handoff), on f, its socket: the stream
// is parked and watched by this gateway's poller at once, as a dialled
// one would be. f stays the caller's.
func (g *Gateway) Resume(st xmpp.ConnState, f *os.File) (*xmpp.Conn, error) {
	return g.dialer.Resume(st, f)
}

// Stop marks the server as stopping: Stopping reports true from then on,
// and Ready fails. A binding's Shutdown calls it first, so that no
// binding opens a session once any is shutting down.
func (g *Gateway) Stop() { g.stopping.Store(true) }

// Stopping reports whether Stop was called.
func (g *Gateway) Stopping() bool { return g.stopping.Load() }

// Close stops the gateway and releases its poller. Call it once every
// binding sharing the gateway has shut down: a socket still parked is
// never woken after it.
func (g *Gateway) Close() error {
	g.Stop()
	if g.poller != nil {
		return g.poller.Close()
	}
	return nil
}

// readyTimeout bounds one readiness probe of an upstream.
const readyTimeout = 2 * time.Second

// Ready reports whether the server can serve: it is neither stopping nor
// draining, and every upstream with a configured address accepts TCP connections. It
// opens and closes one connection per upstream, so callers should not
// call it more than every few seconds. Upstreams found through DNS SRV
// are not probed.
func (g *Gateway) Ready(ctx context.Context) error {
	if g.stopping.Load() {
		return errors.New("shutting down")
	}
	if g.draining.Load() {
		return errors.New("draining: no new sessions")
	}
	var errs []error
	var d net.Dialer
	upstreams := g.dyn.Load().upstreams
	for _, domain := range slices.Sorted(maps.Keys(upstreams)) {
		addr := upstreams[domain]
		if addr == "" {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, readyTimeout)
		conn, err := d.DialContext(cctx, "tcp", addr)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("upstream %s at %s: %w", domain, addr, err))
			continue
		}
		conn.Close()
	}
	return errors.Join(errs...)
}

// countingWatcher is an xmpp.Watcher that keeps n at the number of its
// watches neither fired nor stopped: the upstream streams parked now.
type countingWatcher struct {
	w xmpp.Watcher
	n *atomic.Int64
}

// WatchReadable implements xmpp.Watcher. Of fn being called and stop
// reporting true, exactly one happens to a watch, and each takes it off
// the count once.
func (c countingWatcher) WatchReadable(rc syscall.RawConn, fn func()) (stop func() bool, err error) {
	c.n.Add(1)
	stopWatch, err := c.w.WatchReadable(rc, func() {
		c.n.Add(-1)
		fn()
	})
	if err != nil {
		c.n.Add(-1)
		return nil, err
	}
	return func() bool {
		if !stopWatch() {
			return false
		}
		c.n.Add(-1)
		return true
	}, nil
}
