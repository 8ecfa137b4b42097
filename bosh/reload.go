package bosh

import (
	"fmt"

	"github.com/boshd/boshd/config"
	"github.com/boshd/boshd/session"
)

// Reload applies a new configuration to a running handler without
// touching the sessions it serves, as far as it can: the gateway's
// reloadable settings (gateway.Gateway.Reload: the served domains
// (upstreams), route_allow, cors_origins, trusted_proxies, max_sessions
// and max_sessions_per_ip) and the secret of cluster_secret_file, read
// again, take effect at once, and the handler's
// sessions for a domain no longer served end with host-gone (XEP-0124
// §17.2). Other settings need a restart; Reload returns the keys it left
// unchanged, so the caller can say so. cfg is validated first; if it is
// not valid nothing changes.
func (h *Handler) Reload(cfg config.Config) (ignored []string, err error) {
	// The secret is read first, so that a file gone bad changes
	// nothing at all.
	var secret []byte
	if cfg.ClusterSecretFile != "" {
		if secret, err = config.ReadClusterSecret(cfg.ClusterSecretFile); err != nil {
			return nil, fmt.Errorf("config: cluster_secret_file: %w", err)
		}
	}
	before := h.g.Domains()
	if ignored, err = h.g.Reload(cfg); err != nil {
		return nil, err
	}
	h.fwd.setSecret(secret)
	gone := make(map[string]bool)
	var goneList []string
	for _, domain := range before {
		if !h.g.Serves(domain) {
			gone[domain] = true
			goneList = append(goneList, domain)
		}
	}
	if len(gone) > 0 {
		n := h.sessions.EndIf(func(s *session.Session) bool { return gone[s.Params.Domain] }, session.HostGone)
		h.log.Info("domains no longer served", "domains", goneList, "sessions_ended", n)
	}
	return ignored, nil
}
