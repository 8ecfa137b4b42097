package metrics

import "github.com/prometheus/client_golang/prometheus"

// Outcomes of Forwarded, the label outcome of
// boshd_forwarded_requests_total (docs/design/004-cluster.md,
// "Forwarding").
const (
	// ForwardOK: the owner answered, and its answer was relayed.
	ForwardOK = "ok"
	// ForwardUnreachable: the peer did not take the connection in time,
	// or refused it; the client got item-not-found.
	ForwardUnreachable = "unreachable"
	// ForwardError: the peer failed after the connection was made (no
	// answer in time, a broken answer, the signature refused); the
	// client got item-not-found.
	ForwardError = "error"
	// ForwardGone: the client went away while its request was forwarded.
	ForwardGone = "gone"
	// ForwardRefused: a request received as forwarded was refused, its
	// signature or timestamp wrong, counted by the receiving node.
	ForwardRefused = "refused"
)

// forward are the metrics of forwarding between the nodes of a cluster.
type forward struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newForward() *forward {
	return &forward{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "boshd_forwarded_requests_total", Help: "BOSH requests forwarded to the node owning their session, by peer and outcome: ok, unreachable, error or gone (the client left); and, on the receiving node, refused (a bad signature or timestamp).",
		}, []string{"peer", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "boshd_forward_duration_seconds", Help: "Time from forwarding a BOSH request to a peer to having its answer, holding included, by peer.", Buckets: latencyBuckets,
		}, []string{"peer"}),
	}
}

func (f *forward) collectors() []prometheus.Collector {
	return []prometheus.Collector{f.requests, f.duration}
}

// ForwardPeers shows the forwarding metrics of each peer at zero before
// its first request, for rates and alerts to start from.
func (m *Metrics) ForwardPeers(peers []string) {
	for _, p := range peers {
		for _, o := range []string{ForwardOK, ForwardUnreachable, ForwardError, ForwardGone} {
			m.forward.requests.WithLabelValues(p, o)
		}
	}
}

// Forwarded counts a request forwarded to peer with its outcome, and
// observes how long the peer took, in seconds.
func (m *Metrics) Forwarded(peer, outcome string, seconds float64) {
	m.forward.requests.WithLabelValues(peer, outcome).Inc()
	m.forward.duration.WithLabelValues(peer).Observe(seconds)
}

// ForwardRefused counts a request received as forwarded from peer and
// refused. peer must be a name of a bounded set (a configured peer, or
// one word for any other), never what the request claimed.
func (m *Metrics) ForwardRefused(peer string) {
	m.forward.requests.WithLabelValues(peer, ForwardRefused).Inc()
}
