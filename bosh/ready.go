package bosh

import (
	"context"

	"github.com/boshd/boshd/session"
)

// Ready reports whether the handler can serve: gateway.Gateway.Ready, which
// fails while shutting down or if an upstream with a configured address
// does not accept TCP connections. It opens and closes one connection per
// upstream, so callers should not call it more than every few seconds.
func (h *Handler) Ready(ctx context.Context) error { return h.g.Ready(ctx) }

// Stats returns counts of the handler's sessions.
func (h *Handler) Stats() session.Stats { return h.sessions.Stats() }
