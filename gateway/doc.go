// Package gateway holds what boshd's client bindings share: BOSH
// (package bosh) and, beside it, XMPP over WebSocket. A Gateway owns the
// validated configuration and the part of it Reload may change (the
// served domains, route_allow, trusted_proxies, cors_origins and the
// session limits); where a client's stream goes (Target) and dialling
// it (Dial); the session limits, counting the sessions of every binding
// against one max_sessions and max_sessions_per_ip, with the client's
// address behind trusted proxies; the check of a WebSocket upgrade's
// Origin; the one netpoll.Poller of the process; the Prometheus metrics;
// whether the server is stopping or draining (drain.go); and XEP-0156
// host-meta.
//
// A binding makes one Gateway with New, or is given one to share, and
// registers its gauges with AddGauges. The package knows nothing of
// BOSH or WebSocket framing: it imports config, xmpp, metrics and
// internal/netpoll only, and no viper or pflag.
package gateway
