package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/boshd/boshd/config"
)

// tokenFile is the bearer token of /prebind, read from
// prebind_token_file at start and again on SIGHUP.
type tokenFile struct {
	path  string                 // immutable
	token atomic.Pointer[[]byte] // the token in force; never nil after loadTokenFile
}

// loadTokenFile reads the token in path.
func loadTokenFile(path string) (*tokenFile, error) {
	f := &tokenFile{path: path}
	if err := f.reload(); err != nil {
		return nil, err
	}
	return f, nil
}

// get returns the token in force. It is safe for concurrent use.
func (f *tokenFile) get() []byte { return *f.token.Load() }

// reload reads the file again; on an error the token in force stays.
func (f *tokenFile) reload() error {
	token, err := config.ReadToken(f.path)
	if err != nil {
		return fmt.Errorf("prebind_token_file: %w", err)
	}
	f.token.Store(&token)
	return nil
}

// newPrebindServer returns the server of prebind_listen, serving only
// /prebind with h.
func newPrebindServer(h http.Handler, logger *slog.Logger) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("/prebind", h)
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       10 * time.Second,
		// Dialling and logging in are bounded by connect_timeout each.
		WriteTimeout: 60 * time.Second,
		ErrorLog:     slog.NewLogLogger(logger.Handler(), slog.LevelInfo),
	}
}

// prebindURL is how the log names the endpoint on ln.
func prebindURL(ln net.Listener) string { return "http://" + ln.Addr().String() + "/prebind" }
