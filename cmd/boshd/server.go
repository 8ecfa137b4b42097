package main

import (
	"log/slog"
	"net/http"
	"time"

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
