package admin

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/boshd/boshd/bosh"
)

// The words the agent answers, as HAProxy's agent-check reads them
// (HAProxy configuration manual, "agent-check"). "ready" cancels a drain
// the agent announced before: "up" alone leaves a server HAProxy was told
// to drain in DRAIN.
const (
	agentUp    = "up ready\n"
	agentDrain = "drain\n"
	agentDown  = "down\n"
)

// agentWriteTimeout bounds writing the answer to one agent connection.
const agentWriteTimeout = time.Second

// An Agent answers HAProxy's agent-check for one server
// (docs/design/004-cluster.md, "Drain"): on each TCP connection it
// writes one line, "up ready" while the server takes new sessions,
// "drain" while it drains, "down" while it stops or its BOSH listener
// does not accept requests, and closes the connection. It reads
// nothing. Create one with NewAgent.
type Agent struct {
	h    *bosh.Handler // immutable
	opts Options       // immutable; Listening is the one field used
}

// NewAgent returns the agent of h's server; opts.Listening, if not nil,
// says whether its BOSH listener accepts requests.
func NewAgent(h *bosh.Handler, opts Options) *Agent { return &Agent{h: h, opts: opts} }

// State returns the line the agent answers now.
func (a *Agent) State() string {
	g := a.h.Gateway()
	switch {
	case g.Stopping(), a.opts.Listening != nil && !a.opts.Listening():
		return agentDown
	case g.Draining():
		return agentDrain
	}
	return agentUp
}

// Serve answers the connections ln accepts until ctx ends, then closes ln
// and returns nil; it returns the error of an accept that fails for good
// (ln closed by someone else, say). Each connection is answered and
// closed in Serve's goroutine: one short write, bounded by a deadline.
func (a *Agent) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if isTemporary(err) {
				// Out of file descriptors, say: wait, as net/http does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				a.h.Gateway().Logger().Warn("agent: accept failed, retrying", "err", err, "in", backoff)
				select {
				case <-time.After(backoff):
				case <-ctx.Done():
					return nil
				}
				continue
			}
			return err
		}
		backoff = 0
		conn.SetWriteDeadline(time.Now().Add(agentWriteTimeout))
		conn.Write([]byte(a.State()))
		conn.Close()
	}
}

// isTemporary reports whether an accept error may go away by itself.
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}
