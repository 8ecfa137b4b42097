package bosh

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"time"

	"github.com/boshd/boshd/session"
)

// readyTimeout bounds one readiness probe of an upstream.
const readyTimeout = 2 * time.Second

// Ready reports whether the handler can serve: it is not shutting down and
// every upstream with a configured address accepts TCP connections. It
// opens and closes one connection per upstream, so callers should not
// call it more than every few seconds. Upstreams found through DNS SRV are
// not probed.
func (h *Handler) Ready(ctx context.Context) error {
	if h.stopping.Load() {
		return errors.New("shutting down")
	}
	var errs []error
	var d net.Dialer
	upstreams := h.dyn.Load().upstreams
	for _, domain := range slices.Sorted(maps.Keys(upstreams)) {
		addr := upstreams[domain]
		if addr == "" {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, readyTimeout)
		conn, err := d.DialContext(cctx, "tcp", addr)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("upstream %s at %s: %w", domain, addr, err))
			continue
		}
		conn.Close()
	}
	return errors.Join(errs...)
}

// Stats returns counts of the handler's sessions.
func (h *Handler) Stats() session.Stats { return h.sessions.Stats() }
