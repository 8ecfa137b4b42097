package bosh

import (
	"fmt"
	"maps"
	"reflect"
	"slices"

	"github.com/boshd/boshd/config"
	"github.com/boshd/boshd/session"
)

// dynamic is the part of the configuration Reload can change while
// sessions run. A value is never modified: Reload swaps in a new one.
type dynamic struct {
	upstreams map[string]string // served domain → host:port ("" for SRV)
	routes    map[string]string // allowed route value → host:port
	cors      corsPolicy
	proxies   proxyList // trusted_proxies
}

func newDynamic(cfg config.Config) (*dynamic, error) {
	d := &dynamic{
		upstreams: maps.Clone(cfg.Upstreams),
		routes:    make(map[string]string),
		cors:      newCORSPolicy(cfg.CORSOrigins),
	}
	var err error
	if d.proxies, err = parseProxies(cfg.TrustedProxies); err != nil {
		return nil, fmt.Errorf("bosh: trusted_proxies: %w", err)
	}
	for _, r := range cfg.RouteAllow {
		addr, err := routeAddr(r)
		if err != nil {
			return nil, fmt.Errorf("bosh: route_allow: %w", err)
		}
		d.routes[r] = addr
	}
	return d, nil
}

// Reload applies a new configuration to a running handler without
// touching the sessions it serves, as far as it can: the served domains
// (upstreams), route_allow, cors_origins, trusted_proxies, max_sessions
// and max_sessions_per_ip take effect at once. Sessions for a domain no
// longer served end with host-gone (XEP-0124 §17.2). Other settings need
// a restart; Reload returns the keys it left unchanged, so the caller can
// say so. cfg is validated first; if it is not valid nothing changes.
func (h *Handler) Reload(cfg config.Config) (ignored []string, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	dyn, err := newDynamic(cfg)
	if err != nil {
		return nil, err
	}
	old := h.dyn.Swap(dyn)
	h.limits.set(cfg.MaxSessions, cfg.MaxSessionsPerIP)

	gone := make(map[string]bool)
	for domain := range old.upstreams {
		if _, ok := dyn.upstreams[domain]; !ok {
			gone[domain] = true
		}
	}
	if len(gone) > 0 {
		n := h.sessions.EndIf(func(s *session.Session) bool { return gone[s.Params.Domain] }, session.HostGone)
		h.log.Info("domains no longer served", "domains", slices.Sorted(maps.Keys(gone)), "sessions_ended", n)
	}
	return restartOnly(h.cfg, cfg), nil
}

// restartOnly lists the keys that differ between a and b but only take
// effect at a restart: those config.Settings does not mark Reloadable.
func restartOnly(a, b config.Config) []string {
	var keys []string
	for _, s := range config.Settings() {
		if !s.Reloadable && !reflect.DeepEqual(s.Value(a), s.Value(b)) {
			keys = append(keys, s.Key)
		}
	}
	return keys
}
