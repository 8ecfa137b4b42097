package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes of Upgraded, the label outcome of boshd_upgrades_total
// (docs/design/005-live-upgrade.md).
const (
	// UpgradeReady: the new process became ready and took over.
	UpgradeReady = "ready"
	// UpgradeFailed: the new process failed, exited or was late; this
	// one goes on serving.
	UpgradeFailed = "failed"
	// UpgradeRefused: SIGUSR2 during an upgrade, or after this process
	// handed over.
	UpgradeRefused = "refused"
	// UpgradeTakenBack: the new process died after the hand-over,
	// before this one exited, and this one accepts again.
	UpgradeTakenBack = "taken_back"
)

// upgrade are the metrics of live upgrades: those this process started,
// and the old process still serving sessions beside it.
type upgrade struct {
	upgrades    *prometheus.CounterVec
	oldSessions *prometheus.GaugeVec
	oldExit     prometheus.Gauge
	moved       *prometheus.CounterVec
	received    prometheus.Counter
	wsMoved     *prometheus.CounterVec
	wsReceived  prometheus.Counter
	handOff     prometheus.Gauge
}

func newUpgrade() *upgrade {
	u := &upgrade{
		upgrades: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "boshd_upgrades_total", Help: "Live upgrades (SIGUSR2) this process started, by outcome: ready (handed over), failed (the new process failed, exited or was late; this one serves on), refused (one at a time) or taken_back (the new process died after the hand-over; this one accepts again).",
		}, []string{"outcome"}),
		oldSessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "boshd_upgrade_old_sessions", Help: "Sessions the old processes of a live upgrade still serve to their end, beside this one, by binding (bosh, websocket); 0 once they exited.",
		}, []string{"binding"}),
		oldExit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "boshd_upgrade_old_exit_timestamp_seconds", Help: "When the old process of a live upgrade exits at the latest (its upgrade_drain_timeout), in Unix seconds; 0 when there is none.",
		}),
		moved: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "boshd_upgrade_sessions_moved_total", Help: "BOSH sessions of this process at the hand-over of a live upgrade, by outcome: moved (the new process has them, the same TCP connections), failed (the new process did not take them) or kept (a TLS upstream or client connection, or never quiet); this process serves failed and kept ones to their end.",
		}, []string{"outcome"}),
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "boshd_upgrade_sessions_received_total", Help: "BOSH sessions the old process of a live upgrade moved to this one.",
		}),
		wsMoved: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "boshd_upgrade_websocket_sessions_moved_total", Help: "WebSocket sessions of this process at the hand-over of a live upgrade, by outcome: moved (the new process has them, the same TCP connections), failed (the new process did not take them) or kept (TLS on either side, or never quiet); this process serves failed and kept ones to their end.",
		}, []string{"outcome"}),
		wsReceived: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "boshd_upgrade_websocket_sessions_received_total", Help: "WebSocket sessions the old process of a live upgrade moved to this one.",
		}),
		handOff: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "boshd_upgrade_handoff_seconds", Help: "How long the last hand-over of sessions to a new process took, in seconds; 0 before any.",
		}),
	}
	for _, o := range []string{"moved", "failed", "kept"} {
		u.moved.WithLabelValues(o)
		u.wsMoved.WithLabelValues(o)
	}
	for _, o := range []string{UpgradeReady, UpgradeFailed, UpgradeRefused, UpgradeTakenBack} {
		u.upgrades.WithLabelValues(o)
	}
	u.oldSessions.WithLabelValues("bosh")
	u.oldSessions.WithLabelValues("websocket")
	return u
}

func (u *upgrade) collectors() []prometheus.Collector {
	return []prometheus.Collector{u.upgrades, u.oldSessions, u.oldExit, u.moved, u.received, u.wsMoved, u.wsReceived, u.handOff}
}

// Upgraded counts an upgrade this process started, with its outcome.
func (m *Metrics) Upgraded(outcome string) { m.upgrade.upgrades.WithLabelValues(outcome).Inc() }

// OldProcess sets what the old process of a live upgrade serves and when
// it exits at the latest; zeros once it has exited.
func (m *Metrics) OldProcess(bosh, websocket int, exit time.Time) {
	m.upgrade.oldSessions.WithLabelValues("bosh").Set(float64(bosh))
	m.upgrade.oldSessions.WithLabelValues("websocket").Set(float64(websocket))
	if exit.IsZero() {
		m.upgrade.oldExit.Set(0)
		return
	}
	m.upgrade.oldExit.Set(float64(exit.UnixMilli()) / 1000)
}

// UpgradeMoved counts the BOSH sessions of a hand-over: moved to the new
// process, failed (it did not take them) and kept (they could not move).
func (m *Metrics) UpgradeMoved(moved, failed, kept int) {
	m.upgrade.moved.WithLabelValues("moved").Add(float64(moved))
	m.upgrade.moved.WithLabelValues("failed").Add(float64(failed))
	m.upgrade.moved.WithLabelValues("kept").Add(float64(kept))
}

// UpgradeReceived counts a BOSH session the old process moved to this
// one.
func (m *Metrics) UpgradeReceived() { m.upgrade.received.Inc() }

// UpgradeWebSocketMoved counts the WebSocket sessions of a hand-over, as
// UpgradeMoved the BOSH ones.
func (m *Metrics) UpgradeWebSocketMoved(moved, failed, kept int) {
	m.upgrade.wsMoved.WithLabelValues("moved").Add(float64(moved))
	m.upgrade.wsMoved.WithLabelValues("failed").Add(float64(failed))
	m.upgrade.wsMoved.WithLabelValues("kept").Add(float64(kept))
}

// UpgradeWebSocketReceived counts a WebSocket session the old process
// moved to this one.
func (m *Metrics) UpgradeWebSocketReceived() { m.upgrade.wsReceived.Inc() }

// UpgradeHandOff sets how long the last hand-over of sessions took.
func (m *Metrics) UpgradeHandOff(d time.Duration) { m.upgrade.handOff.Set(d.Seconds()) }
