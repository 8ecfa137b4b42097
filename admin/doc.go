// Package admin serves boshd's operator endpoints, meant for a listener
// of their own that only operators reach:
//
//	/metrics   Prometheus metrics
//	/healthz   200 while the process runs (liveness)
//	/readyz    200 when the BOSH listener is up and the upstreams accept
//	           connections, 503 with the reasons otherwise (readiness)
//	/          a small HTML status page: sessions, held requests, queues,
//	           uptime and version
package admin
