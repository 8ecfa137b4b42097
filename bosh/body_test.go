package bosh

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/boshd/boshd/config"
	"github.com/boshd/boshd/session"
)

// defaultMaxDepth is max_element_depth's default.
var defaultMaxDepth = config.Default().MaxElementDepth

// parseBody parses a request as the handler does with the default
// max_element_depth.
func parseBody(data []byte) (*body, error) {
	b := new(body)
	err := parseBodyDepth(b, data, defaultMaxDepth)
	return b, err
}

// encodeBody returns the bytes of a response <body/>, as appendBody
// appends them.
func encodeBody(resp *session.Response, attrs ...attr) []byte {
	return appendBody(nil, resp, attrs...)
}

func TestParseBody(t *testing.T) {
	t.Parallel()
	b, err := parseBody([]byte(`<?xml version='1.0'?><body xmlns='` + NS + `' xmlns:x='urn:xmpp:xbosh' rid='42' sid='abc' x:restart='true' xml:lang='de' to='example.org' wait='60' hold='1' ver='1.6' x:version='1.0'>
 <message to='bob@example.org'><body>hi</body></message>
 <iq xmlns='jabber:client' type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>
 <json:json xmlns:json='urn:xmpp:json:0'>{}</json:json>
</body>`))
	if err != nil {
		t.Fatal(err)
	}
	if b.rid != 42 || b.sid != "abc" || !b.restart || b.lang != "de" || b.to != "example.org" || b.wait != "60" || b.ver != "1.6" || b.xmppVersion != "1.0" {
		t.Errorf("attributes: %+v", b)
	}
	want := []string{
		// XEP-0206 §2: jabber:client added where missing; XEP-0124 §6: other
		// namespaces forwarded unchanged.
		`<message xmlns='jabber:client' to='bob@example.org'><body>hi</body></message>`,
		`<iq xmlns='jabber:client' type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>`,
		`<json:json xmlns:json='urn:xmpp:json:0'>{}</json:json>`,
	}
	if len(b.payload) != len(want) {
		t.Fatalf("payload %q", b.payload)
	}
	for i := range want {
		if string(b.payload[i]) != want[i] {
			t.Errorf("child %d:\n got %s\nwant %s", i, b.payload[i], want[i])
		}
	}
}

func TestParseBodyRejects(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, doc string
	}{
		{"XEP-0124 §6 wrong root", `<foo xmlns='` + NS + `' rid='1'/>`},
		{"XEP-0124 §6 wrong namespace", `<body xmlns='jabber:client' rid='1'/>`},
		{"XEP-0124 §6 malformed", `<body xmlns='` + NS + `' rid='1'><message></body>`},
		{"XEP-0124 §6 partial", `<body xmlns='` + NS + `' rid='1'><message>`},
		{"XEP-0124 §6 comment", `<body xmlns='` + NS + `' rid='1'><!--x--></body>`},
		{"XEP-0124 §6 DOCTYPE", `<!DOCTYPE body><body xmlns='` + NS + `' rid='1'/>`},
		{"XEP-0124 §6 entity", `<body xmlns='` + NS + `' rid='1'><message>&xxe;</message></body>`},
		{"XEP-0124 §6 processing instruction", `<body xmlns='` + NS + `' rid='1'><?x y?></body>`},
		{"XEP-0124 §6 text", `<body xmlns='` + NS + `' rid='1'>text</body>`},
		{"XEP-0124 §6 missing rid", `<body xmlns='` + NS + `'/>`},
		{"XEP-0124 §6 bad rid", `<body xmlns='` + NS + `' rid='x1'/>`},
		{"XEP-0124 §14.1 rid beyond 2^53", `<body xmlns='` + NS + `' rid='9007199254740992'/>`},
		{"XEP-0206 §2 starttls", `<body xmlns='` + NS + `' rid='1'><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></body>`},
		{"child in no namespace", `<body xmlns='` + NS + `' rid='1'><message xmlns='' to='a@b'/></body>`},
		{"second child in no namespace", `<body xmlns='` + NS + `' rid='1'><message to='a@b'/><A xmlns=''/></body>`},
		{"deep nesting", `<body xmlns='` + NS + `' rid='1'>` + strings.Repeat("<a>", 100) + strings.Repeat("</a>", 100) + `</body>`},
		{"not XML", `hello`},
		{"empty", ``},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseBody([]byte(tc.doc))
			var re *requestError
			if !errors.As(err, &re) || re.cond != session.BadRequest {
				t.Fatalf("got %v, want bad-request", err)
			}
		})
	}
}

func TestParseBodyKeepsSIDOnError(t *testing.T) {
	t.Parallel()
	b, err := parseBody([]byte(`<body xmlns='` + NS + `' rid='5' sid='s1'><a></b></body>`))
	if err == nil || b.sid != "s1" {
		t.Fatalf("sid %q, err %v", b.sid, err)
	}
}

