package bosh

import (
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/boshd/boshd/config"
	"github.com/boshd/boshd/internal/xmpptest"
)

func TestCreate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	status, header, resp := e.post(sprintf(creationBody, 100, 60))
	if status != 200 {
		t.Fatalf("status %d", status)
	}
	// XEP-0124 §5, §7.2
	if header.Get("Content-Type") != "text/xml; charset=utf-8" || header.Get("Content-Length") != strconv.Itoa(len(resp)) {
		t.Errorf("headers %v", header)
	}
	a := attrs(resp)
	for name, want := range map[string]string{
		"wait": "5", // XEP-0124 §7.1: capped by max_wait
		"hold": "1", "requests": "2", "ver": "1.6", "polling": "5", "inactivity": "60", "maxpause": "120",
		"from": "example.org", "xmpp:version": "1.0", "xmpp:restartlogic": "true", "xmlns:xmpp": "urn:xmpp:xbosh",
		"xmlns:stream": NSStream, "authid": "s1",
	} {
		if a[name] != want {
			t.Errorf("%s = %q, want %q", name, a[name], want)
		}
	}
	if len(a["sid"]) < 22 {
		t.Errorf("sid %q too short", a["sid"])
	}
	// XEP-0206 §4: features in the first response, filtered.
	if !strings.Contains(resp, "<mechanism>PLAIN</mechanism>") || strings.Contains(resp, "-PLUS") || strings.Contains(resp, "urn:xmpp:sm:3") {
		t.Errorf("features not relayed or not filtered: %s", resp)
	}
}

func TestCreateRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body, cond string
	}{
		{"XEP-0124 §17.2 no to", `<body xmlns='http://jabber.org/protocol/httpbind' rid='1' wait='60' hold='1' ver='1.6'/>`, "improper-addressing"},
		{"XEP-0124 §17.2 empty to", `<body xmlns='http://jabber.org/protocol/httpbind' rid='1' to='' wait='60' hold='1' ver='1.6'/>`, "improper-addressing"},
		{"XEP-0124 §17.2 unserved to", `<body xmlns='http://jabber.org/protocol/httpbind' rid='1' to='other.org' wait='60' hold='1' ver='1.6'/>`, "host-unknown"},
		{"XEP-0124 §7.1 route not allowed", `<body xmlns='http://jabber.org/protocol/httpbind' rid='1' to='example.org' route='xmpp:169.254.169.254:80' wait='60' hold='1' ver='1.6'/>`, "host-unknown"},
		{"XEP-0124 §7.1 no wait", `<body xmlns='http://jabber.org/protocol/httpbind' rid='1' to='example.org' hold='1' ver='1.6'/>`, "bad-request"},
		{"XEP-0124 §7.1 negative wait", `<body xmlns='http://jabber.org/protocol/httpbind' rid='1' to='example.org' wait='-1' hold='1' ver='1.6'/>`, "bad-request"},
		{"XEP-0124 §7.1 fractional wait", `<body xmlns='http://jabber.org/protocol/httpbind' rid='1' to='example.org' wait='1.5' hold='1' ver='1.6'/>`, "bad-request"},
		{"bad hold", `<body xmlns='http://jabber.org/protocol/httpbind' rid='1' to='example.org' wait='60' hold='x' ver='1.6'/>`, "bad-request"},
		{"XEP-0124 §7.1 bad ver", `<body xmlns='http://jabber.org/protocol/httpbind' rid='1' to='example.org' wait='60' hold='1' ver='one'/>`, "bad-request"},
		{"bad content", `<body xmlns='http://jabber.org/protocol/httpbind' rid='1' to='example.org' wait='60' hold='1' ver='1.6' content='%%%'/>`, "bad-request"},
		{"bad xml:lang", `<body xmlns='http://jabber.org/protocol/httpbind' rid='1' to='example.org' wait='60' hold='1' ver='1.6' xml:lang='e n'/>`, "bad-request"},
		{"bad xmpp:version", `<body xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' rid='1' to='example.org' wait='60' hold='1' ver='1.6' xmpp:version='2.0'/>`, "bad-request"},
		{"XEP-0124 §6 no rid", `<body xmlns='http://jabber.org/protocol/httpbind' to='example.org' wait='60' hold='1' ver='1.6'/>`, "bad-request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil)
			status, _, resp := e.post(tc.body)
			if status != 200 || attrs(resp)["type"] != "terminate" || attrs(resp)["condition"] != tc.cond {
				t.Fatalf("got %d %s, want condition %s", status, resp, tc.cond)
			}
			if n := e.up.Accepts(); n != 0 {
				t.Fatalf("upstream dialled %d times for a refused session", n)
			}
		})
	}
}

func TestRouteAllowed(t *testing.T) {
	t.Parallel()
	// XEP-0124 §7.1: a listed route is where the stream goes.
	routed := xmpptest.NewRelay(t, testFeatures)
	e := newEnv(t, func(cfg *config.Config) {
		cfg.RouteAllow = []string{"xmpp:" + routed.Addr()}
	})
	_, _, resp := e.post(`<body xmlns='http://jabber.org/protocol/httpbind' rid='1' to='example.org' route='xmpp:` + routed.Addr() + `' wait='60' hold='1' ver='1.6'/>`)
	if attrs(resp)["sid"] == "" {
		t.Fatalf("refused: %s", resp)
	}
	if routed.Accepts() != 1 || e.up.Accepts() != 0 {
		t.Fatalf("route dialled %d times, default %d times", routed.Accepts(), e.up.Accepts())
	}
}

