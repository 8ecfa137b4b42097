package rawxml

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// manyAttributes returns n pairs of attributes, a<i> and p:a<i>, none
// repeated.
func manyAttributes(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, " a%d='' p:a%d=''", i, i)
	}
	return b.String()
}

// TestManyAttributes checks that a start tag with very many attributes,
// as a hostile client may send, has its repeats found, on the root and on
// a child. That this takes linear time (the checks used to be
// quadratic) is measured by BenchmarkManyAttributes: its ns/attr grows by
// less than 2× from 1,000 to 50,000 pairs (cache effects), where a
// quadratic check would grow 50×.
func TestManyAttributes(t *testing.T) {
	attrs := manyAttributes(50000)
	for _, tc := range []struct{ name, doc string }{
		{"root", `<r xmlns:p='urn:p' xmlns:q='urn:p'` + attrs + ` q:a49999=''/>`},
		{"child", `<r><c xmlns:p='urn:p' xmlns:q='urn:p'` + attrs + ` q:a49999=''/></r>`},
		{"root repeat", `<r xmlns:p='urn:p'` + attrs + ` a0=''/>`},
		{"child repeat", `<r><c xmlns:p='urn:p'` + attrs + ` a0=''/></r>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := readAll(t, tc.doc, Options{})
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("got %v, want ErrMalformed", err)
			}
		})
	}
}

// BenchmarkManyAttributes reads a child with n pairs of attributes and
// reports the time per attribute, which stays nearly flat while the
// repeat checks are linear.
func BenchmarkManyAttributes(b *testing.B) {
	for _, n := range []int{1000, 10000, 50000} {
		doc := `<r><c xmlns:p='urn:p'` + manyAttributes(n) + `/></r>`
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				r := NewReader(strings.NewReader(doc), Options{})
				if _, err := r.Root(); err != nil {
					b.Fatal(err)
				}
				if _, err := r.Next(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(2*n), "ns/attr")
		})
	}
}
