package bosh

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/boshd/boshd/config"
	"github.com/boshd/boshd/gateway"
	"github.com/boshd/boshd/internal/netpoll"
	"github.com/boshd/boshd/metrics"
	"github.com/boshd/boshd/session"
)

// Handler serves BOSH (XEP-0124, XEP-0206) over HTTP, relaying each session
// to its own upstream XMPP stream. It answers POSTs at whatever path it is
// mounted on. Create one with NewHandler, or NewHandlerWith to share a
// gateway.Gateway with another binding; it is safe for concurrent use.
type Handler struct {
	// g is what the handler shares with other bindings: the
	// configuration and the parts of it Reload changes, targets and
	// dialling, session limits, metrics, the poller. ownGateway says
	// that NewHandler made g, so that Shutdown closes it.
	g          *gateway.Gateway // immutable
	ownGateway bool             // immutable
	// cfg is g's configuration, log and metrics are g's, copied for
	// the hot path; the parts of cfg Reload may change are read from g.
	cfg      config.Config    // immutable
	log      *slog.Logger     // immutable
	metrics  *metrics.Metrics // immutable
	sessions *session.Registry
	// fwd forwards requests for other nodes' sessions and checks those
	// forwarded to this one (forward.go).
	fwd *forwarder
	// rel forwards requests for sessions this process does not hold to
	// the other process of a live upgrade (handoff.go).
	rel relatives

	// poller is g's, watching the clients of parked requests
	// (docs/design/002); nil when parking is off or unavailable.
	// parkedNow counts the parked requests not yet written, for metrics.
	poller    *netpoll.Poller // immutable
	parkedNow atomic.Int64
	// parked are the parked requests not yet written, by session and
	// rid, which Shutdown waits for (park.go), and moved the sids of the
	// sessions moved to the new process of a live upgrade (move.go).
	parked parkedSet
	moved  sync.Map // sid → struct{}

	// testPanic, if set, is called at points of serveBOSH named by its
	// argument, so that tests can make handling a request panic. Only
	// tests set it.
	testPanic func(point string)
}

// NewHandler returns a Handler configured by cfg, which it validates, with
// a gateway.Gateway of its own that Shutdown closes. It logs through
// logger, or nowhere if logger is nil.
func NewHandler(cfg config.Config, logger *slog.Logger) (*Handler, error) {
	g, err := gateway.New(cfg, logger)
	if err != nil {
		return nil, err
	}
	h := NewHandlerWith(g)
	h.ownGateway = true
	return h, nil
}

// NewHandlerWith returns a Handler sharing g with other bindings: its
// configuration, session limits, metrics and poller. It logs through g's
// logger and adds its gauges to g's metrics. Shutdown leaves g open; the
// caller closes it once every binding has shut down.
func NewHandlerWith(g *gateway.Gateway) *Handler {
	h := &Handler{
		g:        g,
		cfg:      g.Config(),
		log:      g.Logger(),
		metrics:  g.Metrics(),
		poller:   g.Poller(),
		sessions: session.NewRegistry(g.Logger(), nil),
	}
	g.AddGauges(func() metrics.Gauges {
		st := h.sessions.Stats()
		return metrics.Gauges{Live: st.Live, Held: st.Held, Queued: st.Queued, QueuedBytes: st.QueuedBytes,
			Parked: h.parkedNow.Load()}
	})
	h.sessions.Node = h.cfg.NodeID
	var secret []byte
	if file := h.cfg.ClusterSecretFile; file != "" {
		var err error
		if secret, err = config.ReadClusterSecret(file); err != nil {
			// Validated moments ago: the file changed since. Every
			// forwarded request is refused until a reload reads it.
			h.log.Error("cluster_secret_file not read: forwarded requests refused until a reload", "err", err)
		}
	}
	h.fwd = newForwarder(h.cfg, secret)
	h.metrics.ForwardPeers(h.fwd.peerNames())
	h.sessions.OnEnd = func(c session.Condition) { h.metrics.SessionEnded(string(c)) }
	h.sessions.OnPush = func(d time.Duration) { h.metrics.Push(d.Seconds()) }
	return h
}

// Gateway returns the gateway.Gateway the handler serves through.
func (h *Handler) Gateway() *gateway.Gateway { return h.g }

// Metrics serves the handler's Prometheus metrics.
func (h *Handler) Metrics() http.Handler { return h.metrics.Handler() }

// Sessions returns the number of sessions the handler holds.
func (h *Handler) Sessions() int { return h.sessions.Len() }

