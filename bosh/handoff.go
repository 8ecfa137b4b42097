package bosh

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"

	"github.com/boshd/boshd/session"
)

// This file forwards requests between the processes of a live upgrade
// (docs/design/005-live-upgrade.md): the old process (the predecessor)
// goes on serving the sessions it holds while the new one (its
// successor) accepts new connections. Each serves the other's requests
// through the other's handoff socket, a Unix socket in a private
// directory (internal/handoff), with the hop's headers unsigned: only
// this user can reach the socket.
//
// A request for a sid a process does not hold goes, once, one way along
// the line of processes: towards the newer ones while there are any
// (a request on a connection opened to an old process, for a session made
// since), then back towards the older ones (a request on a new
// connection for a session an old process holds), and never forwards
// again once it has turned. So it visits each process at most twice and
// never loops.

// The roles of a hop between the processes of an upgrade, in hopFrom:
// what the sending process is to the receiving one.
const (
	asPredecessor = "predecessor"
	asSuccessor   = "successor"
	// asMover is a predecessor sending back a request for a session it
	// has moved to the receiver (move.go): the receiver holds it, or it
	// has ended; either way the request goes no further.
	asMover = "mover"
)

// relatives are the processes before and after this one, when an
// upgrade is under way or the old process still serves sessions.
type relatives struct {
	pred atomic.Pointer[peer] // nil when there is none, or it exited
	succ atomic.Pointer[peer] // nil until this process hands over
	// mover is succ, reached as asMover.
	mover atomic.Pointer[peer]
}

// handoffKey marks, in a request's context, that it came over this
// process's handoff socket (HandoffHandler).
type handoffKey struct{}

// viaHandoff reports whether r came over the handoff socket.
func viaHandoff(r *http.Request) bool { return r.Context().Value(handoffKey{}) != nil }

// SetPredecessor makes h forward a request for a session it does not
// hold to the process it took over from, at the handoff socket socket
// (an absolute path); "" stops it, once that process has exited.
func (h *Handler) SetPredecessor(socket string) {
	h.rel.pred.Store(h.handoffPeer(asPredecessor, asSuccessor, socket))
}

// SetSuccessor makes h forward a request for a session it does not hold
// to the process it has handed over to, at its handoff socket; "" stops
// it.
func (h *Handler) SetSuccessor(socket string) {
	h.rel.succ.Store(h.handoffPeer(asSuccessor, asPredecessor, socket))
	h.rel.mover.Store(h.handoffPeer(asSuccessor, asMover, socket))
}

// handoffPeer returns the relative name reached at socket, to which this
// process is as, or nil for no socket.
func (h *Handler) handoffPeer(name, as, socket string) *peer {
	if socket == "" {
		return nil
	}
	p := newPeerDialing(name, "unix", socket, "http://boshd-handoff"+h.cfg.Path, h.cfg)
	p.as = as
	return p
}

// HandoffHandler returns the handler of this process's handoff socket:
// h, for requests its predecessor or successor forwards to it, and only
// for those (a request without the hop's headers is refused with 403).
// Serve it on the socket's listener, never on a network one.
func (h *Handler) HandoffHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), handoffKey{}, true)))
	})
}

// relative returns where a request r for a session this process does
// not hold goes, or nil: nowhere, item-not-found.
func (h *Handler) relative(r *http.Request) *peer {
	pred, succ := h.rel.pred.Load(), h.rel.succ.Load()
	from := ""
	if hp := hopOf(r); hp != nil && viaHandoff(r) {
		from = hp.from
	}
	switch {
	case from == asMover:
		// Sent back by the process that moved the session here.
		return nil
	case from == asSuccessor:
		// On its way back: older processes only.
		return pred
	case succ != nil:
		// From a client, a node, or on its way forward.
		return succ
	default:
		// The newest process: back, where it may have come from.
		return pred
	}
}

// relativeFor is relative for a request for sid, which this process
// does not hold: a request on its way back for a session this process
// has moved to the new one goes to it once more, marked so that it goes
// no further.
func (h *Handler) relativeFor(r *http.Request, sid string) *peer {
	if hp := hopOf(r); hp != nil && viaHandoff(r) && hp.from == asSuccessor {
		if _, moved := h.moved.Load(sid); moved {
			return h.rel.mover.Load()
		}
	}
	return h.relative(r)
}

// The outcomes of enter.
const (
	entered    = iota // in the session: Leave once held or answered
	enterGone         // the client went away while the session was frozen
	enterMoved        // the session has moved to the new process
)

// enter lets a request into s (session.Session.Enter), waiting while s
// is frozen for a move to the new process of a live upgrade.
func (h *Handler) enter(ctx context.Context, s *session.Session) int {
	for {
		ok, thawed := s.Enter()
		if ok {
			return entered
		}
		select {
		case <-thawed:
		case <-ctx.Done():
			return enterGone
		}
		if s.MovedAway() {
			return enterMoved
		}
	}
}

// setHop sets the hop's headers, unsigned, on a request forwarded to a
// relative.
func setHop(header http.Header, h *hop) {
	header.Set(hopFrom, h.from)
	header.Set(hopFor, h.client)
	proto := "http"
	if h.tls {
		proto = "https"
	}
	header.Set(hopProto, proto)
	if h.xff != "" {
		header.Set("X-Forwarded-For", h.xff)
	}
}

// readHandoffHop returns the hop of a request forwarded by a relative.
func readHandoffHop(header http.Header) (*hop, error) {
	hp := &hop{from: header.Get(hopFrom), xff: strings.Join(header.Values("X-Forwarded-For"), ", ")}
	if hp.from != asPredecessor && hp.from != asSuccessor && hp.from != asMover {
		return nil, fmt.Errorf("%s: want %s, %s or %s, got %q", hopFrom, asPredecessor, asSuccessor, asMover, hp.from)
	}
	a, err := netip.ParseAddr(header.Get(hopFor))
	if err != nil {
		return nil, fmt.Errorf("%s: not an IP address: %q", hopFor, header.Get(hopFor))
	}
	hp.client = a.Unmap().String()
	switch proto := header.Get(hopProto); proto {
	case "http":
	case "https":
		hp.tls = true
	default:
		return nil, fmt.Errorf("%s: want http or https, got %q", hopProto, proto)
	}
	return hp, nil
}
