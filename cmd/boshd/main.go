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
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"boshd/bosh"
	"boshd/config"
)

func main() {
	os.Exit(run(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

// run is boshd's main, returning the exit status.
func run(args, environ []string, stdout, stderr io.Writer) int {
	cfg, err := config.Load(args, environ, stderr)
	switch {
	case errors.Is(err, pflag.ErrHelp):
		return 0
	case errors.Is(err, config.ErrVersion):
		fmt.Fprintln(stdout, "boshd", version())
		return 0
	case err != nil:
		fmt.Fprintln(stderr, "boshd:", err)
		return 2
	}
	logger := newLogger(cfg, stderr)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, cfg, logger); err != nil {
		logger.Error("boshd stopped", "err", err)
		return 1
	}
	return 0
}

// serve runs the HTTP server until ctx ends, then shuts down gracefully:
// every session is told system-shutdown and every upstream stream closed.
func serve(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	h, err := bosh.NewHandler(cfg, logger)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	mux := newMux(cfg, h, ln.Addr())
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// A held request is answered within max_wait; leave room for
		// writing it.
		WriteTimeout:   cfg.MaxWait + 30*time.Second,
		IdleTimeout:    cfg.MaxWait + 30*time.Second,
		MaxHeaderBytes: 16 << 10,
		ErrorLog:       slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
	logger.Info("boshd listening", "url", "http://"+ln.Addr().String()+cfg.Path, "version", version())
	logger.Info("XEP-0156 discovery", "host_meta", bosh.HostMetaPath, "bosh_url", advertisedURL(cfg, ln.Addr()))
	if cfg.StaticDir != "" {
		logger.Info("serving files", "dir", cfg.StaticDir, "url", "http://"+ln.Addr().String()+"/")
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	h.Shutdown(sctx)
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.SlogLevel()}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// version is the module version boshd was built from.
func version() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		v := info.Main.Version
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " " + s.Value[:12]
			}
		}
		return v
	}
	return "unknown"
}