func TestUnknownSID(t *testing.T) {
	t.Parallel()
	// XEP-0124 §7.1, §17.1: 200 and item-not-found, even without ver.
	e := newEnv(t, nil)
	status, _, resp := e.post(`<body xmlns='http://jabber.org/protocol/httpbind' rid='5' sid='nope'/>`)
	if status != 200 || attrs(resp)["condition"] != "item-not-found" {
		t.Fatalf("got %d %s", status, resp)
	}
}

func TestRelayBothWays(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	sid, held := e.holdOne(100)
	data := e.postAsync(`<body xmlns='http://jabber.org/protocol/httpbind' rid='102' sid='` + sid + `'><message to='bob@example.org' type='chat'><body>hi &amp; bye</body></message></body>`)
	// XEP-0124 §8: rid 102 releases 101.
	if got := receive(t, held); got != `<body xmlns='http://jabber.org/protocol/httpbind'/>` {
		t.Fatalf("released request: %s", got)
	}
	// XEP-0206 §2: jabber:client added, bytes otherwise untouched.
	e.up.WaitGot(t, `<message xmlns='jabber:client' to='bob@example.org' type='chat'><body>hi &amp; bye</body></message>`)
	e.up.Push(t, `<message from='bob@example.org' type='chat'><body>yo</body></message>`)
	if got := receive(t, data); got != `<body xmlns='http://jabber.org/protocol/httpbind'><message xmlns='jabber:client' from='bob@example.org' type='chat'><body>yo</body></message></body>` {
		t.Fatalf("pushed stanza: %s", got)
	}
}

func TestStreamErrorReachesClient(t *testing.T) {
	t.Parallel()
	// XEP-0206 §6; XEP-0124 §17.2
	e := newEnv(t, nil)
	_, held := e.holdOne(100)
	e.up.Push(t, xmpptest.StreamError("conflict"))
	got := receive(t, held)
	a := attrs(got)
	if a["type"] != "terminate" || a["condition"] != "remote-stream-error" || a["xmlns:stream"] != NSStream || !strings.Contains(got, "<conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>") {
		t.Fatalf("got %s", got)
	}
}

func TestBadRequestEndsSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	sid := e.create(100, 5)
	_, _, resp := e.post(`<body xmlns='http://jabber.org/protocol/httpbind' rid='101' sid='` + sid + `'><message><!-- x --></message></body>`)
	if attrs(resp)["condition"] != "bad-request" {
		t.Fatalf("got %s", resp)
	}
	e.up.WaitGot(t, "</stream:stream>")
	_, _, resp = e.post(`<body xmlns='http://jabber.org/protocol/httpbind' rid='102' sid='` + sid + `'/>`)
	if attrs(resp)["condition"] != "item-not-found" {
		t.Fatalf("after bad-request: %s", resp)
	}
}

func TestLegacyStatusCodes(t *testing.T) {
	t.Parallel()
	// XEP-0124 §17.1: without ver, item-not-found is HTTP 404.
	e := newEnv(t, nil)
	_, _, resp := e.post(`<body xmlns='http://jabber.org/protocol/httpbind' rid='100' to='example.org' wait='5' hold='1'/>`)
	sid := attrs(resp)["sid"]
	status, _, _ := e.post(`<body xmlns='http://jabber.org/protocol/httpbind' rid='200' sid='` + sid + `'/>`)
	if status != http.StatusNotFound {
		t.Fatalf("status %d, want 404", status)
	}
}

func TestBodyTooLarge(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(cfg *config.Config) { cfg.MaxBodySize = 2048 })
	_, _, resp := e.post(`<body xmlns='http://jabber.org/protocol/httpbind' rid='1'>` + strings.Repeat("<a/>", 1000) + `</body>`)
	if attrs(resp)["condition"] != "policy-violation" {
		t.Fatalf("got %s", resp)
	}
}

func TestContentType(t *testing.T) {
	t.Parallel()
	// XEP-0124 §7.1, §7.2: every response carries the creationBody content.
	e := newEnv(t, nil)
	body := strings.Replace(sprintf(creationBody, 100, 0), "text/xml; charset=utf-8", "application/xml", 1)
	_, header, resp := e.post(body)
	if header.Get("Content-Type") != "application/xml" {
		t.Fatalf("creationBody Content-Type %q", header.Get("Content-Type"))
	}
	_, header, _ = e.post(`<body xmlns='http://jabber.org/protocol/httpbind' rid='101' sid='` + attrs(resp)["sid"] + `'/>`)
	if header.Get("Content-Type") != "application/xml" {
		t.Fatalf("later Content-Type %q", header.Get("Content-Type"))
	}
}

func TestUpstreamDown(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	e := newEnv(t, func(cfg *config.Config) { cfg.Upstreams = map[string]string{"example.org": addr} })
	_, _, resp := e.post(sprintf(creationBody, 1, 5))
	if attrs(resp)["condition"] != "remote-connection-failed" {
		t.Fatalf("got %s", resp)
	}
}
