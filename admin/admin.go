package admin

import (
	"context"
	"errors"
	"html/template"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/boshd/boshd/bosh"
	"github.com/boshd/boshd/session"
	"github.com/boshd/boshd/wsbind"
)

// Options configure the admin endpoints.
type Options struct {
	// Version is shown on the status page.
	Version string
	// Listening reports whether the BOSH listener is accepting requests.
	// Nil means it is.
	Listening func() bool
	// ReadyCache is how long a readiness result is reused, so that
	// probes do not open upstream connections at every call. Zero means
	// 5 seconds; a negative value turns caching off.
	ReadyCache time.Duration
	// WebSocket, if not nil, is the XMPP over WebSocket handler whose
	// sessions the status page shows beside BOSH's.
	WebSocket *wsbind.Handler
	// Prebind, if not nil, is served at /prebind: the single sign-on
	// endpoint (bosh.Handler.PrebindHandler), for web applications'
	// backends.
	Prebind http.Handler
	// OldProcess, if not nil, reports the old process of a live upgrade
	// (docs/design/005-live-upgrade.md) that still serves sessions
	// beside this one, for the status page; ok false when there is none.
	OldProcess func() (old OldProcess, ok bool)
}

// OldProcess is the old process of a live upgrade, as the status page
// shows it.
type OldProcess struct {
	// PID is its process id.
	PID int
	// BOSH and WebSocket are the sessions it still serves to their end
	// (its own old processes' included).
	BOSH, WebSocket int
	// Exit is when it exits at the latest; zero until it has said.
	Exit time.Time
	// Moved is how many BOSH sessions it moved to this process at the
	// hand-over.
	Moved int
}

// server serves the admin endpoints of one BOSH handler.
type server struct {
	h     *bosh.Handler // immutable
	opts  Options       // immutable
	start time.Time     // immutable

	mu        sync.Mutex // guards the cached readiness below
	readyAt   time.Time
	readyErr  error
	readyBusy chan struct{} // closed when the probe under way ends
}

// NewHandler returns the admin endpoints for h.
func NewHandler(h *bosh.Handler, opts Options) http.Handler {
	if opts.ReadyCache == 0 {
		opts.ReadyCache = 5 * time.Second
	}
	s := &server{h: h, opts: opts, start: time.Now()}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h.Metrics())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	if opts.Prebind != nil {
		mux.Handle("/prebind", opts.Prebind) // every method: it answers 405 itself
	}
	mux.HandleFunc("GET /drain", s.drain)
	mux.HandleFunc("POST /drain", s.drain)
	mux.HandleFunc("DELETE /drain", s.drain)
	mux.HandleFunc("GET /{$}", s.status)
	// Profiles (go tool pprof http://ADMIN/debug/pprof/heap): the admin
	// listener is the operator's, never the public one.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return mux
}

func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := s.ready(r.Context()); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte("not ready: " + err.Error() + "\n"))
		return
	}
	w.Write([]byte("ready\n"))
}

// ready returns the cached readiness, probing again when it is stale; one
// probe runs at a time and concurrent callers wait for it.
func (s *server) ready(ctx context.Context) error {
	if s.opts.Listening != nil && !s.opts.Listening() {
		return errNotListening
	}
	if s.h.Gateway().Draining() {
		return errDraining
	}
	s.mu.Lock()
	for {
		if !s.readyAt.IsZero() && time.Since(s.readyAt) < s.opts.ReadyCache {
			err := s.readyErr
			s.mu.Unlock()
			return err
		}
		if s.readyBusy == nil {
			break
		}
		busy := s.readyBusy
		s.mu.Unlock()
		select {
		case <-busy:
		case <-ctx.Done():
			return ctx.Err()
		}
		s.mu.Lock()
	}
	busy := make(chan struct{})
	s.readyBusy = busy
	s.mu.Unlock()

	err := s.h.Ready(context.WithoutCancel(ctx))

	s.mu.Lock()
	s.readyAt, s.readyErr, s.readyBusy = time.Now(), err, nil
	s.mu.Unlock()
	close(busy)
	return err
}

// errNotListening is the readiness error while the BOSH listener is down.
var errNotListening = errors.New("the BOSH listener is not accepting requests")

// errDraining is the readiness error while the server drains (/drain).
var errDraining = errors.New("draining: no new sessions")

var statusPage = template.Must(template.New("status").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>boshd status</title>
<style>body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}td,th{padding:.3em 1em;text-align:left;border-bottom:1px solid #ddd}</style>
</head><body>
<h1>boshd</h1>
<table>
<tr><th>version</th><td>{{.Version}}</td></tr>
<tr><th>Go</th><td>{{.Go}}</td></tr>
<tr><th>uptime</th><td>{{.Uptime}}</td></tr>
<tr><th>process</th><td>{{.PID}}</td></tr>
{{with .Old}}<tr><th>old process</th><td>{{.PID}}, after a live upgrade: moved {{.Moved}} BOSH sessions here, serving {{.BOSH}} BOSH and {{.WebSocket}} WebSocket sessions to their end{{if not .Exit.IsZero}}, exiting by {{.Exit.UTC.Format "2006-01-02 15:04:05 UTC"}}{{end}}</td></tr>
{{end}}{{if .Draining}}<tr><th>draining</th><td>yes: new sessions are refused (<a href="/drain">/drain</a>)</td></tr>
{{end}}<tr><th>BOSH sessions</th><td>{{.Stats.Live}}</td></tr>
<tr><th>held requests</th><td>{{.Stats.Held}}</td></tr>
<tr><th>queued stanzas</th><td>{{.Stats.Queued}} ({{.Stats.QueuedBytes}} bytes)</td></tr>
{{with .WebSocket}}<tr><th>WebSocket sessions</th><td>{{.Live}} ({{.Parked}} idle, parked)</td></tr>
{{end}}<tr><th>goroutines</th><td>{{.Goroutines}}</td></tr>
</table>
<p><a href="/metrics">metrics</a> · <a href="/healthz">healthz</a> · <a href="/readyz">readyz</a></p>
</body></html>
`))

func (s *server) status(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	statusPage.Execute(w, struct {
		Version, Go, Uptime string
		PID                 int
		Old                 *OldProcess
		Draining            bool
		Stats               session.Stats
		WebSocket           *wsbind.Stats
		Goroutines          int
	}{
		Version:    s.opts.Version,
		Go:         runtime.Version(),
		Uptime:     time.Since(s.start).Round(time.Second).String(),
		PID:        os.Getpid(),
		Old:        s.oldProcess(),
		Draining:   s.h.Gateway().Draining(),
		Stats:      s.h.Stats(),
		WebSocket:  s.webSocketStats(),
		Goroutines: runtime.NumGoroutine(),
	})
}

// oldProcess returns the old process of a live upgrade, nil if there is
// none.
func (s *server) oldProcess() *OldProcess {
	if s.opts.OldProcess == nil {
		return nil
	}
	if old, ok := s.opts.OldProcess(); ok {
		return &old
	}
	return nil
}

// webSocketStats returns the WebSocket handler's numbers, nil if there is
// none.
func (s *server) webSocketStats() *wsbind.Stats {
	if s.opts.WebSocket == nil {
		return nil
	}
	st := s.opts.WebSocket.Stats()
	return &st
}
