package main

import (
	"testing"
)

func TestMessageFields(t *testing.T) {
	t.Parallel()
	var in inspector
	for _, tc := range []struct {
		msg, from, body string
		hasBody         bool
	}{
		{"<message xmlns='jabber:client' from='a@b/c'><body>boshload run=x seq=1 ts=2</body></message>", "a@b/c", "boshload run=x seq=1 ts=2", true},
		{"<message from='a&amp;b@c/&apos;r'><body>x &lt;y&gt; &#65;</body></message>", "a&b@c/'r", "x <y> A", true},
		{"<message from='a@b'><body><![CDATA[<raw>]]></body></message>", "a@b", "<raw>", true},
		{"<message from='a@b'><body/></message>", "a@b", "", true},
		{"<message from='a@b'><body xml:lang='en'>\r\nx</body></message>", "a@b", "\nx", true},
		{"<message from='a@b'><thread>t</thread><body>second</body></message>", "a@b", "second", true},
		{"<message from='a@b'><x:body xmlns:x='urn:other'>not this</x:body></message>", "a@b", "", false},
		{"<message from='a@b'><body xmlns='urn:other'>nor this</body></message>", "a@b", "", false},
		{"<cli:message xmlns:cli='jabber:client' from='a@b'><cli:body>prefixed</cli:body></cli:message>", "a@b", "prefixed", true},
		{"<message><subject>s</subject></message>", "", "", false},
	} {
		el, err := parseMessage([]byte(tc.msg))
		if err != nil {
			t.Errorf("parseMessage(%q): %v", tc.msg, err)
			continue
		}
		if !isElement(el, nsClient, "message") {
			t.Errorf("%q: {%s}%s, want a jabber:client message", tc.msg, el.NS, el.Name.Local)
		}
		from, body, ok, err := in.messageFields(el.Raw)
		if err != nil || from != tc.from || body != tc.body || ok != tc.hasBody {
			t.Errorf("messageFields(%q) = %q, %q, %v, %v; want %q, %q, %v", tc.msg, from, body, ok, err, tc.from, tc.body, tc.hasBody)
		}
	}
}

func TestParseMessageRefuses(t *testing.T) {
	t.Parallel()
	for _, msg := range []string{
		"", "text", "<a/><b/>", "<a>", "<a/>trailing", "<!-- c --><a/>", "<p:a/>", "<a>&nbsp;</a>",
	} {
		if el, err := parseMessage([]byte(msg)); err == nil {
			t.Errorf("parseMessage(%q) = %+v, want an error", msg, el)
		}
	}
}

func TestFirstChild(t *testing.T) {
	t.Parallel()
	var in inspector
	for _, tc := range []struct{ msg, ns, want string }{
		{"<stream:error xmlns:stream='" + nsStream + "'><host-unknown xmlns='" + nsStreams + "'/><text xmlns='" + nsStreams + "'>x</text></stream:error>", nsStreams, "host-unknown"},
		{"<stream:error xmlns:stream='" + nsStream + "'><app xmlns='urn:x'/><conflict xmlns='" + nsStreams + "'/></stream:error>", nsStreams, "conflict"},
		{"<failure xmlns='" + nsSASL + "'><not-authorized/></failure>", nsSASL, "not-authorized"},
		{"<failure xmlns='" + nsSASL + "'/>", nsSASL, ""},
	} {
		el, err := parseMessage([]byte(tc.msg))
		if err != nil {
			t.Fatalf("parseMessage(%q): %v", tc.msg, err)
		}
		if got := in.firstChild(el.Raw, tc.ns); got != tc.want {
			t.Errorf("firstChild(%q) = %q, want %q", tc.msg, got, tc.want)
		}
	}
}

func TestOpenMessage(t *testing.T) {
	t.Parallel()
	el, err := parseMessage([]byte(openMessage("a'b")))
	if err != nil || !isElement(el, nsFraming, "open") {
		t.Fatalf("openMessage: {%s}%s, %v", el.NS, el.Name.Local, err)
	}
	e, err := decodeElement(el)
	if err != nil || e.attr("to") != "a'b" || e.attr("version") != "1.0" {
		t.Errorf("decoded %+v, %v", e, err)
	}
	if el, err := parseMessage([]byte(closeMessage)); err != nil || !isElement(el, nsFraming, "close") {
		t.Errorf("closeMessage: {%s}%s, %v", el.NS, el.Name.Local, err)
	}
}

// TestAppendChatMessage checks the bytes the WebSocket chat sends against
// chatMessage's, which BOSH sends.
func TestAppendChatMessage(t *testing.T) {
	t.Parallel()
	got := string(appendChatMessage([]byte("x"), "r1", escapeAttr("b&c@localhost/r"), 7, 99))
	want := "x" + chatMessage("r1", "b&c@localhost/r", 7, 99)
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	var in inspector
	el, err := parseMessage([]byte(want[1:]))
	if err != nil {
		t.Fatal(err)
	}
	if _, body, ok, err := in.messageFields(el.Raw); !ok || err != nil || body != chatBodyOf(want[1:]) {
		t.Errorf("body %q, %v, %v", body, ok, err)
	}
}
