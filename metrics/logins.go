package metrics

import "github.com/prometheus/client_golang/prometheus"

// logins are the metrics of the gate pacing SASL logins to the XMPP
// servers (config max_upstream_logins).
type logins struct {
	inProgress prometheus.Gauge
	waiting    prometheus.Gauge
	wait       prometheus.Histogram
	gaveUp     prometheus.Counter
}

func newLogins() *logins {
	return &logins{
		inProgress: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "boshd_upstream_logins_in_progress", Help: "SASL logins sent to the XMPP servers and not yet answered, holding a place of max_upstream_logins.",
		}),
		waiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "boshd_upstream_logins_waiting", Help: "Clients' SASL logins waiting for a place of max_upstream_logins before they are sent upstream.",
		}),
		wait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "boshd_upstream_login_wait_seconds", Help: "Time a client's SASL login waited for a place of max_upstream_logins (0 when one was free).", Buckets: latencyBuckets,
		}),
		gaveUp: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "boshd_upstream_login_waits_given_up_total", Help: "SASL logins sent upstream without a place of max_upstream_logins, having waited the longest a login waits.",
		}),
	}
}

func (l *logins) collectors() []prometheus.Collector {
	return []prometheus.Collector{l.inProgress, l.waiting, l.wait, l.gaveUp}
}

// LoginStarted counts a SASL login sent upstream with a place, after
// waiting seconds for it.
func (m *Metrics) LoginStarted(seconds float64) {
	m.logins.wait.Observe(seconds)
	m.logins.inProgress.Inc()
}

// LoginEnded counts the end of a login LoginStarted counted.
func (m *Metrics) LoginEnded() { m.logins.inProgress.Dec() }

// LoginWaiting counts a login starting (+1) or ending (-1) its wait.
func (m *Metrics) LoginWaiting(delta int) { m.logins.waiting.Add(float64(delta)) }

// LoginGaveUp counts a login sent upstream without a place after waiting
// seconds.
func (m *Metrics) LoginGaveUp(seconds float64) {
	m.logins.wait.Observe(seconds)
	m.logins.gaveUp.Inc()
}
