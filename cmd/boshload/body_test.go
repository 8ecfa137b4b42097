package main

import (
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
)

// creationResponse is a creation response as boshd writes it.
const creationResponse = `<body xmlns='http://jabber.org/protocol/httpbind' xmlns:stream='http://etherx.jabber.org/streams' ` +
	`xmlns:xmpp='urn:xmpp:xbosh' sid='abc' wait='60' hold='1' requests='2' ver='1.11' from='localhost' ` +
	`xmpp:version='1.0' xmpp:restartlogic='true'>` +
	`<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1</mechanism>` +
	`<mechanism>PLAIN</mechanism></mechanisms></stream:features></body>`

func TestParseResponseCreation(t *testing.T) {
	t.Parallel()
	r, err := parseResponse([]byte("<?xml version='1.0'?>\n" + creationResponse + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r.SID != "abc" || r.terminated() || len(r.Children) != 1 {
		t.Fatalf("response = %+v", r)
	}
	features := r.find(isFeatures)
	if features == nil {
		t.Fatal("no stream features found")
	}
	if !offersPlain(features) {
		t.Error("offersPlain = false, want true")
	}
}

func TestParseResponseTerminate(t *testing.T) {
	t.Parallel()
	r, err := parseResponse([]byte(`<body xmlns='http://jabber.org/protocol/httpbind' type='terminate' condition='policy-violation'/>`))
	if err != nil {
		t.Fatal(err)
	}
	if !r.terminated() || r.Condition != "policy-violation" {
		t.Errorf("response = %+v", r)
	}
}

func TestParseResponseStanzas(t *testing.T) {
	t.Parallel()
	r, err := parseResponse([]byte(`<body xmlns='http://jabber.org/protocol/httpbind'>` +
		`<iq xmlns='jabber:client' type='result' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>u1@localhost/x</jid></bind></iq>` +
		`<presence xmlns='jabber:client'/></body>`))
	if err != nil {
		t.Fatal(err)
	}
	iq := r.find(func(e *element) bool { return e.is(nsClient, "iq") && e.attr("id") == "bind1" })
	if iq == nil || iq.attr("type") != "result" {
		t.Fatalf("bind result not found in %+v", r.Children)
	}
	if jid := strings.TrimSpace(iq.child(nsBind, "bind").child(nsBind, "jid").Text); jid != "u1@localhost/x" {
		t.Errorf("jid = %q", jid)
	}
	if len(r.Children) != 2 {
		t.Errorf("%d children, want 2", len(r.Children))
	}
}

// TestParseResponseNamespaces checks the namespaces of the children: an
// unprefixed child without a declaration is in the body's default
// namespace, a prefixed one in the namespace its prefix is bound to on the
// body, and each child's bytes stand alone.
func TestParseResponseNamespaces(t *testing.T) {
	t.Parallel()
	r, err := parseResponse([]byte(`<body xmlns='http://jabber.org/protocol/httpbind' xmlns:stream='http://etherx.jabber.org/streams'>` +
		`<x/><stream:features/><message xmlns='jabber:client'/></body>`))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{nsHTTPBind, nsStream, nsClient}
	if len(r.Children) != len(want) {
		t.Fatalf("%d children, want %d", len(r.Children), len(want))
	}
	for i, ns := range want {
		if got := r.Children[i].NS; got != ns {
			t.Errorf("child %d (%s) in %q, want %q", i, r.Children[i].Raw, got, ns)
		}
		if _, err := parseMessage(r.Children[i].Raw); err != nil {
			t.Errorf("child %d (%s) does not stand alone: %v", i, r.Children[i].Raw, err)
		}
	}
	if r.find(isFeatures) == nil {
		t.Error("find(isFeatures) = nil")
	}
}

func TestParseResponseRefused(t *testing.T) {
	t.Parallel()
	for _, doc := range []string{
		``,
		`   `,
		`<body xmlns='urn:other'/>`,
		`<body/>`,
		`<body xmlns='http://jabber.org/protocol/httpbind'>`,
		`<body xmlns='http://jabber.org/protocol/httpbind'/><body xmlns='http://jabber.org/protocol/httpbind'/>`,
		`text<body xmlns='http://jabber.org/protocol/httpbind'/>`,
		`<!-- c --><body xmlns='http://jabber.org/protocol/httpbind'/>`,
		`<html><body>502 Bad Gateway</body></html>`,
		`<body xmlns='http://jabber.org/protocol/httpbind'/>text`,
		`<body xmlns='http://jabber.org/protocol/httpbind'><message><!-- c --></message></body>`,
		`<body xmlns='http://jabber.org/protocol/httpbind'><message></body>`,
		`<body xmlns='http://jabber.org/protocol/httpbind'><x:message/></body>`,
	} {
		if r, err := parseResponse([]byte(doc)); err == nil {
			t.Errorf("parseResponse(%q) = %+v, want an error", doc, r)
		}
	}
	_, err := parseResponse([]byte(`<body/>`))
	if !errors.Is(err, errNotBody) {
		t.Errorf("err = %v, want errNotBody", err)
	}
}

func TestOffersPlain(t *testing.T) {
	t.Parallel()
	for features, want := range map[string]bool{
		`<f><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism> PLAIN </mechanism></mechanisms></f>`:     true,
		`<f><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1</mechanism></mechanisms></f>`: false,
		`<f><mechanisms xmlns='urn:other'><mechanism>PLAIN</mechanism></mechanisms></f>`:                              false,
		`<f/>`: false,
	} {
		r, err := parseResponse([]byte(`<body xmlns='http://jabber.org/protocol/httpbind'>` + features + `</body>`))
		if err != nil {
			t.Fatal(err)
		}
		f, err := decodeElement(r.Children[0])
		if err != nil {
			t.Fatal(err)
		}
		if got := offersPlain(f); got != want {
			t.Errorf("offersPlain(%s) = %v, want %v", features, got, want)
		}
	}
}

// TestRequestBodies checks that each request boshload writes is one
// well-formed httpbind <body/> with the attributes that matter.
func TestRequestBodies(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		body  string
		attrs map[string]string
		kids  int
	}{
		{createBody(7, "a'b&c", 60, 1), map[string]string{"rid": "7", "to": "a'b&c", "wait": "60", "hold": "1", "ver": "1.6"}, 0},
		{sessionBody(8, "s<1>", ""), map[string]string{"rid": "8", "sid": "s<1>"}, 0},
		{sessionBody(9, "s", "<presence xmlns='jabber:client'/>"), map[string]string{"rid": "9"}, 1},
		{restartBody(10, "s", "localhost"), map[string]string{"rid": "10", "to": "localhost"}, 0},
		{terminateBody(11, "s", false), map[string]string{"rid": "11", "type": "terminate"}, 0},
		{terminateBody(12, "s", true), map[string]string{"rid": "12", "type": "terminate"}, 1},
	} {
		r, err := parseDoc(tc.body)
		if err != nil {
			t.Errorf("%s: %v", tc.body, err)
			continue
		}
		for k, v := range tc.attrs {
			if got := r.attr(k); got != v {
				t.Errorf("%s: %s = %q, want %q", tc.body, k, got, v)
			}
		}
		if len(r.Children) != tc.kids {
			t.Errorf("%s: %d children, want %d", tc.body, len(r.Children), tc.kids)
		}
	}
	r, _ := parseDoc(restartBody(1, "s", "d"))
	var restart bool
	for _, a := range r.Attrs {
		restart = restart || a.Name.Space == nsXBOSH && a.Name.Local == "restart" && a.Value == "true"
	}
	if !restart {
		t.Errorf("restart body without xmpp:restart='true': %v", r.Attrs)
	}
}

// parseDoc parses a request body, returning its root with every
// attribute, after checking that parseResponse accepts it too.
func parseDoc(doc string) (*element, error) {
	if _, err := parseResponse([]byte(doc)); err != nil {
		return nil, err
	}
	var root element
	if err := xml.Unmarshal([]byte(doc), &root); err != nil {
		return nil, err
	}
	return &root, nil
}

func TestNetReason(t *testing.T) {
	t.Parallel()
	op := func(err error) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", err)}
	}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{op(syscall.ECONNREFUSED), "connection refused"},
		{op(syscall.ECONNRESET), "connection reset"},
		{op(syscall.EADDRNOTAVAIL), "address not available (ephemeral ports exhausted?)"},
		{op(syscall.EMFILE), "too many open files"},
		{fmt.Errorf("reading response: %w", errors.New("unexpected EOF")), "other"},
		{fmt.Errorf("post: %w", os.ErrDeadlineExceeded), "timeout"},
	} {
		if got := netReason(tc.err); got != tc.want {
			t.Errorf("netReason(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
