package admin_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/boshd/boshd/admin"
	"github.com/boshd/boshd/bosh"
	"github.com/boshd/boshd/config"
	"github.com/boshd/boshd/gateway"
	"github.com/boshd/boshd/internal/xmpptest"
	"github.com/boshd/boshd/wsbind"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(body)
}

func newAdmin(t *testing.T, upstream string, listening func() bool) http.Handler {
	t.Helper()
	cfg := config.Default()
	cfg.Upstreams = map[string]string{"example.org": upstream}
	h, err := bosh.NewHandler(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return admin.NewHandler(h, admin.Options{Version: "v1.2.3", Listening: listening, ReadyCache: -1})
}

func TestEndpoints(t *testing.T) {
	t.Parallel()
	up := xmpptest.NewRelay(t, xmpptest.NoFeatures)
	listening := true
	a := newAdmin(t, up.Addr(), func() bool { return listening })

	if code, body := get(t, a, "/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("healthz: %d %q", code, body)
	}
	if code, body := get(t, a, "/debug/pprof/heap?debug=1"); code != 200 || !strings.Contains(body, "heap profile") {
		t.Errorf("pprof heap: %d %.80q", code, body)
	}
	if code, body := get(t, a, "/readyz"); code != 200 {
		t.Errorf("readyz with the upstream up: %d %q", code, body)
	}
	listening = false
	if code, body := get(t, a, "/readyz"); code != 503 || !strings.Contains(body, "listener") {
		t.Errorf("readyz with the listener down: %d %q", code, body)
	}
	listening = true
	up.Close()
	if code, body := get(t, a, "/readyz"); code != 503 || !strings.Contains(body, "example.org") {
		t.Errorf("readyz with the upstream down: %d %q", code, body)
	}
	if code, body := get(t, a, "/"); code != 200 || !strings.Contains(body, "v1.2.3") || !strings.Contains(body, "sessions") {
		t.Errorf("status page: %d %q", code, body)
	}
	if code, body := get(t, a, "/metrics"); code != 200 || !strings.Contains(body, "boshd_sessions_active 0") {
		t.Errorf("metrics: %d %q", code, body)
	}
	if code, _ := get(t, a, "/nope"); code != 404 {
		t.Errorf("unknown path: %d", code)
	}
}

// TestStatusWebSocket checks that the status page shows the WebSocket
// sessions when there is a WebSocket handler, and the metrics its gauges.
func TestStatusWebSocket(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	g, err := gateway.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	h := bosh.NewHandlerWith(g)
	without := admin.NewHandler(h, admin.Options{})
	if _, body := get(t, without, "/"); strings.Contains(body, "WebSocket") {
		t.Errorf("status page without a WebSocket handler shows WebSocket: %q", body)
	}
	with := admin.NewHandler(h, admin.Options{WebSocket: wsbind.NewHandler(g)})
	if code, body := get(t, with, "/"); code != 200 || !strings.Contains(body, "<th>WebSocket sessions</th><td>0 (0 idle, parked)</td>") {
		t.Errorf("status page: %d %q", code, body)
	}
	if _, body := get(t, with, "/metrics"); !strings.Contains(body, "boshd_websocket_sessions_active 0") || !strings.Contains(body, `boshd_websocket_messages_total{direction="in"} 0`) {
		t.Errorf("metrics lack the WebSocket gauges: %.300q", body)
	}
}

func TestStatusOldProcess(t *testing.T) {
	t.Parallel()
	g, err := gateway.New(config.Default(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	h := bosh.NewHandlerWith(g)
	exit := time.Date(2026, 12, 7, 14, 35, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		old  func() (admin.OldProcess, bool)
		want string // "" for no old-process row
	}{
		{"no upgrade", nil, ""},
		{"old process gone", func() (admin.OldProcess, bool) { return admin.OldProcess{}, false }, ""},
		{"old process serving", func() (admin.OldProcess, bool) {
			return admin.OldProcess{PID: 4242, BOSH: 7, WebSocket: 2, Exit: exit, Moved: 12}, true
		}, "<th>old process</th><td>4242, after a live upgrade: moved 12 BOSH sessions here, serving 7 BOSH and 2 WebSocket sessions to their end, exiting by 2026-12-07 14:35:00 UTC</td>"},
		{"exit not said yet", func() (admin.OldProcess, bool) { return admin.OldProcess{PID: 4242}, true },
			"<th>old process</th><td>4242, after a live upgrade: moved 0 BOSH sessions here, serving 0 BOSH and 0 WebSocket sessions to their end</td>"},
	} {
		_, body := get(t, admin.NewHandler(h, admin.Options{OldProcess: tc.old}), "/")
		if !strings.Contains(body, fmt.Sprintf("<tr><th>process</th><td>%d</td></tr>", os.Getpid())) {
			t.Errorf("%s: the status page does not show this process's pid: %q", tc.name, body)
		}
		switch {
		case tc.want == "" && strings.Contains(body, "old process"):
			t.Errorf("%s: the status page shows an old process: %q", tc.name, body)
		case tc.want != "" && !strings.Contains(body, tc.want):
			t.Errorf("%s: the status page lacks %q: %q", tc.name, tc.want, body)
		}
	}
	_, body := get(t, admin.NewHandler(h, admin.Options{}), "/metrics")
	for _, want := range []string{`boshd_upgrade_old_sessions{binding="bosh"} 0`, "boshd_upgrade_old_exit_timestamp_seconds 0", `boshd_upgrades_total{outcome="refused"} 0`} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
}
