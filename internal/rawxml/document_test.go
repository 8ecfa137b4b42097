package rawxml

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// TestDocument checks what Document accepts, with the element it returns,
// and the error class of each kind of bad message of docs/design/003's
// "Bad input" table that concerns XML: ErrMalformed answers
// not-well-formed, ErrRestricted restricted-xml, ErrLimit
// policy-violation; the namespace lets the caller answer
// invalid-namespace.
func TestDocument(t *testing.T) {
	t.Parallel()
	const framing = "urn:ietf:params:xml:ns:xmpp-framing"
	xmppOpts := Options{DefaultNS: "jabber:client", MaxDepth: 4, MaxElementSize: 512}
	for _, tc := range []struct {
		name string
		doc  string
		opts Options
		// On success: the element's raw name, namespace and bytes.
		want    xml.Name
		ns, raw string
		err     error  // else the class of the error
		msg     string // and, if not empty, text the error's must contain
	}{
		// Accepted.
		{name: "open", doc: `<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="example.org" version="1.0"/>`,
			want: xml.Name{Local: "open"}, ns: framing, raw: `<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="example.org" version="1.0"/>`},
		{name: "close", doc: `<close xmlns="urn:ietf:params:xml:ns:xmpp-framing" />`,
			want: xml.Name{Local: "close"}, ns: framing, raw: `<close xmlns="urn:ietf:params:xml:ns:xmpp-framing" />`},
		{name: "stanza with children and text", doc: `<message xmlns='jabber:client' to='b@example.org'><body>hi &amp; bye</body><x xmlns='urn:x' a='1'><![CDATA[<y>]]></x></message>`, opts: xmppOpts,
			want: xml.Name{Local: "message"}, ns: "jabber:client", raw: `<message xmlns='jabber:client' to='b@example.org'><body>hi &amp; bye</body><x xmlns='urn:x' a='1'><![CDATA[<y>]]></x></message>`},
		{name: "text directly inside", doc: `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHNlY3JldA==</auth>`,
			want: xml.Name{Local: "auth"}, ns: "urn:ietf:params:xml:ns:xmpp-sasl", raw: `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHNlY3JldA==</auth>`},
		{name: "whitespace around, left out of Raw", doc: " \r\n\t<r xmlns='jabber:client'/>\n ",
			want: xml.Name{Local: "r"}, ns: "jabber:client", raw: `<r xmlns='jabber:client'/>`},
		{name: "XML declaration, left out of Raw", doc: `<?xml version='1.0' encoding='UTF-8'?>` + "\n" + `<a xmlns='urn:sm'/>`,
			want: xml.Name{Local: "a"}, ns: "urn:sm", raw: `<a xmlns='urn:sm'/>`},
		{name: "no namespace: DefaultNS", doc: `<presence/>`, opts: xmppOpts,
			want: xml.Name{Local: "presence"}, ns: "jabber:client", raw: `<presence/>`},
		{name: "no namespace, no DefaultNS", doc: `<presence/>`,
			want: xml.Name{Local: "presence"}, ns: "", raw: `<presence/>`},
		{name: "open without namespace is jabber:client's", doc: `<open to='example.org'/>`, opts: xmppOpts,
			want: xml.Name{Local: "open"}, ns: "jabber:client", raw: `<open to='example.org'/>`},
		{name: "open in another namespace", doc: `<open xmlns='urn:other'/>`,
			want: xml.Name{Local: "open"}, ns: "urn:other", raw: `<open xmlns='urn:other'/>`},
		{name: "prefixed, declared by itself", doc: `<stream:stream xmlns:stream='http://etherx.jabber.org/streams' to='example.org'/>`,
			want: xml.Name{Space: "stream", Local: "stream"}, ns: "http://etherx.jabber.org/streams", raw: `<stream:stream xmlns:stream='http://etherx.jabber.org/streams' to='example.org'/>`},
		{name: "xml:lang", doc: `<m xml:lang='en' xmlns='jabber:client'/>`,
			want: xml.Name{Local: "m"}, ns: "jabber:client", raw: `<m xml:lang='en' xmlns='jabber:client'/>`},
		{name: "depth at the limit", doc: `<a><b><c><d/></c></b></a>`, opts: xmppOpts,
			want: xml.Name{Local: "a"}, ns: "jabber:client", raw: `<a><b><c><d/></c></b></a>`},
		{name: "UTF-8", doc: `<body xmlns='jabber:client'>héllo 世界 😀</body>`,
			want: xml.Name{Local: "body"}, ns: "jabber:client", raw: `<body xmlns='jabber:client'>héllo 世界 😀</body>`},

		// not-well-formed: not one element, or text around it.
		{name: "empty", doc: ``, err: ErrMalformed},
		{name: "whitespace only", doc: " \n", err: ErrMalformed},
		{name: "declaration only", doc: `<?xml version='1.0'?>`, err: ErrMalformed},
		{name: "text only", doc: `hello`, err: ErrMalformed},
		{name: "text before", doc: `x<a/>`, err: ErrMalformed},
		{name: "text after", doc: `<a/>x`, err: ErrMalformed},
		{name: "reference after", doc: `<a/>&amp;`, err: ErrMalformed},
		{name: "non-XML space after", doc: "<a/>\u00a0", err: ErrMalformed},
		{name: "two elements", doc: `<a/><b/>`, err: ErrMalformed},
		{name: "two elements, space between", doc: "<a/>\n<a/>", err: ErrMalformed},
		{name: "CDATA after", doc: `<a/><![CDATA[x]]>`, err: ErrMalformed},
		{name: "CDATA before", doc: `<![CDATA[x]]><a/>`, err: ErrMalformed},
		{name: "end tag only", doc: `</a>`, err: ErrMalformed},
		{name: "incomplete start tag", doc: `<message to='a`, err: ErrMalformed},
		{name: "incomplete element", doc: `<message><body>hi</body>`, err: ErrMalformed},
		{name: "stream header, not closed", doc: `<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>`, err: ErrMalformed},
		{name: "mismatched end tag", doc: `<a></b>`, err: ErrMalformed},
		{name: "undeclared prefix", doc: `<stream:stream/>`, err: ErrMalformed},
		{name: "undeclared prefix inside", doc: `<a><x:b/></a>`, err: ErrMalformed},
		{name: "prefix declared by a self-closing sibling", doc: `<a><b xmlns:x='u'/><x:c/></a>`, err: ErrMalformed},
		{name: "prefix declared by an ended sibling", doc: `<a><b xmlns:x='u'></b><x:c/></a>`, err: ErrMalformed},
		{name: "stream prefix declared by a self-closing sibling", doc: `<message><x xmlns:stream='urn:other'/><stream:error/></message>`, err: ErrMalformed},
		{name: "undeclared attribute prefix", doc: `<a x:b='1'/>`, err: ErrMalformed},
		{name: "repeated attribute", doc: `<a b='1' b='2'/>`, err: ErrMalformed},
		{name: "undefined entity", doc: `<a>&nbsp;</a>`, err: ErrMalformed},
		{name: "invalid UTF-8", doc: "<a>\xff</a>", err: ErrMalformed},
		{name: "invalid UTF-8 in a name", doc: "<a\xc3/>", err: ErrMalformed},
		{name: "control character", doc: "<a>\x01</a>", err: ErrMalformed},
		{name: "declaration not first", doc: ` <?xml version='1.0'?><a/>`, err: ErrRestricted},
		{name: "bad declaration", doc: `<?xml encoding='UTF-8'?><a/>`, err: ErrMalformed},
		{name: "declaration of another encoding", doc: `<?xml version='1.0' encoding='ISO-8859-1'?><a/>`, err: ErrMalformed},

		// restricted-xml.
		{name: "comment before", doc: `<!-- hi --><a/>`, err: ErrRestricted},
		{name: "comment inside", doc: `<a><!-- hi --></a>`, err: ErrRestricted},
		{name: "comment after", doc: `<a/><!-- hi -->`, err: ErrRestricted},
		{name: "PI before", doc: `<?php x?><a/>`, err: ErrRestricted},
		{name: "PI inside", doc: `<a><?php x?></a>`, err: ErrRestricted},
		{name: "PI after", doc: `<a/><?php x?>`, err: ErrRestricted},
		{name: "DOCTYPE", doc: `<!DOCTYPE a><a/>`, err: ErrRestricted},
		{name: "entity declaration", doc: `<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>`, err: ErrRestricted},
		{name: "DOCTYPE after", doc: `<a/><!DOCTYPE a>`, err: ErrRestricted},

		// Limits.
		{name: "too deep", doc: `<a><b><c><d><e/></d></c></b></a>`, opts: xmppOpts, err: ErrLimit},
		{name: "too large", doc: `<a>` + strings.Repeat("x", 512) + `</a>`, opts: xmppOpts, err: ErrLimit},
		{name: "depth 1", doc: `<a><b/></a>`, opts: Options{MaxDepth: 1}, err: ErrLimit},
		{name: "depth error names the configured limit", doc: `<a><b><c/></b></a>`, opts: Options{MaxDepth: 2}, err: ErrLimit, msg: "nesting deeper than 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			el, err := Document([]byte(tc.doc), tc.opts)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Document(%q) = %+v, %v; want an error wrapping %v", tc.doc, el, err, tc.err)
				}
				if !strings.Contains(err.Error(), tc.msg) {
					t.Errorf("Document(%q) error %q does not say %q", tc.doc, err, tc.msg)
				}
				for _, other := range []error{ErrMalformed, ErrRestricted, ErrLimit, ErrText} {
					if other != tc.err && errors.Is(err, other) {
						t.Errorf("Document(%q) error %v wraps %v as well", tc.doc, err, other)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Document(%q): %v", tc.doc, err)
			}
			if el.Name != tc.want || el.NS != tc.ns || string(el.Raw) != tc.raw {
				t.Errorf("Document(%q) = %v %q %q; want %v %q %q", tc.doc, el.Name, el.NS, el.Raw, tc.want, tc.ns, tc.raw)
			}
		})
	}
}

