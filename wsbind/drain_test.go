package wsbind

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/boshd/boshd/internal/xmpptest"
)

// TestDrainRefusesUpgrade checks design 004's drain for WebSocket: while
// the gateway drains, an upgrade gets 503 with Retry-After: 1 before the
// upstream is dialled or a session counted, a session opened before goes
// on both ways, and undoing the drain admits upgrades again.
func TestDrainRefusesUpgrade(t *testing.T) {
	up := xmpptest.NewRelay(t, features)
	ts := newTestServer(t, up, nil)
	c := ts.dial(t)
	c.open()

	if !ts.g.Drain() {
		t.Fatal("Drain reported the gateway draining already")
	}
	req := handshake()
	req.URL.Host = strings.TrimPrefix(ts.srv.URL, "http://")
	req.Host = req.URL.Host
	req.RequestURI = ""
	req.Header.Del("Origin")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" {
		t.Errorf("upgrade while draining: %s, Retry-After %q; want 503 and 1", resp.Status, resp.Header.Get("Retry-After"))
	}
	if n := up.Accepts(); n != 1 {
		t.Errorf("the upstream was dialled %d times, want once (the session opened before draining)", n)
	}
	if total, _ := ts.g.Sessions("127.0.0.1"); total != 1 || ts.h.Stats().Live != 1 {
		t.Errorf("%d sessions counted, %d live while draining; want the 1 opened before", total, ts.h.Stats().Live)
	}
	w := httptest.NewRecorder()
	ts.g.Metrics().Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(w.Body.String(), `boshd_websocket_upgrades_refused_total{reason="draining"} 1`) {
		t.Errorf("the refusal is not counted as draining:\n%s", w.Body.String())
	}

	// The session opened before draining goes on, both ways.
	c.send(message)
	up.WaitGot(t, message)
	up.Push(t, "<message xmlns='jabber:client'><body>still here</body></message>")
	c.expect("still here")

	if !ts.g.Undrain() {
		t.Fatal("Undrain reported the gateway not draining")
	}
	ts.dial(t).open()
}
