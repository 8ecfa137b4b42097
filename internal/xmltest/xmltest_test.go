package xmltest

import (
	"testing"

	"github.com/boshd/boshd/internal/rawxml"
)

func TestStandalone(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		raw, name string // name "" if raw does not stand alone
	}{
		{`<message xmlns='jabber:client'><body>hi</body></message>`, "message"},
		{`<a/>`, "a"},
		{`<x:a xmlns:x='urn:x'/>`, "a"},
		{`<a/><b/>`, ""},
		{`<a>`, ""},
		{`text<a/>`, ""},
		{`<a><!-- c --></a>`, ""},
		{`<x:a/>`, ""},
		{``, ""},
	} {
		top, _, err := Standalone([]byte(tc.raw), "<w>", "</w>", rawxml.Options{})
		if tc.name == "" && err == nil {
			t.Errorf("Standalone(%q) passes", tc.raw)
		}
		if tc.name != "" && (err != nil || top.Local != tc.name) {
			t.Errorf("Standalone(%q) = %v, %v; want %s", tc.raw, top, err, tc.name)
		}
	}
}
