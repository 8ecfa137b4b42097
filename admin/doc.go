// Package admin serves boshd's operator endpoints, meant for a listener
// of their own that only operators reach:
//
//	/metrics   Prometheus metrics
//	/healthz   200 while the process runs (liveness)
//	/readyz    200 when the BOSH listener is up, the server is not
//	           draining and the upstreams accept connections, 503 with
//	           the reasons otherwise (readiness)
//	/drain     POST: stop taking new sessions, open ones going on;
//	           DELETE: take them again; GET: the state, as JSON with
//	           the BOSH and WebSocket sessions left
//	           (docs/design/004-cluster.md)
//	/          a small HTML status page: sessions, held requests, queues,
//	           uptime and version
//
// NewAgent serves the same drain state to HAProxy's agent-check on a TCP
// port of its own.
package admin
