package rawxml

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestManyAttributes checks that a start tag with very many attributes,
// as a hostile client may send, is checked for repeats in linear time
// (the checks used to be quadratic), on the root and on a child.
func TestManyAttributes(t *testing.T) {
	var b strings.Builder
	for i := range 50000 {
		fmt.Fprintf(&b, " a%d='' p:a%d=''", i, i)
	}
	attrs := b.String()
	for _, tc := range []struct{ name, doc string }{
		{"root", `<r xmlns:p='urn:p' xmlns:q='urn:p'` + attrs + ` q:a49999=''/>`},
		{"child", `<r><c xmlns:p='urn:p' xmlns:q='urn:p'` + attrs + ` q:a49999=''/></r>`},
		{"root repeat", `<r xmlns:p='urn:p'` + attrs + ` a0=''/>`},
		{"child repeat", `<r><c xmlns:p='urn:p'` + attrs + ` a0=''/></r>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, _, err := readAll(t, tc.doc, Options{})
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("got %v, want ErrMalformed", err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}
