package rawxml

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

const httpbind = "http://jabber.org/protocol/httpbind"

// readAll reads the root and every child of doc.
func readAll(t *testing.T, doc string, opts Options) (Root, []Element, error) {
	t.Helper()
	rd := NewReader(strings.NewReader(doc), opts)
	root, err := rd.Root()
	if err != nil {
		return root, nil, err
	}
	var els []Element
	for {
		el, err := rd.Next()
		if err == ErrRootEnd {
			return root, els, nil
		}
		if err != nil {
			return root, els, err
		}
		els = append(els, el)
	}
}

func TestChildrenKeepTheirBytes(t *testing.T) {
	opts := Options{DefaultNS: "jabber:client"}
	for _, tc := range []struct {
		name string
		doc  string
		want []string
	}{
		{
			name: "XEP-0206 §2 stanza without xmlns gets jabber:client",
			doc:  `<body xmlns='` + httpbind + `' rid='1'><message to='a@b'><body>hi &amp; bye</body></message></body>`,
			want: []string{`<message xmlns='jabber:client' to='a@b'><body>hi &amp; bye</body></message>`},
		},
		{
			name: "XEP-0124 §6 own namespace kept byte for byte",
			doc:  `<body xmlns="` + httpbind + `"><auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN">AGEAYg==</auth></body>`,
			want: []string{`<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN">AGEAYg==</auth>`},
		},
		{
			name: "self-closing and whitespace between children",
			doc:  "<body xmlns='" + httpbind + "'>\n <presence/>\n\t<iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq> </body>",
			want: []string{`<presence xmlns='jabber:client'/>`, `<iq xmlns='jabber:client' type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>`},
		},
		{
			name: "root prefix declarations copied into children",
			doc:  `<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='x'><stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>`,
			want: []string{`<stream:features xmlns:stream='http://etherx.jabber.org/streams'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>`},
		},
		{
			name: "only the root prefixes a child uses are copied",
			doc:  `<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback'><message><x db:a='1'/></message>`,
			want: []string{`<message xmlns='jabber:client' xmlns:db='jabber:server:dialback'><x db:a='1'/></message>`},
		},
		{
			name: "a child redeclaring the prefix keeps its own",
			doc:  `<b xmlns='` + httpbind + `' xmlns:x='urn:a'><x:y xmlns:x='urn:b'/></b>`,
			want: []string{`<x:y xmlns:x='urn:b'/>`},
		},
		{
			name: "a self-closing descendant's declaration ends with it",
			doc:  `<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'><message><x xmlns:stream='urn:other'/><stream:error/></message>`,
			want: []string{`<message xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'><x xmlns:stream='urn:other'/><stream:error/></message>`},
		},
		{
			name: "non-ASCII and entities untouched",
			doc:  `<body xmlns='` + httpbind + `'><message xml:lang='de'><body>Grüße &#x1F600; &lt;3</body></message></body>`,
			want: []string{`<message xmlns='jabber:client' xml:lang='de'><body>Grüße &#x1F600; &lt;3</body></message>`},
		},
		{
			name: "CDATA kept",
			doc:  `<body xmlns='` + httpbind + `'><message><body><![CDATA[<b>]]></body></message></body>`,
			want: []string{`<message xmlns='jabber:client'><body><![CDATA[<b>]]></body></message>`},
		},
		{
			name: "XML declaration allowed before the root",
			doc:  `<?xml version='1.0' encoding='utf-8'?><body xmlns='` + httpbind + `'/>`,
			want: nil,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, els, err := readAll(t, tc.doc, opts)
			if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("error: %v", err)
			}
			if len(els) != len(tc.want) {
				t.Fatalf("got %d children, want %d", len(els), len(tc.want))
			}
			for i := range els {
				if string(els[i].Raw) != tc.want[i] {
					t.Errorf("child %d:\n got %s\nwant %s", i, els[i].Raw, tc.want[i])
				}
			}
		})
	}
}

func TestRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		doc  string
		want error
	}{
		{"XEP-0124 §6 comment", `<body xmlns='` + httpbind + `'><!-- x --></body>`, ErrRestricted},
		{"XEP-0124 §6 comment in child", `<body xmlns='` + httpbind + `'><message><!-- x --></message></body>`, ErrRestricted},
		{"XEP-0124 §6 processing instruction", `<body xmlns='` + httpbind + `'><?php x?></body>`, ErrRestricted},
		{"XEP-0124 §6 DOCTYPE", `<!DOCTYPE body [<!ENTITY x "y">]><body xmlns='` + httpbind + `'/>`, ErrRestricted},
		{"XEP-0124 §6 undefined entity", `<body xmlns='` + httpbind + `'><message><body>&x;</body></message></body>`, ErrMalformed},
		{"late XML declaration", ` <?xml version='1.0'?><a/>`, ErrRestricted},
		{"XEP-0124 §6 text in root", `<body xmlns='` + httpbind + `'>hello</body>`, ErrText},
		{"XEP-0124 §6 mismatched end tag", `<body xmlns='` + httpbind + `'><message></iq></body>`, ErrMalformed},
		{"XEP-0124 §6 mismatched root end", `<body xmlns='` + httpbind + `'></bodx>`, ErrMalformed},
		{"XEP-0124 §6 truncated", `<body xmlns='` + httpbind + `'><message>`, io.ErrUnexpectedEOF},
		{"repeated attribute on root", `<body rid='1' rid='2'/>`, ErrMalformed},
		{"undeclared prefix", `<body xmlns='` + httpbind + `'><x:y/></body>`, ErrMalformed},
		{"prefix declared by a self-closing sibling", `<body xmlns='` + httpbind + `'><a><b xmlns:x='u'/><x:c/></a></body>`, ErrMalformed},
		{"prefix declared by an ended sibling", `<body xmlns='` + httpbind + `'><a><b xmlns:x='u'></b><x:c/></a></body>`, ErrMalformed},
		{"too deep", `<body xmlns='` + httpbind + `'><a><b><c><d/></c></b></a></body>`, ErrLimit},
		{"too big", `<body xmlns='` + httpbind + `'><a>` + strings.Repeat("x", 200) + `</a></body>`, ErrLimit},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := readAll(t, tc.doc, Options{MaxDepth: 4, MaxElementSize: 100})
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func BenchmarkNext(b *testing.B) {
	doc := `<body xmlns='` + httpbind + `' rid='1' sid='abc'>` +
		strings.Repeat(`<message to='bob@example.org' type='chat' id='x1'><body>Hello there &amp; welcome</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`, 3) +
		`</body>`
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		rd := NewReader(strings.NewReader(doc), Options{DefaultNS: "jabber:client"})
		if _, err := rd.Root(); err != nil {
			b.Fatal(err)
		}
		for {
			_, err := rd.Next()
			if err == ErrRootEnd {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	}
}

func TestBigChildBuffersNotKept(t *testing.T) {
	// A Reader lives as long as its upstream stream: after a big child
	// (a roster) it goes back to its small buffers.
	big := `<iq xmlns='jabber:client' type='result'><query xmlns='jabber:iq:roster'>` +
		strings.Repeat(`<item jid='contact@example.org' name='A &amp; B'/>`, 400) + `</query></iq>`
	rd := NewReader(strings.NewReader(`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`+big+`<presence/>`), Options{})
	if _, err := rd.Root(); err != nil {
		t.Fatal(err)
	}
	el, err := rd.Next()
	if err != nil || len(el.Raw) != len(big) {
		t.Fatalf("big child: %d bytes, %v", len(el.Raw), err)
	}
	if cap(rd.buf) != len(rd.bufArr) || cap(rd.vals) != len(rd.valsArr) {
		t.Fatalf("kept buffers of %d and %d bytes after a child of %d", cap(rd.buf), cap(rd.vals), len(big))
	}
	if el, err := rd.Next(); err != nil || string(el.Raw) != `<presence/>` {
		t.Fatalf("next child %q, %v", el.Raw, err)
	}
}

// readDoc returns the root's name and every child's namespace and
// bytes (Raw itself, not a copy), or the error that stopped rd.
func readDoc(rd *Reader) ([][]byte, error) {
	root, err := rd.Root()
	if err != nil {
		return nil, err
	}
	out := [][]byte{[]byte(root.Name.Space + ":" + root.Name.Local)}
	for {
		el, err := rd.Next()
		if err == ErrRootEnd {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, []byte(el.NS), el.Raw)
	}
}

func TestReset(t *testing.T) {
	// A Reset Reader reads as a new one would, even after an error, and
	// the Raw bytes it returned before are not changed by reading on.
	docs := []struct {
		doc  string
		opts Options
	}{
		{`<body xmlns='` + httpbind + `' xmlns:x='urn:x'><message><body>a &amp; b</body></message><x:y/></body>`, Options{DefaultNS: "jabber:client"}},
		{`<r xmlns='urn:r'><a><b></a></r>`, Options{}},
		{`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'><stream:features/><iq type='get'/></stream:stream>`, Options{MaxDepth: 3}},
	}
	var rd Reader
	var kept [][][]byte
	var copies []string
	for _, d := range docs {
		want, wantErr := readDoc(NewReader(strings.NewReader(d.doc), d.opts))
		rd.Reset(strings.NewReader(d.doc), d.opts)
		got, err := readDoc(&rd)
		if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) || fmt.Sprint(err) != fmt.Sprint(wantErr) {
			t.Fatalf("after Reset: %q, %v\nnew Reader: %q, %v", got, err, want, wantErr)
		}
		kept = append(kept, got)
		copies = append(copies, fmt.Sprintf("%q", got))
	}
	for i := range kept {
		if got := fmt.Sprintf("%q", kept[i]); got != copies[i] {
			t.Fatalf("document %d's results changed: %s, were %s", i, got, copies[i])
		}
	}
}

// TestResetAfterRoot reads documents with a different Reader for every
// child, each taking over with ResetAfterRoot, and checks that they read
// what one Reader reads: prefixes and namespaces the root declares,
// whitespace between children, the root's end, and errors.
func TestResetAfterRoot(t *testing.T) {
	docs := []struct {
		doc  string
		opts Options
	}{
		{`<stream:stream id='s1' xmlns='jabber:client' from='d' xmlns:stream='http://etherx.jabber.org/streams' xmlns:x='urn:x' xml:lang='en'>` +
			`<stream:features><x:y/></stream:features> <message to='a'><body>1 &amp; 2</body></message>` + "\n" +
			`<x:z a='1'/><iq xmlns='urn:other'><q/></iq></stream:stream>`, Options{DefaultNS: "jabber:client", MaxDepth: 4}},
		{`<r xmlns='urn:r'><a/><b><c></b></r>`, Options{}},
		{`<r xmlns='urn:r'><a/><b>` + strings.Repeat("x", 64) + `</b></r>`, Options{MaxElementSize: 40}},
	}
	for _, d := range docs {
		want, wantErr := readDoc(NewReader(strings.NewReader(d.doc), d.opts))
		want = want[1:] // the root's name

		src := strings.NewReader(d.doc)
		first := NewReader(src, d.opts)
		root, err := first.Root()
		if err != nil {
			t.Fatalf("%s: Root: %v", d.doc, err)
		}
		// Dirty Readers, left by other documents, take turns; every
		// other one is given the root's declarations only.
		readers := []*Reader{first, NewReader(strings.NewReader(docs[0].doc), docs[0].opts), new(Reader)}
		readers[1].Root()
		readers[1].Next()
		got := [][]byte{}
		for i := 0; ; i++ {
			rd := readers[i%len(readers)]
			if i%2 == 0 {
				rd.ResetAfterRoot(src, d.opts, root)
			} else {
				rd.ResetAfterRoot(src, d.opts, root.Declarations())
			}
			el, err := rd.Next()
			if err == ErrRootEnd {
				break
			}
			if err != nil {
				if fmt.Sprint(err) != fmt.Sprint(wantErr) {
					t.Errorf("%s: error %v, want %v", d.doc, err, wantErr)
				}
				break
			}
			got = append(got, []byte(el.NS), el.Raw)
		}
		if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
			t.Errorf("%s:\nwith a Reader per child: %q\nwith one Reader:         %q", d.doc, got, want)
		}
	}
}
