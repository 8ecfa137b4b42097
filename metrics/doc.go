// Package metrics holds the Prometheus metrics of a boshd server: client
// connections, sessions, requests, held requests and queues, latencies,
// upstream connections and bytes. Each Metrics has its own prometheus.Registry, so several servers
// (or tests) in one process do not share counters.
package metrics
