package bosh

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boshd/boshd/config"
)

func TestAcksOnTheWire(t *testing.T) {
	// R-ACK-1: ack='1' at creation gets ack=<creation rid>, and later
	// responses carry ack when it differs from their rid (R-ACK-3).
	srv, c := newTestHandler(t, nil)
	_, _, resp := c.post(strings.Replace(sprintf(creationBody, 100, 5), "rid=", "ack='1' rid=", 1))
	a := attrs(resp)
	if a["ack"] != "100" {
		t.Fatalf("creation ack %q in %s", a["ack"], resp)
	}
	sid := a["sid"]
	held := c.postAsync(`<body xmlns='http://jabber.org/protocol/httpbind' rid='101' sid='` + sid + `'/>`)
	srv.waitGot(t, "") // the stream is up
	next := c.postAsync(`<body xmlns='http://jabber.org/protocol/httpbind' rid='102' ack='101' sid='` + sid + `'/>`)
	if got := attrs(receive(t, held)); got["ack"] != "102" {
		t.Fatalf("released response ack %q, want 102", got["ack"])
	}
	srv.push(t, "<message/>")
	if got := attrs(receive(t, next)); got["ack"] != "" {
		t.Fatalf("ack %q on the latest rid's response", got["ack"])
	}
}

func TestResendIsByteIdentical(t *testing.T) {
	// R-RID-7 over HTTP.
	srv, c := newTestHandler(t, nil)
	sid := create(t, c, 100, 5)
	req := `<body xmlns='http://jabber.org/protocol/httpbind' rid='101' sid='` + sid + `'><message to='a@example.org'/></body>`
	held := c.postAsync(req)
	srv.waitGot(t, "<message xmlns='jabber:client' to='a@example.org'/>")
	srv.push(t, "<message from='a@example.org'><body>1</body></message>")
	first := receive(t, held)
	_, _, again := c.post(req)
	if again != first {
		t.Fatalf("resend got\n%s\nwant\n%s", again, first)
	}
	srv.mu.Lock()
	n := strings.Count(srv.got.String(), "to='a@example.org'")
	srv.mu.Unlock()
	if n != 1 {
		t.Fatalf("payload forwarded %d times", n)
	}
}

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLogsKeepSecrets(t *testing.T) {
	// Issue 2.8: never passwords or SASL payloads in the logs, even at
	// debug; the sid is carried by session logs.
	srv := newFakeServer(t, testFeatures)
	cfg := config.Default()
	cfg.Upstreams = map[string]string{"example.org": srv.addr()}
	cfg.UpstreamTLS = "plaintext"
	setParking(&cfg)
	var logs syncBuffer
	h, err := NewHandler(cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	hs := newParkingServer(h)
	defer hs.Close()
	defer h.Shutdown(context.Background())
	c := &client{t: t, url: hs.URL}
	sid := create(t, c, 100, 1)
	const secret = "AGFsaWNlAHMzY3IzdA==" // \0alice\0s3cr3t
	c.post(`<body xmlns='http://jabber.org/protocol/httpbind' rid='101' sid='` + sid + `'><auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` + secret + `</auth></body>`)
	srv.waitGot(t, secret)
	c.post(`<body xmlns='http://jabber.org/protocol/httpbind' rid='102' sid='` + sid + `'><!-- bad --></body>`)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "bad request ends session") && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	out := logs.String()
	if strings.Contains(out, secret) || strings.Contains(out, "s3cr3t") {
		t.Fatalf("secret in logs:\n%s", out)
	}
	// Session logs name the session by the start of its sid; the whole
	// sid, a bearer secret, only at debug level.
	if !strings.Contains(out, "sid="+sid[:8]+"…") {
		t.Fatalf("session logs do not carry the sid:\n%s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, sid) && !strings.Contains(line, "level=DEBUG") {
			t.Fatalf("whole sid logged above debug: %s", line)
		}
	}
}
