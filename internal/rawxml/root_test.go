package rawxml

import (
	"slices"
	"strings"
	"testing"
)

func TestRootAttributesByNamespace(t *testing.T) {
	// XEP-0206 §5: match by namespace URI, not by prefix.
	doc := `<body xmlns='` + httpbind + `' xmlns:x='urn:xmpp:xbosh' rid='7' x:restart='true' xml:lang='en'/>`
	root, _, err := readAll(t, doc, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if root.NS() != httpbind || root.Name.Local != "body" {
		t.Errorf("root = %v in %q", root.Name, root.NS())
	}
	for _, tc := range []struct{ ns, local, want string }{
		{"", "rid", "7"},
		{"urn:xmpp:xbosh", "restart", "true"},
		{XMLNamespace, "lang", "en"},
	} {
		if got, ok := root.Get(tc.ns, tc.local); !ok || got != tc.want {
			t.Errorf("Get(%q, %q) = %q, %v; want %q", tc.ns, tc.local, got, ok, tc.want)
		}
	}
	if _, ok := root.Get("", "restart"); ok {
		t.Error("prefixed attribute matched without its namespace")
	}
}

func TestRootDeclarations(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		want []string // the declarations kept, as prefix=uri
	}{
		{`<stream:stream xmlns='jabber:client' id='a1' xmlns:stream='urn:s' from='d' version='1.0' xml:lang='en'>`,
			[]string{"=jabber:client", "stream=urn:s"}},
		{`<r a='1' b='2'>`, nil},
		{`<r>`, nil},
	} {
		root, err := NewReader(strings.NewReader(tc.doc), Options{}).Root()
		if err != nil {
			t.Fatalf("%s: %v", tc.doc, err)
		}
		d := root.Declarations()
		var got []string
		for _, a := range d.Attr {
			prefix := a.Name.Local
			if a.Name.Space == "" {
				prefix = ""
			}
			got = append(got, prefix+"="+a.Value)
		}
		if d.Name != root.Name || !slices.Equal(got, tc.want) || cap(d.Attr) != len(tc.want) {
			t.Errorf("%s: Declarations() = %v %q (cap %d), want %v %q", tc.doc, d.Name, got, cap(d.Attr), root.Name, tc.want)
		}
		if ns, nsd := root.NS(), d.NS(); ns != nsd {
			t.Errorf("%s: NS() %q, of the declarations %q", tc.doc, ns, nsd)
		}
	}
}
