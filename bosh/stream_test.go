package bosh

import (
	"strings"
	"testing"

	"github.com/boshd/boshd/config"
)

func TestMultipleStreamsOverHTTP(t *testing.T) {
	t.Parallel()
	// XEP-0124 §16.2, §16.3, §16.4, §16.5
	e := newEnv(t, func(cfg *config.Config) { cfg.MultipleStreams = true })
	_, _, resp := e.post(sprintf(creationBody, 100, 5))
	a := attrs(resp)
	first, sid := a["stream"], a["sid"]
	if first == "" {
		t.Fatalf("no stream in creation response %s", resp)
	}
	_, _, resp = e.post(`<body xmlns='http://jabber.org/protocol/httpbind' rid='101' sid='` + sid + `' to='example.org' xml:lang='en'/>`)
	a = attrs(resp)
	second := a["stream"]
	if second == "" || second == first || a["from"] != "example.org" || a["xmpp:version"] != "1.0" || !strings.Contains(resp, "<mechanism>PLAIN</mechanism>") {
		t.Fatalf("add stream answered %s", resp)
	}
	if n := e.up.Accepts(); n != 2 {
		t.Fatalf("%d upstream connections, want 2", n)
	}
	held := e.postAsync(`<body xmlns='http://jabber.org/protocol/httpbind' rid='102' sid='` + sid + `' stream='` + second + `'><presence/></body>`)
	e.up.WaitGot(t, "<presence xmlns='jabber:client'/>")
	e.up.Push(t, "<message/>") // the second stream is the latest connection
	got := receive(t, held)
	if attrs(got)["stream"] != second || !strings.Contains(got, "<message xmlns='jabber:client'/>") {
		t.Fatalf("response %s, want stream %s", got, second)
	}
	_, _, resp = e.post(`<body xmlns='http://jabber.org/protocol/httpbind' rid='103' sid='` + sid + `' stream='` + second + `' type='terminate'/>`)
	if a := attrs(resp); a["type"] != "terminate" || a["stream"] != second {
		t.Fatalf("stream terminate answered %s", resp)
	}
	_, _, resp = e.post(`<body xmlns='http://jabber.org/protocol/httpbind' rid='104' sid='` + sid + `' stream='nope'/>`)
	if attrs(resp)["condition"] != "item-not-found" {
		t.Fatalf("unknown stream answered %s", resp)
	}
}

func TestToIgnoredWithoutMultipleStreams(t *testing.T) {
	t.Parallel()
	// XEP-0124 §16.3: without multiple streams, sid+rid+to is an empty poll and
	// stream attributes are ignored.
	e := newEnv(t, nil)
	sid := e.create(100, 1)
	_, _, resp := e.post(`<body xmlns='http://jabber.org/protocol/httpbind' rid='101' sid='` + sid + `' to='example.org' stream='x'/>`)
	if a := attrs(resp); a["type"] != "" || a["stream"] != "" {
		t.Fatalf("got %s", resp)
	}
	if n := e.up.Accepts(); n != 1 {
		t.Fatalf("%d upstream connections, want 1", n)
	}
}