// TestDocumentRawAliases checks that Raw is b's bytes, not a copy, and
// that appending to it leaves b alone.
func TestDocumentRawAliases(t *testing.T) {
	t.Parallel()
	b := []byte(" <a/> ")
	el, err := Document(b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if &el.Raw[0] != &b[1] {
		t.Error("Raw is a copy")
	}
	_ = append(el.Raw, 'x')
	if string(b) != " <a/> " {
		t.Errorf("appending to Raw changed b to %q", b)
	}
}

// TestDocumentAllocs checks that Document allocates nothing for a stanza
// with the names XMPP uses most, once its pool is warm.
func TestDocumentAllocs(t *testing.T) {
	for _, doc := range []string{
		`<message xmlns='jabber:client' to='bob@example.org' type='chat' id='m1'><body>Hello, Bob.</body></message>`,
		`<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="example.org" version="1.0"/>`,
		`<close xmlns="urn:ietf:params:xml:ns:xmpp-framing" />`,
		`<r xmlns='urn:xmpp:sm:3'/>`,
	} {
		b := []byte(doc)
		if _, err := Document(b, Options{DefaultNS: "jabber:client", MaxDepth: 100}); err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(100, func() { Document(b, Options{DefaultNS: "jabber:client", MaxDepth: 100}) }); n != 0 {
			t.Errorf("Document(%s): %v allocations, want 0", doc, n)
		}
	}
}

func BenchmarkDocument(b *testing.B) {
	doc := []byte(`<message xmlns='jabber:client' to='bob@example.org/phone' type='chat' id='a1b2c3'><body>Hello, Bob. Are you coming to the meeting at three?</body><active xmlns='http://jabber.org/protocol/chatstates'/><request xmlns='urn:xmpp:receipts'/></message>`)
	opts := Options{DefaultNS: "jabber:client", MaxDepth: 100, MaxElementSize: 1 << 18}
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Document(doc, opts); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzDocument feeds arbitrary messages to Document and checks:
//
//   - it never panics, and every error wraps exactly one of ErrMalformed,
//     ErrRestricted and ErrLimit (never io.ErrUnexpectedEOF nor ErrText:
//     the message is whole);
//   - a message longer than MaxElementSize is refused with ErrLimit;
//   - what it accepts is, around Raw (a subslice of the message), only
//     whitespace, and an XML declaration at the very start; encoding/xml
//     reads Raw alone as exactly one well-formed element with no comment,
//     processing instruction or directive, nested no deeper than
//     MaxDepth, with the namespace Document reports (DefaultNS where the
//     element declares none);
//   - it agrees with Reader: Document accepts a message without
//     declaration or surrounding whitespace exactly when Reader reads
//     <r>message</r> to its very end as one child (with one more level of
//     MaxDepth), and both give the same name and namespace.
func FuzzDocument(f *testing.F) {
	for _, s := range []string{
		`<message xmlns='jabber:client' to='b@example.org'><body>hi &amp; bye</body></message>`,
		`<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="example.org" version="1.0"/>`,
		`<close xmlns="urn:ietf:params:xml:ns:xmpp-framing" />`,
		`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHNlY3JldA==</auth>`,
		"<?xml version='1.0'?>\n<presence/> ",
		` <?xml version='1.0'?><a/>`,
		`<stream:stream xmlns:stream='http://etherx.jabber.org/streams' to='example.org'>`,
		`<a/><b/>`,
		`<a/>text`,
		`<a><!-- c --></a>`,
		`<a/><?pi?>`,
		`<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>`,
		`<a><b><c><d/></c></b></a>`,
		`<p:a xmlns:p='urn:p'><p:b/><q:c/></p:a>`,
		"<a>\xff</a>",
		`<a xml:lang='en'>&#x1F600;<![CDATA[]]>]]></a>`,
	} {
		f.Add([]byte(s), true, uint8(0), uint16(0))
		f.Add([]byte(s), false, uint8(3), uint16(64))
	}
	f.Fuzz(func(t *testing.T, doc []byte, defaultNS bool, maxDepth uint8, maxSize uint16) {
		opts := fuzzOptions(defaultNS, maxDepth, maxSize)
		el, err := Document(doc, opts)
		if err != nil {
			n := 0
			for _, class := range []error{ErrMalformed, ErrRestricted, ErrLimit, ErrText} {
				if errors.Is(err, class) {
					n++
				}
			}
			if n != 1 || errors.Is(err, ErrText) || errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("Document(%q) error %q wraps %d classes", doc, err, n)
			}
		}
		if maxSize > 0 && len(doc) > int(maxSize) {
			if !errors.Is(err, ErrLimit) {
				t.Fatalf("Document(%q) with MaxElementSize %d: %v, want ErrLimit", doc, maxSize, err)
			}
			return
		}
		if err == nil {
			checkDocument(t, doc, el, opts)
		}
		// The Reader, on the message as a child, read to the end.
		if len(doc) == 0 || doc[0] != '<' || bytes.HasPrefix(doc, []byte("<?")) || isSpace(doc[len(doc)-1]) {
			return
		}
		wrapped := append(append([]byte("<r>"), doc...), "</r>"...)
		src := newCountingReader(wrapped)
		ropts := Options{DefaultNS: opts.DefaultNS}
		if opts.MaxDepth > 0 {
			ropts.MaxDepth = opts.MaxDepth + 1
		}
		rd := NewReader(src, ropts)
		if _, rerr := rd.Root(); rerr != nil {
			t.Fatalf("Reader refused <r>: %v", rerr)
		}
		child, rerr := rd.Next()
		if rerr == nil {
			_, rerr = rd.Next()
			if rerr == ErrRootEnd && src.n() != len(wrapped) {
				rerr = errors.New("more after </r>")
			}
		} else if rerr == ErrRootEnd {
			rerr = errors.New("no child")
		}
		if rerr == ErrRootEnd {
			rerr = nil
		} else if rerr == nil {
			rerr = errors.New("more than one child")
		}
		if (err == nil) != (rerr == nil) {
			t.Fatalf("Document(%q): %v; Reader on <r>…</r>: %v", doc, err, rerr)
		}
		if err == nil && (child.Name != el.Name || child.NS != el.NS) {
			t.Fatalf("Document(%q) = %v %q; Reader: %v %q", doc, el.Name, el.NS, child.Name, child.NS)
		}
	})
}

// checkDocument checks what Document accepted, el, against doc and
// encoding/xml.
func checkDocument(t *testing.T, doc []byte, el Element, opts Options) {
	t.Helper()
	off := offsetIn(doc, el.Raw)
	if off < 0 || cap(el.Raw) != len(el.Raw) {
		t.Fatalf("Document(%q): Raw %q is not a subslice of the message, capped", doc, el.Raw)
	}
	before, after := doc[:off], doc[off+len(el.Raw):]
	if len(bytes.Trim(after, " \t\r\n")) != 0 {
		t.Fatalf("Document(%q): %q after Raw", doc, after)
	}
	if b := bytes.TrimLeft(before, " \t\r\n"); len(b) != 0 {
		if !bytes.HasPrefix(before, []byte("<?xml")) || bytes.Count(before, []byte("?>")) != 1 || !bytes.HasSuffix(bytes.TrimRight(before, " \t\r\n"), []byte("?>")) {
			t.Fatalf("Document(%q): %q before Raw", doc, before)
		}
	}
	top, depth, err := xmlOracle(el.Raw)
	if err != nil {
		t.Fatalf("Document(%q) accepted Raw %q: %v", doc, el.Raw, err)
	}
	if opts.MaxDepth > 0 && depth > opts.MaxDepth {
		t.Fatalf("Document(%q): depth %d over MaxDepth %d", doc, depth, opts.MaxDepth)
	}
	if top.Local != el.Name.Local {
		t.Fatalf("Document(%q): name %v, encoding/xml %v", doc, el.Name, top)
	}
	ns := top.Space
	if el.Name.Space == "" && !declaresDefault(el.Raw) {
		ns = opts.DefaultNS
	}
	if ns != el.NS && !(el.Name.Space == "" && el.Name.Local == "xmlns") {
		t.Fatalf("Document(%q): namespace %q, want %q", doc, el.NS, ns)
	}
}

// offsetIn returns where sub starts in b's memory, or -1.
func offsetIn(b, sub []byte) int {
	if len(sub) == 0 || len(b) == 0 {
		return -1
	}
	for i := range b {
		if &b[i] == &sub[0] {
			return i
		}
	}
	return -1
}

func ExampleDocument() {
	msg := []byte("<?xml version='1.0'?>\n<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.org' version='1.0'/>\n")
	el, err := Document(msg, Options{DefaultNS: "jabber:client", MaxDepth: 100})
	fmt.Println(el.Name.Local, el.NS, err)
	fmt.Printf("%s\n", el.Raw)

	for _, msg := range []string{
		`<message><body>one</body></message><message><body>two</body></message>`,
		`<message><!-- hidden --></message>`,
	} {
		_, err := Document([]byte(msg), Options{})
		switch {
		case errors.Is(err, ErrRestricted):
			fmt.Println("restricted-xml:", err)
		case errors.Is(err, ErrMalformed):
			fmt.Println("not-well-formed:", err)
		}
	}
	// Output:
	// open urn:ietf:params:xml:ns:xmpp-framing <nil>
	// <open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.org' version='1.0'/>
	// not-well-formed: rawxml: malformed XML: more than one element
	// restricted-xml: rawxml: restricted XML: comment
}
