package main

import (
	"context"
	"time"
)

// loadSession is one session of the load, over either transport: a BOSH
// session (client) or an XMPP over WebSocket connection (wsClient). Each
// is driven by the one goroutine the runner starts for it, which calls
// setup, then one of idle, chat or poll, then close.
type loadSession interface {
	// setup opens the session and, with --login, authenticates, binds
	// a resource and starts the session (phases create and login).
	setup(ctx context.Context) error
	// idle keeps the session open, counting what the server pushes,
	// until loadCtx ends; then it ends the session cleanly if terminate
	// is set, within runCtx. It reports whether it did, and the failure
	// that ended the session early, if any.
	idle(loadCtx, runCtx context.Context, terminate bool) (terminated bool, err error)
	// chat exchanges numbered messages with the partner session from
	// h.start to h.stopAt (see chat.go), then ends as idle does.
	chat(loadCtx, runCtx context.Context, h *hub, terminate bool) (terminated bool, err error)
	// poll sends empty requests back to back (BOSH only: --poll is
	// refused with --transport websocket).
	poll(loadCtx, runCtx context.Context, h *hub, terminate bool) (terminated bool, err error)
	// hooks returns the runner's callbacks, set before setup.
	hooks() *sessionHooks
	// terminateLatency is how long the clean end took, once it did.
	terminateLatency() time.Duration
	// close releases the session's connections.
	close()
}

// sessionHooks are what a session of either transport reports to the
// runner. The runner sets them before setup; they never change after.
type sessionHooks struct {
	// onHeld and onReleased are called when a session starts and stops
	// waiting for the server in its idle or chat phase: a BOSH request
	// held, or a WebSocket connection being read.
	onHeld, onReleased func()
	// onStanzas is called with the number of stanzas in each response
	// (BOSH) or message (WebSocket, always 1).
	onStanzas func(n int)
	// onResends, if set, is called as a BOSH session closes (or logs in
	// again) with the requests it sent again on a new connection, the
	// kept-alive one having been closed by the server before answering.
	onResends func(n int64)
	// endSlots, shared by all sessions, bounds how many clean ends
	// (terminate requests, <close/>) are in flight at once; nil: no
	// bound.
	endSlots chan struct{}
}

// hooks returns h itself, so that a type embedding sessionHooks has
// loadSession's hooks method.
func (h *sessionHooks) hooks() *sessionHooks { return h }

// newSession returns session index i (from 1) over cfg's transport,
// dialling with dial.
func newSession(cfg *config, i int, dial dialFunc) loadSession {
	if cfg.transport == transportWebSocket {
		return newWSClient(cfg, i, dial)
	}
	return newClient(cfg, i, dial)
}
