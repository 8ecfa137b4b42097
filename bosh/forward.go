package bosh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/boshd/boshd/config"
	"github.com/boshd/boshd/metrics"
	"github.com/boshd/boshd/session"
)

// This file forwards a request whose sid names another node of a cluster
// to that node, and relays its answer (docs/design/004-cluster.md,
// "Forwarding"): the fallback for a load balancer that does not route on
// the sid. The hop's headers and their signature are in hop.go.

const (
	// peerConnectTimeout bounds connecting to a peer: a node that does
	// not take the connection by then is taken as down, and the client
	// told item-not-found at once rather than left hanging.
	peerConnectTimeout = time.Second
	// forwardSlack is how much longer than max_wait a forwarded request
	// may take: the owner holds it for at most max_wait.
	forwardSlack = 10 * time.Second
	// maxIdlePeerConns bounds the idle connections kept to one peer.
	// Each held forwarded request has one of its own; they are reused
	// when answered.
	maxIdlePeerConns = 1024
)

// forwarder is a node's side of forwarding: its name, its peers and the
// cluster's secret. A Handler without node_id has one with no peers,
// which forwards nothing and refuses every hop.
type forwarder struct {
	node  string           // immutable; this node's node_id, "" for none
	path  string           // immutable; the path BOSH is served at, on every node
	peers map[string]*peer // immutable; by node_id
	// secret is the cluster's secret, nil for none. Reload replaces it.
	secret atomic.Pointer[[]byte]
	// timeout bounds a forwarded request, holding included; maxAnswer
	// bounds the answer read from a peer. Immutable.
	timeout   time.Duration
	maxAnswer int64
	// now is time.Now, or a test's clock; immutable.
	now func() time.Time
	// nextCreation turns the peer a draining node forwards a creation
	// to first (drainforward.go).
	nextCreation atomic.Uint32
	// stop ends the requests being forwarded when the handler shuts
	// down; stopped is its context.
	stopped context.Context
	stop    context.CancelFunc
}

// A peer is another node of the cluster, as forwarding reaches it.
type peer struct {
	name   string       // its node_id; immutable
	url    string       // where its BOSH is: http://HOST:PORT/PATH; immutable
	client *http.Client // its own pooled keep-alive connections; immutable
	// as is, for the predecessor or successor of a live upgrade (a
	// process reached over its handoff socket, handoff.go), what this
	// process is to it; "" for a node of the cluster. Immutable.
	as string
}

// newForwarder returns the forwarder of a node configured by cfg, which
// has been validated; secret is the content of cfg.ClusterSecretFile, or
// nil.
func newForwarder(cfg config.Config, secret []byte) *forwarder {
	f := &forwarder{
		node:      cfg.NodeID,
		path:      cfg.Path,
		peers:     make(map[string]*peer),
		timeout:   cfg.MaxWait + forwardSlack,
		maxAnswer: 2*cfg.MaxQueueBytes + 64<<10,
		now:       time.Now,
	}
	f.stopped, f.stop = context.WithCancel(context.Background())
	if secret != nil {
		f.secret.Store(&secret)
	}
	for name, addr := range cfg.Peers {
		f.peers[name] = newPeer(name, addr, cfg)
	}
	return f
}

// newPeer returns the peer name at addr (HOST:PORT).
func newPeer(name, addr string, cfg config.Config) *peer {
	return newPeerDialing(name, "tcp", addr, "http://"+addr+cfg.Path, cfg)
}

// newPeerDialing returns the peer name reached at url through a
// connection to address on network, whatever url's host says.
func newPeerDialing(name, network, address, url string, cfg config.Config) *peer {
	dialer := &net.Dialer{Timeout: peerConnectTimeout, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, address)
			if err != nil {
				return nil, &dialError{err}
			}
			return c, nil
		},
		// The owner answers with BOSH bodies, relayed as they are;
		// compressing them is the hop to the client's business.
		DisableCompression:  true,
		MaxIdleConnsPerHost: maxIdlePeerConns,
		// Below the owner's own idle timeout (max_wait + 30 s in
		// cmd/boshd), so that this side closes an idle connection
		// first, rarely sending on one the owner is closing.
		IdleConnTimeout:       cfg.MaxWait,
		ResponseHeaderTimeout: cfg.MaxWait + forwardSlack,
		// Plain HTTP/1.1 on a private network: no proxy from the
		// environment, no HTTP/2.
		Proxy: nil,
	}
	return &peer{
		name:   name,
		url:    url,
		client: &http.Client{Transport: t, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}
}

