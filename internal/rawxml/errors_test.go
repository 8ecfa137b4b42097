package rawxml

import (
	"errors"
	"strings"
	"testing"
)

// TestErrorsWrapSentinels checks that errors encoding/xml reports other
// than syntax errors (an XML declaration inside the root with an unknown
// version or encoding) are wrapped like the others.
func TestErrorsWrapSentinels(t *testing.T) {
	for _, doc := range []string{
		`<r><?xml version='2.0'?></r>`,
		`<r><a><?xml version='1.0' encoding='latin1'?></a></r>`,
		`<?xml version='1.0' encoding='latin1'?><r/>`,
	} {
		rd := NewReader(strings.NewReader(doc), Options{})
		_, err := rd.Root()
		call := "Root"
		if err == nil {
			_, err = rd.Next()
			call = "Next"
		}
		ok := false
		for _, want := range []error{ErrRestricted, ErrMalformed} {
			ok = ok || errors.Is(err, want)
		}
		if !ok {
			t.Errorf("%s: %s returned %q, which wraps neither ErrRestricted nor ErrMalformed", doc, call, err)
		}
	}
}