func TestMaxRID(t *testing.T) {
	t.Parallel()
	// XEP-0124 §14.1: rids up to 2^53-1 work.
	b, err := parseBody([]byte(`<body xmlns='` + NS + `' rid='9007199254740991'/>`))
	if err != nil || b.rid != session.MaxRID {
		t.Fatalf("rid %d, err %v", b.rid, err)
	}
}

func TestEncodeBody(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		resp session.Response
		want string
	}{
		{"empty", session.Response{}, `<body xmlns='` + NS + `'/>`},
		{"payload", session.Response{Payload: [][]byte{[]byte(`<message xmlns='jabber:client'/>`)}}, `<body xmlns='` + NS + `'><message xmlns='jabber:client'/></body>`},
		{"XEP-0206 §2 stream error", session.Response{Type: "terminate", Condition: session.RemoteStreamError, Payload: [][]byte{[]byte(`<stream:error xmlns:stream='` + NSStream + `'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>`)}},
			`<body xmlns='` + NS + `' xmlns:stream='` + NSStream + `' type='terminate' condition='remote-stream-error'><stream:error xmlns:stream='` + NSStream + `'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></body>`},
		{"recoverable error", session.Response{Type: "error"}, `<body xmlns='` + NS + `' type='error'/>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(encodeBody(&tc.resp)); got != tc.want {
				t.Errorf("\n got %s\nwant %s", got, tc.want)
			}
		})
	}
	if got := string(encodeBody(&session.Response{}, attr{"from", "a'b&c<d"})); got != `<body xmlns='`+NS+`' from='a&apos;b&amp;c&lt;d'/>` {
		t.Errorf("escaping: %s", got)
	}
}

func BenchmarkParseBody(b *testing.B) {
	doc := []byte(`<body xmlns='` + NS + `' rid='1000' sid='abcdefghijklmnopqrstuvwx'>` +
		strings.Repeat(`<message to='bob@example.org' type='chat' id='x1'><body>Hello there &amp; welcome</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`, 3) + `</body>`)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseBody(doc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseEmptyBody is the commonest request: an empty poll or a
// new held request, which takes the fast path (rawxml.EmptyRoot).
func BenchmarkParseEmptyBody(b *testing.B) {
	doc := []byte(`<body rid='1249243562' sid='abcdefghijklmnopqrstuvwx' xmlns='` + NS + `'/>`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseBody(doc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeBody(b *testing.B) {
	resp := &session.Response{Payload: [][]byte{[]byte(`<message xmlns='jabber:client' to='bob@example.org' type='chat' id='x1'><body>Hello there &amp; welcome</body></message>`)}}
	b.ReportAllocs()
	for b.Loop() {
		encodeBody(resp)
	}
}

func TestMaxElementDepthConfigurable(t *testing.T) {
	t.Parallel()
	// Issue 3.13: the element depth limit follows max_element_depth.
	c := newEnv(t, func(cfg *config.Config) { cfg.MaxElementDepth = 8 })
	sid := c.create(100, 1)
	deep := strings.Repeat("<a>", 8) + strings.Repeat("</a>", 8)
	_, _, resp := c.post(`<body xmlns='http://jabber.org/protocol/httpbind' rid='101' sid='` + sid + `'>` + deep + `</body>`)
	if attrs(resp)["condition"] != "bad-request" {
		t.Fatalf("9 levels with max_element_depth 8: %s", resp)
	}
}

// TestParseBodyKeepsNothingOfData checks what lets the handler reuse the
// buffer a request was read into: nothing parseBody returns refers to
// it, so overwriting it afterwards changes nothing.
func TestParseBodyKeepsNothingOfData(t *testing.T) {
	t.Parallel()
	for _, doc := range []string{
		`<body xmlns='` + NS + `' rid='7' sid='abc' ack='6' key='k1' newkey='k2' stream='s2' type='terminate' pause='5'/>`,
		`<body xmlns='` + NS + `' xmlns:xmpp='urn:xmpp:xbosh' rid='1' to='example.org' route='xmpp:example.org:5222' from='a@example.org' xml:lang='en' content='text/xml; charset=utf-8' ver='1.6' wait='60' hold='1' xmpp:version='1.0'/>`,
		`<body xmlns='` + NS + `' rid='8' sid='abc'><message to='bob@example.org'><body>hi</body></message><presence/></body>`,
	} {
		data := []byte(doc)
		b, err := parseBody(data)
		if err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		want := fmt.Sprintf("%#v", *b)
		for i := range data {
			data[i] = 'x'
		}
		if got := fmt.Sprintf("%#v", *b); got != want {
			t.Errorf("after overwriting the input:\n got %s\nwant %s", got, want)
		}
	}
}
