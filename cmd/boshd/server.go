package main

import (
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/boshd/boshd/bosh"
	"github.com/boshd/boshd/config"
)

// newHTTPServer returns the http.Server of the BOSH listener, serving h:
// its timeouts and header limit bound slow and greedy clients.
func newHTTPServer(cfg config.Config, h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// A held request is answered within max_wait; leave room for
		// writing it.
		WriteTimeout:   cfg.MaxWait + 30*time.Second,
		IdleTimeout:    cfg.MaxWait + 30*time.Second,
		MaxHeaderBytes: 16 << 10,
		// Accept errors (out of file descriptors, say) must be seen.
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelInfo),
	}
}

// newListener returns the bosh.Listener srv serves h through, on ln: it
// serves TLS when srv.TLSConfig is set, caps connections per address at
// the max_conns_per_ip of h's gateway before any handshake, and takes parked requests'
// connections back (docs/design/002). It sets srv's ConnContext, and
// closes ln if it fails.
func newListener(ln net.Listener, srv *http.Server, h *bosh.Handler) (*bosh.Listener, error) {
	bln, err := bosh.NewListenerWith(ln, bosh.ListenerOptions{
		TLSConfig: srv.TLSConfig,
		Gateway:   h.Gateway(), // max_conns_per_ip is the gateway's
	})
	if err != nil {
		ln.Close()
		return nil, err
	}
	bln.IdleTimeout = srv.IdleTimeout
	srv.ConnContext = bln.ConnContext
	return bln, nil
}
