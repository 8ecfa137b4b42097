package metrics

import "github.com/prometheus/client_golang/prometheus"

// Directions of WebSocketMessage: from clients (in) and to them (out).
const (
	In  = "in"
	Out = "out"
)

// webSocket are the metrics of XMPP over WebSocket (docs/design/003,
// "Metrics and logs"). Its gauges are read from Gauges.
type webSocket struct {
	created     prometheus.Counter
	ended       *prometheus.CounterVec
	refused     *prometheus.CounterVec
	messages    *prometheus.CounterVec
	bytes       *prometheus.CounterVec
	pushLatency prometheus.Histogram
}

func newWebSocket() *webSocket {
	return &webSocket{
		created: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "boshd_websocket_sessions_created_total", Help: "XMPP over WebSocket sessions created (upgrades accepted).",
		}),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "boshd_websocket_sessions_ended_total", Help: "XMPP over WebSocket sessions ended, by reason: client_close, server_close, stream_error, upstream_lost, upstream_failed, client_lost, ping_timeout, bad_input, refused, host_gone, shutdown.",
		}, []string{"reason"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "boshd_websocket_upgrades_refused_total", Help: "WebSocket upgrade requests refused before any upstream was dialled, by reason: handshake, subprotocol, origin, limit, shutdown, draining.",
		}, []string{"reason"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "boshd_websocket_messages_total", Help: "WebSocket text messages, by direction: in (from clients) or out (to clients).",
		}, []string{"direction"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "boshd_websocket_bytes_total", Help: "Payload bytes of WebSocket text messages, by direction: in or out.",
		}, []string{"direction"}),
		pushLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "boshd_websocket_push_latency_seconds", Help: "Time from a server's element read upstream to its WebSocket message written to the client.", Buckets: latencyBuckets,
		}),
	}
}

func (w *webSocket) collectors(gauges func() Gauges) []prometheus.Collector {
	gauge := func(name, help string, read func(Gauges) int64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return float64(read(gauges())) })
	}
	// Shown at zero before the first message, for rates to start from.
	for _, d := range []string{In, Out} {
		w.messages.WithLabelValues(d)
		w.bytes.WithLabelValues(d)
	}
	return []prometheus.Collector{
		w.created, w.ended, w.refused, w.messages, w.bytes, w.pushLatency,
		gauge("boshd_websocket_sessions_active", "XMPP over WebSocket sessions not yet ended.", func(g Gauges) int64 { return g.WebSocketLive }),
		gauge("boshd_websocket_parked", "WebSocket client connections parked: idle, with no goroutine and no read buffer.", func(g Gauges) int64 { return g.WebSocketParked }),
	}
}

// WebSocketSessionCreated counts a WebSocket session created.
func (m *Metrics) WebSocketSessionCreated() { m.ws.created.Inc() }

// WebSocketSessionEnded counts a WebSocket session ended for reason.
func (m *Metrics) WebSocketSessionEnded(reason string) { m.ws.ended.WithLabelValues(reason).Inc() }

// WebSocketUpgradeRefused counts an upgrade refused for reason.
func (m *Metrics) WebSocketUpgradeRefused(reason string) { m.ws.refused.WithLabelValues(reason).Inc() }

// WebSocketMessage counts one text message of n payload bytes going in
// direction (In or Out).
func (m *Metrics) WebSocketMessage(direction string, n int) {
	m.ws.messages.WithLabelValues(direction).Inc()
	m.ws.bytes.WithLabelValues(direction).Add(float64(n))
}

// WebSocketPush observes the time, in seconds, from an element read
// upstream to its message written to the client.
func (m *Metrics) WebSocketPush(seconds float64) { m.ws.pushLatency.Observe(seconds) }
