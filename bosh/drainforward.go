package bosh

import (
	"errors"
	"net/http"
	"time"

	"github.com/boshd/boshd/metrics"
)

// This file forwards a creation that a draining node would refuse to a
// peer that takes it (docs/design/004-cluster.md, "Drain"): a client
// talking to the node directly, with no balancer to retry its creation
// elsewhere, still gets a session, on another node, and its requests
// through the draining node are then forwarded as any other node's
// (forward.go).

// forwardsCreation reports whether the creation request r is forwarded
// to a peer rather than refused: this node drains, is not stopping, has
// peers, and r was not forwarded to it already (a creation is forwarded
// once at most: a draining node refuses with 503 what a peer forwarded,
// and that peer tries its next one).
func (h *Handler) forwardsCreation(r *http.Request) bool {
	return h.g.Draining() && !h.g.Stopping() && len(h.fwd.peers) > 0 && hopOf(r) == nil
}

// forwardCreation sends the creation request r, whose body is data, to
// the peers in turn, starting after the one the previous creation went
// to, and relays the first answer that is not 503 (a peer draining or
// stopping too). A peer that cannot be reached is passed over. When
// every peer refuses or fails, the client gets 503 with Retry-After: 1,
// as from a draining node without peers. data must not be used by the
// caller afterwards (see forward).
func (h *Handler) forwardCreation(w *responseWriter, r *http.Request, data []byte) {
	setOutcome(w, "forwarded")
	names := h.fwd.peerNames()
	first := int(h.fwd.nextCreation.Add(1))
	for i := range names {
		p := h.fwd.peers[names[(first+i)%len(names)]]
		start := time.Now()
		status, header, answer, err := h.send(r, p, "", 0, data)
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
		case outcome == metrics.ForwardGone:
			setOutcome(w, "gone")
			return
		case h.fwd.stopped.Err() != nil:
			h.refuseCreation(w, "shutting down")
			return
		case err != nil:
			h.log.Info("creation not forwarded while draining", "peer", p.name, "outcome", outcome, "err", err)
			continue
		case status == http.StatusServiceUnavailable:
			h.log.Debug("peer refused a creation forwarded while draining", "peer", p.name)
			continue
		}
		h.log.Debug("creation forwarded while draining", "peer", p.name, "status", status)
		ct := header.Get("Content-Type")
		if ct == "" {
			ct = defaultContentType
		}
		writeBody(w, status, ct, answer)
		http.NewResponseController(w).Flush()
		return
	}
	h.refuseCreation(w, "draining: no new sessions here or at any peer, retry")
}

// refuseCreation answers a creation with 503 and Retry-After: 1, an HTTP
// error rather than a terminate body, so that a balancer (retry-on 503)
// or the client tries again.
func (h *Handler) refuseCreation(w http.ResponseWriter, msg string) {
	w.Header().Set("Retry-After", "1")
	setOutcome(w, "refused")
	http.Error(w, msg, http.StatusServiceUnavailable)
}
