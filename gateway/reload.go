package gateway

import (
	"fmt"
	"maps"
	"reflect"
	"slices"

	"github.com/boshd/boshd/config"
)

// dynamic is the part of the configuration Reload can change while
// sessions run. A value is never modified: Reload swaps in a new one.
type dynamic struct {
	upstreams map[string]string // served domain → host:port ("" for SRV)
	routes    map[string]string // allowed route value → host:port
	cors      CORS              // cors_origins
	proxies   proxyList         // trusted_proxies
}

func newDynamic(cfg config.Config) (*dynamic, error) {
	d := &dynamic{
		upstreams: maps.Clone(cfg.Upstreams),
		routes:    make(map[string]string),
		cors:      newCORS(cfg.CORSOrigins),
	}
	var err error
	if d.proxies, err = parseProxies(cfg.TrustedProxies); err != nil {
		return nil, fmt.Errorf("gateway: trusted_proxies: %w", err)
	}
	for _, r := range cfg.RouteAllow {
		addr, err := routeAddr(r)
		if err != nil {
			return nil, fmt.Errorf("gateway: route_allow: %w", err)
		}
		d.routes[r] = addr
	}
	return d, nil
}

// Reload applies a new configuration without touching the sessions the
// bindings hold: the served domains (upstreams), route_allow,
// cors_origins, trusted_proxies, max_sessions and max_sessions_per_ip
// take effect at once. Ending the sessions of a domain no longer served
// is each binding's part (see Serves). Other settings need a restart;
// Reload returns the keys it left unchanged, so the caller can say so.
// cfg is validated first; if it is not valid nothing changes.
func (g *Gateway) Reload(cfg config.Config) (ignored []string, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	dyn, err := newDynamic(cfg)
	if err != nil {
		return nil, err
	}
	g.dyn.Store(dyn)
	g.limits.set(cfg.MaxSessions, cfg.MaxSessionsPerIP)
	return restartOnly(g.cfg, cfg), nil
}

// Domains returns the served domains in force, sorted.
func (g *Gateway) Domains() []string {
	return slices.Sorted(maps.Keys(g.dyn.Load().upstreams))
}

// Serves reports whether domain is a served domain in force.
func (g *Gateway) Serves(domain string) bool {
	_, ok := g.dyn.Load().upstreams[domain]
	return ok
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
