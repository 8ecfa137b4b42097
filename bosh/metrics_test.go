package bosh

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/boshd/boshd/internal/wait"
)

// scrape returns the handler's metrics in the text format.
func scrape(t *testing.T, h *Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.Metrics().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	data, _ := io.ReadAll(rec.Result().Body)
	return string(data)
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	h := e.h
	sid, held := e.holdOne(100)
	wait.Until(t, func() bool { return strings.Contains(scrape(t, h), "boshd_requests_held 1\n") }, "one held request")
	e.up.Push(t, "<message/>")
	receive(t, held)
	e.post(`<body xmlns='http://jabber.org/protocol/httpbind' rid='102' sid='` + sid + `' type='terminate'/>`)
	e.post(`<body xmlns='http://jabber.org/protocol/httpbind' rid='1' sid='unknown'/>`)
	out := scrape(t, h)
	for _, want := range []string{
		"boshd_sessions_created_total 1\n",
		`boshd_sessions_ended_total{condition="none"} 1` + "\n",
		"boshd_sessions_active 0\n",
		"boshd_requests_held 0\n",
		`boshd_requests_total{outcome="ok"} 2` + "\n",
		`boshd_requests_total{outcome="terminate"} 1` + "\n",
		`boshd_requests_total{outcome="refused"} 1` + "\n",
		"boshd_push_latency_seconds_count 1\n",
		`boshd_upstream_connect_seconds_count{result="ok"} 1` + "\n",
		"boshd_request_duration_seconds_count 4\n",
		"process_resident_memory_bytes ",
		"go_goroutines ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if t.Failed() {
		t.Log(out)
	}
}
