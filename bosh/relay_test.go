package bosh

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/boshd/boshd/internal/wait"
)

func TestLogsKeepSecrets(t *testing.T) {
	t.Parallel()
	// Issue 2.8: never passwords or SASL payloads in the logs, even at
	// debug; the sid is carried by session logs.
	e := newLoggedEnv(t, slog.LevelDebug, nil)
	logs := e.logs
	sid := e.create(100, 1)
	const secret = "AGFsaWNlAHMzY3IzdA==" // \0alice\0s3cr3t
	e.post(`<body xmlns='http://jabber.org/protocol/httpbind' rid='101' sid='` + sid + `'><auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` + secret + `</auth></body>`)
	e.up.WaitGot(t, secret)
	e.post(`<body xmlns='http://jabber.org/protocol/httpbind' rid='102' sid='` + sid + `'><!-- bad --></body>`)
	wait.Until(t, func() bool { return strings.Contains(logs.String(), "bad request ends session") }, "the bad request in the logs")
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

func TestAcksOnTheWire(t *testing.T) {
	t.Parallel()
	// XEP-0124 §9.1: ack='1' at creation gets ack=<creation rid>, and later
	// responses carry ack when it differs from their rid (XEP-0124 §9.1).
	e := newEnv(t, nil)
	_, _, resp := e.post(strings.Replace(sprintf(creationBody, 100, 5), "rid=", "ack='1' rid=", 1))
	a := attrs(resp)
	if a["ack"] != "100" {
		t.Fatalf("creation ack %q in %s", a["ack"], resp)
	}
	sid := a["sid"]
	held := e.postAsync(`<body xmlns='http://jabber.org/protocol/httpbind' rid='101' sid='` + sid + `'/>`)
	next := e.postAsync(`<body xmlns='http://jabber.org/protocol/httpbind' rid='102' ack='101' sid='` + sid + `'/>`)
	if got := attrs(receive(t, held)); got["ack"] != "102" {
		t.Fatalf("released response ack %q, want 102", got["ack"])
	}
	e.up.Push(t, "<message/>")
	if got := attrs(receive(t, next)); got["ack"] != "" {
		t.Fatalf("ack %q on the latest rid's response", got["ack"])
	}
}

func TestResendIsByteIdentical(t *testing.T) {
	t.Parallel()
	// XEP-0124 §14.3 over HTTP.
	e := newEnv(t, nil)
	sid := e.create(100, 5)
	req := `<body xmlns='http://jabber.org/protocol/httpbind' rid='101' sid='` + sid + `'><message to='a@example.org'/></body>`
	held := e.postAsync(req)
	e.up.WaitGot(t, "<message xmlns='jabber:client' to='a@example.org'/>")
	e.up.Push(t, "<message from='a@example.org'><body>1</body></message>")
	first := receive(t, held)
	_, _, again := e.post(req)
	if again != first {
		t.Fatalf("resend got\n%s\nwant\n%s", again, first)
	}
	if n := strings.Count(e.up.Got(), "to='a@example.org'"); n != 1 {
		t.Fatalf("payload forwarded %d times", n)
	}
}
