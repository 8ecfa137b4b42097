package wsbind

import (
	"crypto/tls"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/boshd/boshd/config"
	"github.com/boshd/boshd/internal/testcert"
	"github.com/boshd/boshd/internal/wait"
	"github.com/boshd/boshd/internal/xmpptest"
)

// TestIdleSessionsHoldNoGoroutine opens sessions, leaves them idle and
// checks that their client sockets are parked and that no goroutine per
// session is left; then that a parked session wakes for a message either
// way, and parks again.
func TestIdleSessionsHoldNoGoroutine(t *testing.T) {
	for _, secure := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "tls"}[secure], func(t *testing.T) {
			up := xmpptest.NewRelay(t, features)
			ts := newTestServer(t, up, func(c *config.Config) { c.ParkAfter = 0 })
			if secure {
				ts.serveTLS(t)
			}
			before := runtime.NumGoroutine()
			const n = 20
			clients := make([]*wsClient, n)
			for i := range clients {
				clients[i] = ts.dial(t)
				clients[i].open()
			}
			if !wait.For(wait.Deadline, func() bool { return ts.h.Stats().Parked == n }) {
				t.Fatalf("%d of %d idle sessions parked", ts.h.Stats().Parked, n)
			}
			// Each session has its two sockets and no goroutine; the
			// fake server has one per connection. Allow a few for the
			// test's own and the runtime's.
			if !wait.For(wait.Deadline, func() bool { return runtime.NumGoroutine()-before < n+n/2 }) {
				buf := make([]byte, 1<<20)
				t.Errorf("%d goroutines for %d idle sessions:\n%s", runtime.NumGoroutine()-before, n, buf[:runtime.Stack(buf, true)])
			}
			c := clients[n/2]
			c.send(message)
			up.WaitGot(t, message)
			for i, c := range clients {
				if err := up.Peer(t, i).Send(`<message from='bob@example.org/x'><body>back</body></message>`); err != nil {
					t.Fatal(err)
				}
				c.expect(`<body>back</body>`)
			}
			if !wait.For(wait.Deadline, func() bool { return ts.h.Stats().Parked == n }) {
				t.Errorf("%d of %d sessions parked again", ts.h.Stats().Parked, n)
			}
		})
	}
}

// serveTLS replaces ts's server with one on TLS (wss://).
func (ts *testServer) serveTLS(t *testing.T) {
	t.Helper()
	ts.srv.Close()
	serverConfig, roots := testcert.Server(t, "127.0.0.1")
	srv := httptest.NewUnstartedServer(ts.h)
	srv.TLS = serverConfig
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ts.srv = srv
	ts.url = "wss" + strings.TrimPrefix(srv.URL, "https")
	ts.tlsConfig = &tls.Config{RootCAs: roots}
}

// TestPings checks the pinger: a connection boshd has been silent on for
// half an interval is pinged, and one whose client has been silent for
// two intervals is ended as lost.
func TestPings(t *testing.T) {
	up := xmpptest.NewRelay(t, features)
	ts := newTestServer(t, up, func(c *config.Config) { c.WebSocketPingInterval = 0 })
	p := newPingerBuckets(10 * time.Second)
	ts.h.pings = p
	c := ts.dial(t)
	c.open()
	var s *session
	ts.h.mu.Lock()
	for s = range ts.h.sessions {
	}
	ts.h.mu.Unlock()
	p.add(s)
	now := time.Now()
	visitAll := func(at time.Time) {
		for range p.buckets {
			p.visit(at)
		}
	}
	visitAll(now)
	c.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if h, err := ws.ReadHeader(c.conn); err == nil {
		t.Fatalf("got a %v frame from a fresh session", h.OpCode)
	}
	c.conn.SetReadDeadline(time.Time{})

	visitAll(now.Add(6 * time.Second))
	h, err := ws.ReadHeader(c.conn)
	if err != nil || h.OpCode != ws.OpPing {
		t.Fatalf("got %v, %v; want a ping", h.OpCode, err)
	}

	visitAll(now.Add(21 * time.Second))
	if !wait.For(wait.Deadline, func() bool { return ts.h.Stats().Live == 0 }) {
		t.Fatal("a client silent for two intervals was not ended")
	}
}
