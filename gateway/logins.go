package gateway

import (
	"context"
	"time"

	"github.com/boshd/boshd/metrics"
)

// loginWaitBound is the longest a client's SASL login waits for a place
// at the gate before it goes ahead without one: pacing delays a login,
// never fails it.
const loginWaitBound = 30 * time.Second

// loginGate paces the clients' SASL logins to the XMPP servers
// (max_upstream_logins): it is the xmpp.LoginGate of the gateway's
// Dialer, shared by every binding's sessions.
type loginGate struct {
	places  chan struct{}    // a value per login in progress; immutable
	bound   time.Duration    // longest wait; immutable
	metrics *metrics.Metrics // immutable
}

// newLoginGate returns a gate letting n logins be in progress at once.
func newLoginGate(n int, m *metrics.Metrics) *loginGate {
	return &loginGate{places: make(chan struct{}, n), bound: loginWaitBound, metrics: m}
}

// Enter implements xmpp.LoginGate.
func (g *loginGate) Enter(ctx context.Context) bool {
	select {
	case g.places <- struct{}{}:
		g.metrics.LoginStarted(0)
		return true
	default:
	}
	start := time.Now()
	g.metrics.LoginWaiting(1)
	defer g.metrics.LoginWaiting(-1)
	timer := time.NewTimer(g.bound)
	defer timer.Stop()
	select {
	case g.places <- struct{}{}:
		g.metrics.LoginStarted(time.Since(start).Seconds())
		return true
	case <-timer.C:
		g.metrics.LoginGaveUp(time.Since(start).Seconds())
		return false
	case <-ctx.Done():
		return false
	}
}

// Leave implements xmpp.LoginGate.
func (g *loginGate) Leave() {
	<-g.places
	g.metrics.LoginEnded()
}