// dialError is the error of a connection to a peer not made.
type dialError struct{ err error }

func (e *dialError) Error() string { return "connecting: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// setSecret replaces the cluster's secret; nil removes it.
func (f *forwarder) setSecret(secret []byte) {
	if secret == nil {
		f.secret.Store(nil)
		return
	}
	f.secret.Store(&secret)
}

// secretNow returns the cluster's secret in force, or nil.
func (f *forwarder) secretNow() []byte {
	if p := f.secret.Load(); p != nil {
		return *p
	}
	return nil
}

// peerNames returns the names of the peers, sorted.
func (f *forwarder) peerNames() []string { return slices.Sorted(maps.Keys(f.peers)) }

// label returns the name a request received from the node named from is
// counted under: that name if it is a peer's, else "unknown", so that
// what a request claims never makes a metric series.
func (f *forwarder) label(from string) string {
	if _, ok := f.peers[from]; ok {
		return from
	}
	return "unknown"
}

// owner returns the node that holds the session sid, if it is another
// one than this node: "" when sid is this node's, or when this node has
// no node_id (a single node forwards nothing).
func (f *forwarder) owner(sid string) string {
	if f.node == "" {
		return ""
	}
	if node := NodeOf(sid); node != "" && node != f.node {
		return node
	}
	return ""
}

// close ends the requests being forwarded and the idle connections to
// the peers.
func (f *forwarder) close() {
	f.stop()
	for _, p := range f.peers {
		p.client.CloseIdleConnections()
	}
}

// receive checks the hop headers of r, whose body is data, if it has any.
// It returns r as it is for a request from a client; r carrying its hop
// (hopOf) for a request forwarded by a peer; or false, having answered
// 403, for a request whose hop does not check out, which is never served.
func (h *Handler) receive(w *responseWriter, r *http.Request, data []byte) (*http.Request, bool) {
	handoff := viaHandoff(r)
	if !isHop(r.Header) && !handoff {
		return r, true
	}
	var hp *hop
	var err error
	if handoff {
		hp, err = readHandoffHop(r.Header)
	} else {
		hp, err = checkHop(r.Header, h.fwd.secretNow(), h.fwd.now(), data)
	}
	if err != nil {
		from := r.Header.Get(hopFrom)
		h.metrics.ForwardRefused(h.fwd.label(from))
		h.log.Warn("forwarded request refused", "err", err, "from", h.fwd.label(from), "remote", r.RemoteAddr)
		setOutcome(w, "refused")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, "forwarded request refused\n")
		return r, false
	}
	return withHop(r, hp), true
}

// forward serves a request of the session sid that node holds, whose
// body is data: it sends it to node and relays the answer, or answers
// item-not-found when node is not a peer, does not answer or fails,
// and when the request was forwarded to this node already (never
// twice). rid is the request's, for the peer's transport to resend it
// on a connection found closed before any answer (XEP-0124 §14.3 makes a
// resend harmless). data must not be used by the caller afterwards: the
// transport may still read it after forward returns.
func (h *Handler) forward(w *responseWriter, r *http.Request, node, sid string, rid uint64, data []byte) {
	setOutcome(w, "forwarded")
	if hp := hopOf(r); hp != nil {
		h.log.Warn("forwarded request for a session of another node: not forwarded again", "node", node, "from", hp.from)
		h.refuse(w, defaultContentType, false, &requestError{cond: session.ItemNotFound, msg: "session of another node"})
		return
	}
	p := h.fwd.peers[node]
	if p == nil {
		h.log.Info("sid of an unknown node", "node", node, "remote", r.RemoteAddr)
		h.refuse(w, defaultContentType, false, &requestError{cond: session.ItemNotFound, msg: "unknown node"})
		return
	}
	h.relay(w, r, p, sid, rid, data)
}

