package rawxml

import "testing"

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
