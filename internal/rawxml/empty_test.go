package rawxml

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func TestEmptyRoot(t *testing.T) {
	tests := []struct {
		doc  string
		opts Options
		ok   bool
	}{
		{`<body rid='1' xmlns='` + httpbind + `'/>`, Options{}, true},
		{"\n <body rid=\"1\" sid='a-b_c' xmlns='" + httpbind + "' xmlns:xmpp='urn:xmpp:xbosh' xmpp:version='1.0' xml:lang='en' />\r\n", Options{}, true},
		{`<b/>`, Options{}, true},
		// Outside the fast path, whatever the Reader says of them.
		{`<?xml version='1.0'?><body/>`, Options{}, false},
		{`<body rid='1'></body>`, Options{}, false},
		{`<body rid='1'><presence/></body>`, Options{}, false},
		{`<body to='a&amp;b'/>`, Options{}, false},
		{`<body to='Grüße'/>`, Options{}, false},
		{"<body to='a\tb'/>", Options{}, false},
		{`<body rid='1'/>x`, Options{}, false},
		{`<body rid='1'/><body/>`, Options{}, false},
		{`<body rid=1/>`, Options{}, false},
		{`<body rid='1'sid='2'/>`, Options{}, false},
		{`<body rid='1/>`, Options{}, false},
		{`<body rid='1' rid='2'/>`, Options{}, false},
		{`<body x:a='1'/>`, Options{}, false},
		{`<x:body xmlns:x=''/>`, Options{}, false},
		{`<body xmlns:xmlns='urn:a'/>`, Options{}, false},
		{`<body a:b:c='1'/>`, Options{}, false},
		{`<body :a='1'/>`, Options{}, false},
		{`<body 1a='1'/>`, Options{}, false},
		{`<body rid='1'/>`, Options{MaxElementSize: 10}, false},
		{``, Options{}, false},
		{`<`, Options{}, false},
		{`<body`, Options{}, false},
		{`<body /`, Options{}, false},
	}
	for _, tc := range tests {
		root, ok := EmptyRoot([]byte(tc.doc), tc.opts)
		if ok != tc.ok {
			t.Errorf("EmptyRoot(%q) ok = %v, want %v", tc.doc, ok, tc.ok)
			continue
		}
		if ok {
			checkSameAsReader(t, []byte(tc.doc), tc.opts, root)
		}
	}
}

// checkSameAsReader fails t unless a Reader reads doc as root followed by
// the root's end.
func checkSameAsReader(t *testing.T, doc []byte, opts Options, root Root) {
	t.Helper()
	rd := NewReader(bytes.NewReader(doc), opts)
	want, err := rd.Root()
	if err != nil {
		t.Fatalf("EmptyRoot accepted %q, Reader.Root says %v", doc, err)
	}
	if len(root.Attr) == 0 && len(want.Attr) == 0 {
		root.Attr, want.Attr = nil, nil // encoding/xml gives an empty slice
	}
	if !reflect.DeepEqual(root, want) {
		t.Fatalf("EmptyRoot(%q) = %+v, Reader.Root = %+v", doc, root, want)
	}
	if _, err := rd.Next(); !errors.Is(err, ErrRootEnd) {
		t.Fatalf("EmptyRoot accepted %q, Reader.Next says %v", doc, err)
	}
}

// FuzzEmptyRoot checks EmptyRoot against the Reader it stands in for:
// whatever it accepts, the Reader reads as the same root and its end.
func FuzzEmptyRoot(f *testing.F) {
	for _, doc := range []string{
		`<body rid='1' sid='x' xmlns='` + httpbind + `'/>`,
		`<body xmlns:xmpp='urn:xmpp:xbosh' xmpp:restart='true' xml:lang='en'/>`,
		`<a:b xmlns:a='urn:a' a:c="1"/>`,
	} {
		f.Add([]byte(doc), uint16(0))
	}
	f.Fuzz(func(t *testing.T, doc []byte, maxSize uint16) {
		opts := Options{MaxElementSize: int(maxSize)}
		if root, ok := EmptyRoot(doc, opts); ok {
			checkSameAsReader(t, doc, opts, root)
		}
	})
}

func BenchmarkEmptyRoot(b *testing.B) {
	doc := []byte(`<body rid='1249243562' sid='SomeSID0123456789abcdef' xmlns='` + httpbind + `'/>`)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := EmptyRoot(doc, Options{}); !ok {
			b.Fatal("not accepted")
		}
	}
}

func BenchmarkReaderEmptyRoot(b *testing.B) {
	doc := []byte(`<body rid='1249243562' sid='SomeSID0123456789abcdef' xmlns='` + httpbind + `'/>`)
	b.ReportAllocs()
	for b.Loop() {
		rd := NewReader(bytes.NewReader(doc), Options{})
		if _, err := rd.Root(); err != nil {
			b.Fatal(err)
		}
		if _, err := rd.Next(); !errors.Is(err, ErrRootEnd) {
			b.Fatal(err)
		}
	}
}