// Shutdown refuses new sessions (stopping the gateway: see
// gateway.Gateway.Stop) and ends every session with system-shutdown,
// answering held requests and closing upstream streams. It returns when
// every session has been told and every parked request written, or when
// ctx ends; then, if the gateway is the handler's own (NewHandler), it
// closes it, releasing what parking uses.
func (h *Handler) Shutdown(ctx context.Context) error {
	h.g.Stop()
	h.fwd.close()
	for _, p := range []*peer{h.rel.pred.Load(), h.rel.succ.Load()} {
		if p != nil {
			p.client.CloseIdleConnections()
		}
	}
	h.sessions.Shutdown()
	written := make(chan struct{})
	go func() {
		h.parked.closeWait()
		close(written)
	}()
	select {
	case <-written:
		if h.ownGateway {
			h.g.Close()
		}
	case <-ctx.Done():
	}
	return ctx.Err()
}

// ServeHTTP answers one HTTP request. CORS headers go on every answer to
// an allowed origin (docs/CONFORMANCE.md#cors), and a panic is answered with
// internal-server-error instead of taking the server down.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rw := &responseWriter{ResponseWriter: w, gzip: acceptsGzip(r.Header.Values("Accept-Encoding"))}
	defer h.recoverPanic(rw, r)
	switch r.Method {
	case http.MethodPost:
		setCORSHeaders(h.g.CORS(), rw.Header(), r)
		if o := originOf(r.Context()); o != nil && o.ln.stopped.Load() {
			// Another process accepts on this socket now
			// (Listener.StopAccepting): the client's next request
			// goes to it on a new connection.
			rw.Header().Set("Connection", "close")
		}
		start := time.Now()
		h.serveBOSH(rw, r)
		if rw.parked {
			return // its goroutine counts it once answered
		}
		outcome := rw.outcome
		switch {
		case !rw.wrote:
			outcome = "gone"
		case outcome == "":
			outcome = "ok"
		}
		h.metrics.Request(outcome, time.Since(start).Seconds())
		h.metrics.Bytes(rw.in, rw.size)
	case http.MethodGet, http.MethodHead:
		setCORSHeaders(h.g.CORS(), rw.Header(), r)
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(rw, "boshd: this is an XMPP BOSH endpoint (XEP-0124, XEP-0206); POST <body/> elements here.\n")
	case http.MethodOptions:
		// A preflight, or a plain OPTIONS: 204 either way, even
		// without Origin (esl/MongooseIM#348).
		preflight(h.g.CORS(), rw.Header(), r)
		rw.Header().Set("Allow", "POST, OPTIONS")
		rw.WriteHeader(http.StatusNoContent)
	default:
		setCORSHeaders(h.g.CORS(), rw.Header(), r)
		rw.Header().Set("Allow", "POST, OPTIONS")
		http.Error(rw, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func (h *Handler) serveBOSH(w *responseWriter, r *http.Request) {
	bp := getBuffer()
	data, err := readBody(w.ResponseWriter, r, h.cfg.MaxBodySize, *bp)
	w.in = len(data)
	if err != nil {
		putBuffer(bp, *bp)
		var re *requestError
		if errors.As(err, &re) {
			// docs/CONFORMANCE.md#limits; XEP-0124 §7.2
			h.log.Info("request body refused", "err", err, "limit", h.cfg.MaxBodySize, "remote", r.RemoteAddr)
			h.refuse(w, defaultContentType, false, re)
			return
		}
		// The body did not arrive whole: the client went away, or was
		// slower than the server's ReadTimeout. Say so and close, rather
		// than leave net/http to send an empty 200 to a client still
		// there.
		setOutcome(w, "gone")
		w.Header().Set("Connection", "close")
		http.Error(w, "request body not received whole", http.StatusBadRequest)
		return
	}
	if h.testPanic != nil {
		h.testPanic("body")
	}
	// A request forwarded by another node is served only if its
	// signature checks out (forward.go).
	r, ok := h.receive(w, r, data)
	if !ok {
		putBuffer(bp, data)
		return
	}
	b := new(body)
	err = parseBodyDepth(b, data, h.cfg.MaxElementDepth)
	if node := h.fwd.owner(b.sid); node != "" {
		// Another node's session, its request forwarded as it came:
		// the buffer is left to the collector, the transport may
		// read it still.
		h.forward(w, r, node, b.sid, b.rid, data)
		return
	}
	if b.sid == "" && err == nil && h.forwardsCreation(r) {
		// A creation this draining node would refuse goes to a peer,
		// as it came (drainforward.go); the buffer is left to the
		// collector, as above.
		h.forwardCreation(w, r, data)
		return
	}
	var s *session.Session
	if b.sid != "" {
		s = h.sessions.Get(b.sid)
		if s != nil {
			// Kept out of a session being moved to the new process
			// of a live upgrade until it has moved, or not
			// (move.go).
			switch h.enter(r.Context(), s) {
			case entered:
				defer w.leave()
				w.entered = s
			case enterGone:
				putBuffer(bp, data)
				setOutcome(w, "gone")
				return
			case enterMoved:
				s = nil
			}
		}
		if p := h.relativeFor(r, b.sid); p != nil && s == nil {
			// A live upgrade: the other process may hold it
			// (handoff.go). The buffer is left to the collector.
			h.relay(w, r, p, b.sid, b.rid, data)
			return
		}
	}
	// Parsing copies what it keeps: the buffer goes back before the
	// request is held.
	putBuffer(bp, data)
	if b.sid == "" {
		if err != nil {
			h.log.Debug("bad creation request", "err", err, "remote", r.RemoteAddr)
			h.refuse(w, defaultContentType, false, err)
			return
		}
		h.create(w, r, b)
		return
	}
	if s == nil {
		// XEP-0124 §7.1, §17.1: unknown sid, told in the body.
		h.log.Debug("unknown sid", "remote", r.RemoteAddr)
		h.refuse(w, defaultContentType, false, &requestError{cond: session.ItemNotFound, msg: "unknown sid"})
		return
	}
	if s.Params.Secure && !h.overTLS(r) {
		// XEP-0124 §19.1: a session made over TLS is not touched by a plaintext
		// request, which is sent to the https URI instead.
		h.log.Info("plaintext request for a session made over TLS", "sid", s.LogID(), "remote", r.RemoteAddr)
		setOutcome(w, "refused")
		writeResponse(w, http.StatusOK, s.Params.ContentType, seeOtherURI(r))
		return
	}
	w.session, w.rid = s, b.rid // for recoverPanic
	if h.testPanic != nil {
		h.testPanic("session")
	}
	if err != nil {
		// A malformed request ends its session (XEP-0124 §6).
		h.log.Info("bad request ends session", "sid", s.LogID(), "err", err)
		resp := s.Fail(b.rid, session.BadRequest)
		setOutcome(w, responseOutcome(resp))
		writeResponse(w, h.status(s, resp), s.Params.ContentType, resp)
		return
	}
	var (
		resp   *session.Response
		sent   func()
		parked bool
	)
	if isAddStream(s, b) {
		resp, sent, err = h.addStream(r.Context(), s, b)
	} else {
		resp, sent, parked, err = h.handle(w, r, s, session.Request{
			RID:       b.rid,
			Payload:   b.payload,
			Restart:   b.restart,
			Terminate: b.typ == session.TypeTerminate,
			Pause:     h.pause(b.pause),
			Ack:       parseAck(b.ack),
			Key:       b.key,
			NewKey:    b.newkey,
			Stream:    streamOf(s, b),
		})
	}
	if parked {
		return
	}
	defer sent()
	if err != nil {
		return // the client went away; the response, if any, is cached
	}
	setOutcome(w, responseOutcome(resp))
	writeResponse(w, h.status(s, resp), s.Params.ContentType, resp)
	// On the wire before the session hands out the next answer (XEP-0124 §8).
	http.NewResponseController(w).Flush()
}

// status is the HTTP status of resp: 200, except for some terminal
// conditions sent to legacy clients (XEP-0124 §17.1).
func (h *Handler) status(s *session.Session, resp *session.Response) int {
	if s.Params.Legacy && resp.Type == session.TypeTerminate {
		return legacyStatus(resp.Condition)
	}
	return http.StatusOK
}

// pause returns how long a pause request asks for, bounded by max_pause
// (XEP-0124 §10); zero when pause is off (XEP-0124 §10) or the value is not a
// number of seconds.
func (h *Handler) pause(value string) time.Duration {
	if value == "" || h.cfg.MaxPause <= 0 {
		return 0
	}
	secs, err := strconv.ParseUint(value, 10, 32)
	if err != nil {
		return 0
	}
	return min(time.Duration(secs)*time.Second, h.cfg.MaxPause)
}

// refuse answers a request with a terminal condition: HTTP 200 and a
// terminate body (XEP-0124 §17.1), or the legacy status code for clients that
// sent no ver (XEP-0124 §17.1).
func (h *Handler) refuse(w http.ResponseWriter, contentType string, legacy bool, err error) {
	cond := session.UndefinedCondition
	var re *requestError
	if errors.As(err, &re) {
		cond = re.cond
	}
	status := http.StatusOK
	if legacy {
		status = legacyStatus(cond)
	}
	setOutcome(w, "refused")
	writeResponse(w, status, contentType, &session.Response{Type: session.TypeTerminate, Condition: cond})
}
