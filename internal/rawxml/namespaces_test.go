package rawxml

import (
	"errors"
	"testing"
)

// TestRejectsReservedPrefixes checks that what Namespaces in XML 1.0 §3
// forbids about the reserved prefixes is refused as not
// namespace-well-formed, like an undeclared prefix: such a child would be
// relayed, and the XML parser at the other end (the XMPP server's, the
// browser's) refuses it, ending the stream.
func TestRejectsReservedPrefixes(t *testing.T) {
	for _, tc := range []struct{ name, child string }{
		{"element prefixed xmlns", `<xmlns:a/>`},
		{"prefix xmlns declared", `<a xmlns:xmlns='urn:x'/>`},
		{"prefix xml bound elsewhere", `<a xmlns:xml='urn:x'/>`},
		{"another prefix bound to the xml namespace", `<a xmlns:x='` + XMLNamespace + `'/>`},
		{"a prefix bound to the xmlns namespace", `<a xmlns:x='http://www.w3.org/2000/xmlns/'/>`},
		{"a prefix undeclared", `<a xmlns:x=''/>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, els, err := readAll(t, `<body xmlns='`+httpbind+`'>`+tc.child+`</body>`, Options{DefaultNS: "jabber:client"})
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("got %q, %v; want ErrMalformed", els, err)
			}
		})
	}
}
