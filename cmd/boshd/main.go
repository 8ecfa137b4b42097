// Command boshd is an XMPP BOSH connection manager: it serves BOSH
// (XEP-0124, XEP-0206) over HTTP and relays each session to its own
// upstream XMPP client stream.
//
// Usage:
//
//	boshd [--config FILE] [--listen ADDR] [--upstream DOMAIN=HOST:PORT]... [flags]
//
// Run boshd --help for every option. Options also come from a YAML file
// and from BOSHD_* environment variables; see boshd.example.yaml.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/boshd/boshd/admin"
	"github.com/boshd/boshd/bosh"
	"github.com/boshd/boshd/config"
	"github.com/boshd/boshd/config/load"
	"github.com/boshd/boshd/gateway"
	"github.com/boshd/boshd/internal/handoff"
	"github.com/boshd/boshd/internal/sdnotify"
	"github.com/boshd/boshd/wsbind"
)

func main() {
	os.Exit(run(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

// run is boshd's main, returning the exit status.
func run(args, environ []string, stdout, stderr io.Writer) int {
	// A process started by a live upgrade takes over its parent's
	// sockets, and tells it why if it cannot serve.
	parent, err := handoff.FromEnv(environ)
	if err != nil {
		fmt.Fprintln(stderr, "boshd:", err)
		return 2
	}
	loadConfig := func() (config.Config, error) { return load.Config(args, environ) }
	cfg, err := loadConfig()
	switch {
	case errors.Is(err, load.ErrHelp):
		if err := load.Usage(stdout); err != nil {
			fmt.Fprintln(stderr, "boshd:", err)
			return 1
		}
		return 0
	case errors.Is(err, load.ErrVersion):
		fmt.Fprintln(stdout, "boshd", version())
		return 0
	case err != nil:
		fmt.Fprintln(stderr, "boshd:", err)
		if parent != nil {
			parent.Fail(err.Error())
		}
		return 2
	}
	logger := newLogger(cfg, stderr)
	// The binary a live upgrade starts: this one's path, resolved now,
	// where a package manager puts the new version.
	self, err := os.Executable()
	if err != nil {
		logger.Warn("the path of boshd's binary is unknown: live upgrades (SIGUSR2) will fail", "err", err)
	}
	u := &upgrader{self: self, args: args, environ: environ, parent: parent, notify: sdnotify.FromEnv(environ), log: logger}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	// SIGUSR1 drains (docs/design/004-cluster.md); SIGUSR2 starts a live
	// upgrade (docs/design/005-live-upgrade.md).
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	usr2 := make(chan os.Signal, 1)
	signal.Notify(usr2, syscall.SIGUSR2)
	defer signal.Stop(usr2)
	if err := serve(ctx, cfg, loadConfig, signals{hup, usr1, usr2}, u, logger); err != nil {
		logger.Error("boshd stopped", "err", err)
		if parent != nil {
			parent.Fail(err.Error())
		}
		return 1
	}
	return 0
}

// signals are the signals serve acts on, besides those that end ctx.
type signals struct {
	hup, drain, upgrade <-chan os.Signal
}

// serve runs the HTTP servers until ctx ends, then shuts down gracefully:
// every session is told system-shutdown and every upstream stream closed.
// On a signal from hup it loads the configuration again with loadConfig and
// applies what can change while sessions run (see bosh.Handler.Reload),
// and reads the TLS certificate again. On a signal from drain it drains:
// new sessions are refused, open ones go on (undone by DELETE /drain on
// the admin listener). On a signal from upgrade it starts the new binary
// and hands over to it (u, upgrade.go), then serves its sessions to
// their end and returns.
func serve(ctx context.Context, cfg config.Config, loadConfig func() (config.Config, error), sig signals, u *upgrader, logger *slog.Logger) error {
	cfg = withSessionCap(cfg, logger)
	g, err := gateway.New(cfg, logger)
	if err != nil {
		return err
	}
	// Every return releases the gateway's poller (its goroutine and epoll
	// descriptor), the early error returns too. Close is idempotent: a
	// graceful shutdown closes the gateway sooner, below.
	defer g.Close()
	h := bosh.NewHandlerWith(g)
	defer func() {
		// The handoff socket's requests are answered by now: this bounds
		// a peer that keeps a connection busy.
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		u.close(cctx)
	}()
	// XMPP over WebSocket beside BOSH, on the same gateway: one count of
	// sessions, one poller, one set of metrics.
	var wsh *wsbind.Handler
	var wsHTTP http.Handler // nil when websocket_path is empty
	if cfg.WebSocketPath != "" {
		wsh = wsbind.NewHandler(g)
		wsHTTP = wsh
	}
	var cert *certificate
	if cfg.TLSCertFile != "" {
		if cert, err = loadCertificate(cfg.TLSCertFile, cfg.TLSKeyFile); err != nil {
			return err
		}
	}
	u.setHandlers(h, wsh)
	ln, err := u.listen("listen", cfg.Listen)
	if err != nil {
		return err
	}
	var listening atomic.Bool
	listening.Store(true)
	mux := newMux(cfg, h, wsHTTP, ln.Addr())
	srv := newHTTPServer(cfg, mux, logger)
	scheme := "http"
	if cert != nil {
		scheme = "https"
		// TLS inside the bosh.Listener, so that connections are counted
		// per address before any handshake and a parked request's
		// connection goes back to the server still as TLS; the ALPN
		// list is what ServeTLS would offer.
		srv.TLSConfig = &tls.Config{GetCertificate: cert.get, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
	}
	bln, err := newListener(ln, srv, h)
	if err != nil {
		return err
	}
	u.bln = bln
	errc := make(chan error, 4) // the BOSH, prebind, admin and agent listeners'
	go func() {
		err := srv.Serve(bln)
		listening.Store(false)
		errc <- err
	}()
	logger.Info("boshd listening", "url", scheme+"://"+ln.Addr().String()+cfg.Path, "version", version(), "max_sessions", cfg.MaxSessions)
	if wsh != nil {
		wsScheme := "ws"
		if cert != nil {
			wsScheme = "wss"
		}
		logger.Info("XMPP over WebSocket", "url", wsScheme+"://"+ln.Addr().String()+cfg.WebSocketPath)
	}
	logger.Info("XEP-0156 discovery", "host_meta", gateway.HostMetaPath, "bosh_url", advertisedURL(cfg, ln.Addr()))
	if cfg.StaticDir != "" {
		logger.Info("serving files", "dir", cfg.StaticDir, "url", scheme+"://"+ln.Addr().String()+"/")
	}

	// Single sign-on (prebind_token_file): /prebind on the admin
	// listener, or on prebind_listen.
	var tok *tokenFile
	var prebind, adminPrebind http.Handler
	if cfg.PrebindTokenFile != "" {
		if tok, err = loadTokenFile(cfg.PrebindTokenFile); err != nil {
			srv.Close()
			return err
		}
		prebind = h.PrebindHandler(tok.get)
		if cfg.PrebindListen == "" {
			adminPrebind = prebind
		}
	}
	var prebindSrv *http.Server
	var serveAgent func(net.Listener) // nil without agent_listen
	if prebind != nil && cfg.PrebindListen != "" {
		pln, err := u.listen("prebind_listen", cfg.PrebindListen)
		if err != nil {
			srv.Close()
			return fmt.Errorf("prebind_listen: %w", err)
		}
		prebindSrv = newPrebindServer(prebind, logger)
		go func() { errc <- prebindSrv.Serve(pln) }()
		logger.Info("single sign-on (prebind)", "url", prebindURL(pln))
	}

	var adminSrv *http.Server
	if cfg.AdminListen != "" {
		aln, err := u.listen("admin_listen", cfg.AdminListen)
		if err != nil {
			srv.Close()
			if prebindSrv != nil {
				prebindSrv.Close()
			}
			return fmt.Errorf("admin_listen: %w", err)
		}
		adminSrv = &http.Server{
			Handler:           admin.NewHandler(h, admin.Options{Version: version(), Listening: listening.Load, WebSocket: wsh, Prebind: adminPrebind, OldProcess: u.oldProcess}),
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      30 * time.Second,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelInfo),
		}
		go func() { errc <- adminSrv.Serve(aln) }()
		logger.Info("admin endpoints", "url", "http://"+aln.Addr().String()+"/", "metrics", "/metrics")
		if adminPrebind != nil {
			logger.Info("single sign-on (prebind)", "url", prebindURL(aln))
		}
	}
	if cfg.AgentListen != "" {
		agln, err := u.listen("agent_listen", cfg.AgentListen)
		if err != nil {
			srv.Close()
			if adminSrv != nil {
				adminSrv.Close()
			}
			if prebindSrv != nil {
				prebindSrv.Close()
			}
			return fmt.Errorf("agent_listen: %w", err)
		}
		// The agent answers until serve returns, "down" during the
		// shutdown.
		actx, acancel := context.WithCancel(context.Background())
		defer acancel()
		agent := admin.NewAgent(h, admin.Options{Listening: listening.Load})
		serveAgent = func(ln net.Listener) {
			go func() {
				if err := agent.Serve(actx, ln); err != nil {
					errc <- fmt.Errorf("agent_listen: %w", err)
				}
			}()
		}
		serveAgent(agln)
		logger.Info("HAProxy agent-check", "addr", agln.Addr().String())
	}

	if err := u.serving(); err != nil {
		srv.Close()
		if adminSrv != nil {
			adminSrv.Close()
		}
		if prebindSrv != nil {
			prebindSrv.Close()
		}
		return fmt.Errorf("upgrade: %w", err)
	}

	// A live upgrade (upgrade.go): upgrading brings its outcome; once
	// handed over, each tick tells the new process what this one still
	// serves, and checks whether it may exit.
	var upgrading <-chan upgradeResult
	var tick <-chan time.Time
	stopAccepting := func() {
		listening.Store(false)
		bln.StopAccepting()
		for _, l := range u.opened {
			if l.Key != "listen" {
				l.L.Close() // admin, agent, prebind: new connections go to the new process
			}
		}
		// Their connections still open are closed after each answer
		// (idle ones now): a probe or a scrape reaches the new process.
		for _, s := range []*http.Server{adminSrv, prebindSrv} {
			if s != nil {
				s.SetKeepAlivesEnabled(false)
			}
		}
	}
	// resumeAccepting undoes stopAccepting on the copies of the sockets
	// taken back from a new process that died (upgrader.takeBack).
	resumeAccepting := func(ls []handoff.Listener) {
		for _, l := range ls {
			var s *http.Server
			switch l.Key {
			case "listen":
				if err := bln.Resume(l.L); err != nil {
					logger.Error("upgrade: not accepting again", "key", l.Key, "err", err)
				}
				continue
			case "agent_listen":
				if serveAgent != nil {
					serveAgent(l.L)
					continue
				}
			case "admin_listen":
				s = adminSrv
			case "prebind_listen":
				s = prebindSrv
			}
			if s == nil {
				l.L.Close()
				continue
			}
			s.SetKeepAlivesEnabled(true)
			go func() { errc <- s.Serve(l.L) }()
		}
		listening.Store(true)
	}
	quiet := false // exiting after a hand-over with no session left
	for {
		select {
		case err := <-errc:
			if u.handedOff || errors.Is(err, net.ErrClosed) {
				// A listener closed by stopAccepting; its error may
				// come after this process took accepting back.
				continue
			}
			return err
		case <-u.successorExited():
			if u.takeBack(resumeAccepting) {
				tick = nil
			}
			continue
		case <-sig.hup:
			reload(h, wsh, cert, tok, loadConfig, logger)
			continue
		case <-sig.upgrade:
			if c := u.start(ctx, cfg.UpgradeReadyTimeout); c != nil {
				upgrading = c
			}
			continue
		case <-u.whenSettled():
			// A SIGUSR2 that came while the old process moved its
			// sessions here.
			u.deferred = false
			if c := u.start(ctx, cfg.UpgradeReadyTimeout); c != nil {
				upgrading = c
			}
			continue
		case r := <-upgrading:
			upgrading = nil
			u.finish(ctx, r, cfg.UpgradeDrainTimeout, moveBound(cfg.ParkAfter), stopAccepting)
			if u.handedOff {
				t := time.NewTicker(time.Second)
				defer t.Stop()
				tick = t.C
			}
			continue
		case res := <-u.moving:
			u.moved(res)
			continue
		case now := <-tick:
			select {
			case <-u.successorExited():
				continue // taken back first, if need be
			default:
			}
			done, empty, why := u.drained(now)
			if !done {
				continue
			}
			logger.Info("upgrade: the old process exits", "why", why)
			quiet = empty
		case <-sig.drain:
			if g.Drain() {
				var ws int64
				if wsh != nil {
					ws = wsh.Stats().Live
				}
				logger.Info("draining: new sessions refused, open ones go on", "by", "SIGUSR1", "sessions", h.Stats().Live, "websocket", ws)
			}
			continue
		case <-ctx.Done():
		}
		break
	}
	listening.Store(false)
	if u.moving != nil {
		// A session is not left frozen: the hand-over stops at the
		// record under way (ctx has ended), or within its answer's
		// bound.
		u.moved(<-u.moving)
	}
	if !u.handedOff {
		if err := u.notify.Stopping(); err != nil {
			logger.Warn("systemd not told STOPPING=1", "err", err)
		}
	}
	if quiet {
		// No session left, but requests this process forwards to the
		// new one on connections still open to it, and requests the new
		// one sent here for a session that has moved to it since, which
		// go back to it over the handoff sockets: each is answered
		// (within max_wait), before the handler's shutdown would cut
		// them with 503 "shutting down".
		qctx, qcancel := context.WithTimeout(context.Background(), cfg.MaxWait+10*time.Second)
		var quiesced sync.WaitGroup
		quiesced.Go(func() { srv.Shutdown(qctx) })
		quiesced.Go(func() { u.quiesce(qctx) })
		quiesced.Wait()
		qcancel()
	}
	logger.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	start := time.Now()
	sctx, cancel := context.WithDeadline(context.Background(), start.Add(cfg.ShutdownTimeout))
	defer cancel()
	// The handlers first, then what they share: a parked socket is
	// never woken once the gateway is closed. A shutdown that ran out
	// of time may still be using it: then it is closed only as serve
	// returns.
	if shutdownHandlers(sctx, h, wsh) == nil {
		g.Close()
	}
	if adminSrv != nil {
		adminSrv.Shutdown(sctx)
	}
	if prebindSrv != nil {
		prebindSrv.Shutdown(sctx)
	}
	// Leave a tenth of the bound, counted from the start of the
	// shutdown, for closing what is still open.
	hctx, hcancel := context.WithDeadline(sctx, start.Add(cfg.ShutdownTimeout*9/10))
	defer hcancel()
	if err := srv.Shutdown(hctx); err != nil {
		// Every session has been told; what is left is connections still
		// sending a request body, say. Close them rather than fail.
		logger.Warn("closing connections still open at the end of shutdown_timeout", "err", err)
		srv.Close()
	}
	return nil
}

// shutdownHandlers shuts the BOSH and, if there is one, the WebSocket
// handler down at once, each telling its sessions, and returns the first
// error, once both are done.
func shutdownHandlers(ctx context.Context, h *bosh.Handler, wsh *wsbind.Handler) error {
	if wsh == nil {
		return h.Shutdown(ctx)
	}
	wsErr := make(chan error, 1)
	go func() { wsErr <- wsh.Shutdown(ctx) }()
	err := h.Shutdown(ctx)
	return errors.Join(err, <-wsErr)
}

// reload applies a configuration loaded again after SIGHUP.
func reload(h *bosh.Handler, wsh *wsbind.Handler, cert *certificate, tok *tokenFile, loadConfig func() (config.Config, error), logger *slog.Logger) {
	cfg, err := loadConfig()
	if err != nil {
		logger.Error("reload: configuration refused, nothing changed", "err", err)
		return
	}
	ignored, err := h.Reload(withSessionCap(cfg, logger))
	if err != nil {
		logger.Error("reload: configuration refused, nothing changed", "err", err)
		return
	}
	if wsh != nil {
		if n := wsh.EndUnserved(); n > 0 {
			logger.Info("reload: WebSocket sessions of domains no longer served ended", "sessions", n)
		}
	}
	if len(ignored) > 0 {
		logger.Warn("reload: these settings take effect only after a restart", "keys", ignored)
	}
	if cert != nil {
		if err := cert.reload(); err != nil {
			logger.Error("reload: TLS certificate not reloaded, the old one stays", "err", err)
		}
	}
	if tok != nil {
		if err := tok.reload(); err != nil {
			logger.Error("reload: the prebind token not reloaded, the old one stays", "err", err)
		}
	}
	logger.Info("configuration reloaded")
}

// fdsPerSession is how many file descriptors a session takes at most: a
// held request, the client's second connection and the upstream stream.
const fdsPerSession = 3

// withSessionCap returns cfg with max_sessions bounded by the open file
// limit, so that a full server refuses new sessions with policy-violation
// instead of failing to accept connections (Go raises the soft limit to
// the hard one at start).
func withSessionCap(cfg config.Config, logger *slog.Logger) config.Config {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur > 1<<40 {
		return cfg
	}
	limit := 1
	if lim.Cur > 64+fdsPerSession {
		limit = int(lim.Cur-64) / fdsPerSession
	}
	if cfg.MaxSessions == 0 || cfg.MaxSessions > limit {
		if cfg.MaxSessions > limit {
			logger.Warn("max_sessions lowered to what the open file limit allows", "max_sessions", cfg.MaxSessions, "nofile", lim.Cur, "now", limit)
		}
		cfg.MaxSessions = limit
	}
	return cfg
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.SlogLevel()}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// version returns the version boshd was built as (see buildVersion).
func version() string {
	info, _ := debug.ReadBuildInfo()
	return buildVersion(info)
}

// buildVersion returns the version of a build: its module version, such
// as v1.2.0, or the pseudo-version the go command stamps a build from a
// checkout with (v0.0.0-20261207042314-baf2ff9e1c3a+dirty); else the VCS
// revision, with "+dirty" when the checkout had changes; else a word on
// why there is neither.
func buildVersion(info *debug.BuildInfo) string {
	if info == nil {
		return "unknown (built without module support)"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var revision, dirty string
	for _, s := range info.Settings {
		switch {
		case s.Key == "vcs.revision":
			revision = s.Value
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = "+dirty"
		}
	}
	if revision == "" {
		return "(devel, built without VCS information)"
	}
	return revision + dirty
}
