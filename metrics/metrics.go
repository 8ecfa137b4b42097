package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Gauges are the numbers read at each scrape rather than counted.
type Gauges struct {
	// Live, Held, Queued and QueuedBytes are as in session.Stats.
	Live, Held, Queued, QueuedBytes int64
	// Parked counts the held requests parked outside net/http.
	Parked int64
	// UpstreamsParked counts the upstream streams waiting for their
	// server without a reader goroutine.
	UpstreamsParked int64
	// WebSocketLive counts the XMPP over WebSocket sessions not yet
	// ended, and WebSocketParked their client connections parked.
	WebSocketLive, WebSocketParked int64
}

// Metrics are the metrics of one server. Their methods are safe for
// concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	sessionsCreated prometheus.Counter
	sessionsEnded   *prometheus.CounterVec
	requests        *prometheus.CounterVec
	requestDuration prometheus.Histogram
	pushLatency     prometheus.Histogram
	upstreamConnect *prometheus.HistogramVec
	bytesIn         prometheus.Counter
	bytesOut        prometheus.Counter
	connsOpen       prometheus.Gauge
	connsRefused    *prometheus.CounterVec
	ws              *webSocket
	forward         *forward
	logins          *logins
	upgrade         *upgrade
}

// ConnRefusedPerIP is the reason of ConnRefused for a connection over
// max_conns_per_ip.
const ConnRefusedPerIP = "per_ip"

// latencyBuckets span 100 µs to 2 min: pushes take microseconds, held
// requests up to the longest wait.
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}

// New returns metrics reading their gauges from gauges at each scrape.
func New(gauges func() Gauges) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		sessionsCreated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "boshd_sessions_created_total", Help: "BOSH sessions created.",
		}),
		sessionsEnded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "boshd_sessions_ended_total", Help: "BOSH sessions ended, by terminal condition (\"none\" for a plain terminate).",
		}, []string{"condition"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "boshd_requests_total", Help: "BOSH requests by outcome: ok, error (recoverable), terminate, refused (no session), gone (the client left, or its body did not arrive whole) or forwarded (to the node holding the session, which counts it again).",
		}, []string{"outcome"}),
		requestDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "boshd_request_duration_seconds", Help: "Time from a BOSH request's arrival to its response, holding included.", Buckets: latencyBuckets,
		}),
		pushLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "boshd_push_latency_seconds", Help: "Time from a server's stanza arriving to its response being handed to the HTTP request carrying it.", Buckets: latencyBuckets,
		}),
		upstreamConnect: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "boshd_upstream_connect_seconds", Help: "Time to open an upstream XMPP stream up to its first features, by result (ok or error).", Buckets: latencyBuckets,
		}, []string{"result"}),
		bytesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "boshd_http_request_bytes_total", Help: "Bytes of BOSH request bodies received, after decompression.",
		}),
		bytesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "boshd_http_response_bytes_total", Help: "Bytes of BOSH response bodies sent, before compression.",
		}),
		connsOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "boshd_connections_open", Help: "Client TCP connections open on the BOSH listener, counted from accept to close (under TLS, if any).",
		}),
		connsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "boshd_connections_refused_total", Help: "Client TCP connections closed as soon as accepted, by reason: per_ip (max_conns_per_ip reached).",
		}, []string{"reason"}),
		ws:      newWebSocket(),
		forward: newForward(),
		logins:  newLogins(),
	}
	// Shown at zero before the first refusal, for alerts to compare.
	m.connsRefused.WithLabelValues(ConnRefusedPerIP)
	gauge := func(name, help string, read func(Gauges) int64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return float64(read(gauges())) })
	}
	m.reg.MustRegister(m.ws.collectors(gauges)...)
	m.reg.MustRegister(m.forward.collectors()...)
	m.reg.MustRegister(m.logins.collectors()...)
	m.upgrade = newUpgrade()
	m.reg.MustRegister(m.upgrade.collectors()...)
	m.reg.MustRegister(
		m.sessionsCreated, m.sessionsEnded, m.requests, m.requestDuration, m.pushLatency, m.upstreamConnect, m.bytesIn, m.bytesOut,
		m.connsOpen, m.connsRefused,
		gauge("boshd_sessions_active", "BOSH sessions not yet ended.", func(g Gauges) int64 { return g.Live }),
		gauge("boshd_requests_held", "BOSH requests being held.", func(g Gauges) int64 { return g.Held }),
		gauge("boshd_requests_parked", "Held BOSH requests parked: taken from net/http while they wait (docs/design/002).", func(g Gauges) int64 { return g.Parked }),
		gauge("boshd_upstreams_parked", "Upstream XMPP streams idle without a reader goroutine, waiting for their server (docs/design/002).", func(g Gauges) int64 { return g.UpstreamsParked }),
		gauge("boshd_queued_stanzas", "Stanzas from servers waiting for a request to carry them.", func(g Gauges) int64 { return g.Queued }),
		gauge("boshd_queued_bytes", "Bytes of stanzas from servers waiting for a request.", func(g Gauges) int64 { return g.QueuedBytes }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry returns the registry the metrics are on, to add more.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// SessionCreated counts a new session.
func (m *Metrics) SessionCreated() { m.sessionsCreated.Inc() }

// SessionEnded counts a session's end by its condition, "" for a plain
// terminate.
func (m *Metrics) SessionEnded(condition string) {
	if condition == "" {
		condition = "none"
	}
	m.sessionsEnded.WithLabelValues(condition).Inc()
}

// Request counts a request by outcome and observes how long it took, in
// seconds.
func (m *Metrics) Request(outcome string, seconds float64) {
	m.requests.WithLabelValues(outcome).Inc()
	m.requestDuration.Observe(seconds)
}

// Push observes a push latency in seconds.
func (m *Metrics) Push(seconds float64) { m.pushLatency.Observe(seconds) }

// UpstreamConnect observes the time an upstream connection attempt took,
// in seconds.
func (m *Metrics) UpstreamConnect(ok bool, seconds float64) {
	result := "ok"
	if !ok {
		result = "error"
	}
	m.upstreamConnect.WithLabelValues(result).Observe(seconds)
}

// Bytes counts request and response body bytes.
func (m *Metrics) Bytes(in, out int) {
	m.bytesIn.Add(float64(in))
	m.bytesOut.Add(float64(out))
}

// ConnOpened counts a client connection accepted and open.
func (m *Metrics) ConnOpened() { m.connsOpen.Inc() }

// ConnClosed counts a client connection counted by ConnOpened closed.
func (m *Metrics) ConnClosed() { m.connsOpen.Dec() }

// ConnRefused counts a client connection closed at accept, for reason
// (ConnRefusedPerIP).
func (m *Metrics) ConnRefused(reason string) { m.connsRefused.WithLabelValues(reason).Inc() }
