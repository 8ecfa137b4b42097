package admin

import (
	"encoding/json"
	"net/http"
)

// drainState is the answer of /drain (docs/design/004-cluster.md, "Drain").
type drainState struct {
	// Draining reports whether the server refuses new sessions.
	Draining bool `json:"draining"`
	// Sessions counts the BOSH sessions still open.
	Sessions int64 `json:"sessions"`
	// WebSocket counts the XMPP over WebSocket sessions still open (0
	// without a WebSocket handler).
	WebSocket int64 `json:"websocket"`
}

// drain serves /drain: GET reports the state, POST starts draining and
// DELETE undoes it, each answering with the state after it. A POST or
// DELETE that carries an Origin header comes from a web page, not an
// operator's tool, and is refused: the admin listener has no other
// protection against a page the operator's browser visits.
func (s *server) drain(w http.ResponseWriter, r *http.Request) {
	g := s.h.Gateway()
	if r.Method != http.MethodGet {
		if r.Header.Get("Origin") != "" {
			http.Error(w, "drain: not from a web page", http.StatusForbidden)
			return
		}
		var changed bool
		if r.Method == http.MethodPost {
			changed = g.Drain()
		} else {
			changed = g.Undrain()
		}
		if changed {
			s.logDrain(r.Method == http.MethodPost, "admin "+r.Method+" /drain from "+r.RemoteAddr)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(s.drainState())
}

// drainState returns the drain state and the sessions left now.
func (s *server) drainState() drainState {
	st := drainState{Draining: s.h.Gateway().Draining(), Sessions: s.h.Stats().Live}
	if s.opts.WebSocket != nil {
		st.WebSocket = s.opts.WebSocket.Stats().Live
	}
	return st
}

// logDrain logs that draining started (on) or ended, and what asked.
func (s *server) logDrain(on bool, by string) {
	st := s.drainState()
	msg := "draining: new sessions refused, open ones go on"
	if !on {
		msg = "draining undone: new sessions admitted"
	}
	s.h.Gateway().Logger().Info(msg, "by", by, "sessions", st.Sessions, "websocket", st.WebSocket)
}