// relay sends a request of the session sid, whose body is data, to p and
// writes p's answer; or, when p does not answer or fails, item-not-found
// (503 when this process stops). data must not be used by the caller
// afterwards.
func (h *Handler) relay(w *responseWriter, r *http.Request, p *peer, sid string, rid uint64, data []byte) {
	setOutcome(w, "forwarded")
	start := time.Now()
	status, header, answer, err := h.send(r, p, sid, rid, data)
	// Nodes reloaded together with a new secret take it a moment apart:
	// a request signed here with one may reach the peer when it has the
	// other. It is signed and sent again, a few times over a second or
	// two, before its client is told.
	for _, pause := range []time.Duration{100 * time.Millisecond, 400 * time.Millisecond, time.Second} {
		if !errors.Is(err, errSignatureRefused) || !h.pauseForward(r.Context(), pause) {
			break
		}
		status, header, answer, err = h.send(r, p, sid, rid, data)
	}
	outcome := metrics.ForwardOK
	switch {
	case err == nil:
	case r.Context().Err() != nil:
		outcome = metrics.ForwardGone
	case h.fwd.stopped.Err() != nil:
		outcome = metrics.ForwardError
	case errors.As(err, new(*dialError)):
		outcome = metrics.ForwardUnreachable
	default:
		outcome = metrics.ForwardError
	}
	h.metrics.Forwarded(p.name, outcome, time.Since(start).Seconds())
	switch {
	case err == nil:
	case outcome == metrics.ForwardGone:
		setOutcome(w, "gone")
		return
	case h.fwd.stopped.Err() != nil:
		// This node stops; the owner still holds the session. The
		// client is told to try again, through another node.
		w.Header().Set("Retry-After", "1")
		w.Header().Set("Connection", "close")
		setOutcome(w, "error")
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	default:
		h.log.Warn("forwarding failed", "peer", p.name, "outcome", outcome, "err", err)
		h.refuse(w, defaultContentType, false, &requestError{cond: session.ItemNotFound, msg: "node " + outcome})
		return
	}
	if ct := header.Get("Content-Type"); ct != "" {
		writeBody(w, status, ct, answer)
	} else {
		writeBody(w, status, defaultContentType, answer)
	}
	http.NewResponseController(w).Flush()
}

// send forwards r, whose body is data, to p, signed, and returns p's
// answer: its status, headers and body. A status of 403 is an error: p
// refused the signature.
func (h *Handler) send(r *http.Request, p *peer, sid string, rid uint64, data []byte) (int, http.Header, []byte, error) {
	ctx, cancel := context.WithTimeout(r.Context(), h.fwd.timeout)
	defer cancel()
	stop := context.AfterFunc(h.fwd.stopped, cancel)
	defer stop()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(data))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Host = r.Host
	if ct := r.Header.Get("Content-Type"); ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	// A resend of the same rid is answered from the owner's cache
	// (XEP-0124 §14.3): net/http may send it again on a new connection
	// when a kept-alive one turns out closed before any answer. A
	// creation (no sid) is not resent: it would make a second session.
	if sid != "" {
		req.Header.Set("Idempotency-Key", sid+" "+strconv.FormatUint(rid, 10))
	}
	client, _ := h.clientIP(r)
	hp := &hop{from: h.fwd.node, client: client, xff: strings.Join(r.Header.Values("X-Forwarded-For"), ", "), tls: h.overTLS(r)}
	if prev := hopOf(r); prev != nil {
		hp.xff = prev.xff
	}
	if p.as != "" {
		// Over a handoff socket, which only this user reaches.
		hp.from = p.as
		setHop(req.Header, hp)
	} else {
		signHop(req.Header, h.fwd.secretNow(), hp, h.fwd.now(), data)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, h.fwd.maxAnswer+1))
	switch {
	case err != nil:
		return 0, nil, nil, fmt.Errorf("reading the answer: %w", err)
	case int64(len(body)) > h.fwd.maxAnswer:
		return 0, nil, nil, fmt.Errorf("answer over %d bytes", h.fwd.maxAnswer)
	case resp.StatusCode == http.StatusForbidden:
		return 0, nil, nil, errSignatureRefused
	}
	return resp.StatusCode, resp.Header, body, nil
}

// errSignatureRefused is send's error when the peer answered 403: it
// refused the hop's signature.
var errSignatureRefused = errors.New("the peer refused the signature: is cluster_secret_file the same on both nodes, their clocks within 30s?")

// pauseForward waits d before a forwarded request is sent again, and
// reports false if its client left or this node stops meanwhile.
func (h *Handler) pauseForward(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-h.fwd.stopped.Done():
	}
	return false
}

// clientIP returns the client address of r for limits and logs: the one
// the forwarding node resolved for a forwarded request, else the
// gateway's (gateway.Gateway.ClientIP).
func (h *Handler) clientIP(r *http.Request) (ip string, forwardIgnored bool) {
	if hp := hopOf(r); hp != nil {
		return hp.client, false
	}
	return h.g.ClientIP(r)
}

// overTLS reports whether the client's request came over TLS: to the
// forwarding node for a forwarded request, else to this one.
func (h *Handler) overTLS(r *http.Request) bool {
	if hp := hopOf(r); hp != nil {
		return hp.tls
	}
	return r.TLS != nil
}
