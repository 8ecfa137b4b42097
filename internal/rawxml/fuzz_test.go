package rawxml

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"testing"
)

// Fuzzing the Reader (issue: operations/hardening, part 4). See
// docs/FUZZING.md for how to run it and what a longer run found.

// countingReader is an io.ByteReader over data that counts the bytes taken,
// so that a test sees how far a Reader read before it answered.
type countingReader struct{ bytes.Reader }

func newCountingReader(data []byte) *countingReader {
	c := new(countingReader)
	c.Reset(data)
	return c
}

// n returns the number of bytes read.
func (c *countingReader) n() int { return int(c.Size()) - c.Len() }

// FuzzReader feeds arbitrary documents to a Reader and checks, for every
// option set:
//
//   - Root and Next never panic, and Next ends: ErrRootEnd or an error
//     within len(doc) calls, the same answer being given by the input;
//   - every error is ErrRootEnd (from Next), io.ErrUnexpectedEOF, or wraps
//     ErrRestricted, ErrText, ErrLimit or ErrMalformed, as documented;
//   - every child returned is standalone: encoding/xml reads it as exactly
//     one well-formed element with no comment, processing instruction or
//     directive; rawxml reads it as a root (Root, then Next until
//     ErrRootEnd or ErrText for text content); and read again as the child
//     of an empty root it comes back byte for byte with the same name and
//     namespace (it is a fixed point);
//   - MaxDepth and MaxElementSize hold for what is returned, and
//     MaxElementSize bounds what is read: no Root or Next call takes more
//     than MaxElementSize bytes of input (whitespace before a child
//     included), so one huge token (text, an attribute value) cannot make
//     the Reader buffer without bound.
func FuzzReader(f *testing.F) {
	addReaderSeeds(f)
	f.Fuzz(func(t *testing.T, doc []byte, defaultNS bool, maxDepth uint8, maxSize uint16) {
		opts := fuzzOptions(defaultNS, maxDepth, maxSize)
		src := newCountingReader(doc)
		rd := NewReader(src, opts)
		root, err := rd.Root()
		if maxSize > 0 && src.n() > int(maxSize) {
			t.Fatalf("Root read %d bytes with MaxElementSize %d (result %v)", src.n(), maxSize, err)
		}
		if err != nil {
			checkReaderError(t, "Root", err)
			return
		}
		for calls := 0; ; calls++ {
			if calls > len(doc) {
				t.Fatalf("Next returned more than %d times on %d bytes", calls, len(doc))
			}
			before := src.n()
			el, err := rd.Next()
			if read := src.n() - before; maxSize > 0 && read > int(maxSize) {
				t.Fatalf("Next read %d bytes with MaxElementSize %d (result %v)", read, maxSize, err)
			}
			if errors.Is(err, ErrRootEnd) {
				return
			}
			if err != nil {
				checkReaderError(t, "Next", err)
				return
			}
			if err := checkStandalone(el.Raw, opts.DefaultNS); err != nil {
				t.Fatalf("child %d %q: %v", calls, el.Raw, err)
			}
			checkElement(t, el, root, opts)
		}
	})
}

// fuzzOptions returns the Options that the arguments of FuzzReader and
// FuzzReaderDifferential stand for.
func fuzzOptions(defaultNS bool, maxDepth uint8, maxSize uint16) Options {
	opts := Options{MaxDepth: int(maxDepth), MaxElementSize: int(maxSize)}
	if defaultNS {
		opts.DefaultNS = "jabber:client"
	}
	return opts
}

// checkReaderError checks err against the errors the Reader documents.
func checkReaderError(t *testing.T, call string, err error) {
	t.Helper()
	if err == io.ErrUnexpectedEOF {
		return
	}
	for _, want := range []error{ErrRestricted, ErrText, ErrLimit, ErrMalformed} {
		if errors.Is(err, want) {
			return
		}
	}
	t.Fatalf("%s returned %q (%T), which wraps none of ErrRestricted, ErrText, ErrLimit, ErrMalformed", call, err, err)
}

// checkElement checks what is known of one child besides its being
// standalone: its name and namespace, and the limits.
func checkElement(t *testing.T, el Element, root Root, opts Options) {
	t.Helper()
	top, depth, err := xmlOracle(el.Raw)
	if err != nil {
		t.Fatalf("child %q: %v", el.Raw, err)
	}
	if opts.MaxDepth > 0 && depth+1 > opts.MaxDepth {
		t.Fatalf("child %q nests %d deep under the root, MaxDepth %d", el.Raw, depth, opts.MaxDepth)
	}
	if top.Local != el.Name.Local {
		t.Fatalf("child %q: Name.Local %q", el.Raw, el.Name.Local)
	}
	// Without DefaultNS an unprefixed child keeps the root's default
	// namespace in NS but is not given its declaration: only check NS
	// where Raw carries it. encoding/xml leaves an element named xmlns
	// in no namespace, whatever the declarations: no oracle there.
	if (opts.DefaultNS != "" || el.Name.Space != "" || declaresDefault(el.Raw)) && top != (xml.Name{Local: "xmlns"}) {
		if top.Space != el.NS {
			t.Fatalf("child %q: NS %q, but it stands in %q", el.Raw, el.NS, top.Space)
		}
	}
	if opts.MaxElementSize > 0 {
		// Raw is the child's bytes plus the declarations it inherited:
		// at most the default namespace and each of the root's.
		bound := opts.MaxElementSize + len(" xmlns=''") + 6*len(opts.DefaultNS)
		for _, a := range root.Attr {
			if a.Name.Space == "xmlns" || a.Name.Space == "" && a.Name.Local == "xmlns" {
				bound += len(" xmlns:=''") + len(a.Name.Local) + 6*len(a.Value)
			}
		}
		if len(el.Raw) > bound {
			t.Fatalf("child of %d bytes with MaxElementSize %d: %q", len(el.Raw), opts.MaxElementSize, el.Raw)
		}
	}
}

// declaresDefault reports whether the start tag of raw declares the
// default namespace.
func declaresDefault(raw []byte) bool {
	tok, err := xml.NewDecoder(bytes.NewReader(raw)).RawToken()
	if err != nil {
		return false
	}
	start, ok := tok.(xml.StartElement)
	if !ok {
		return false
	}
	for _, a := range start.Attr {
		if a.Name.Space == "" && a.Name.Local == "xmlns" {
			return true
		}
	}
	return false
}

// checkStandalone reports whether raw, a child returned by a Reader with
// Options.DefaultNS defaultNS, stands alone:
//
//   - encoding/xml, on its own, reads it as exactly one element, well-formed,
//     with nothing restricted in it;
//   - a Reader reads it as a root, then its children until the end or until
//     text (which a root may not hold but an element may);
//   - a Reader reads "<w>" + raw + "</w>" as one child that is raw again,
//     byte for byte.
func checkStandalone(raw []byte, defaultNS string) error {
	if _, _, err := xmlOracle(raw); err != nil {
		return err
	}
	rd := NewReader(bytes.NewReader(raw), Options{})
	if _, err := rd.Root(); err != nil {
		return fmt.Errorf("not readable as a root: %w", err)
	}
	for {
		_, err := rd.Next()
		if errors.Is(err, ErrRootEnd) || errors.Is(err, ErrText) {
			break
		}
		if err != nil {
			return fmt.Errorf("not readable as a root: %w", err)
		}
	}
	wrapped := append(append([]byte("<w>"), raw...), "</w>"...)
	rd = NewReader(bytes.NewReader(wrapped), Options{DefaultNS: defaultNS})
	if _, err := rd.Root(); err != nil {
		return fmt.Errorf("wrapped: %w", err)
	}
	again, err := rd.Next()
	if err != nil {
		return fmt.Errorf("wrapped: %w", err)
	}
	if !bytes.Equal(again.Raw, raw) {
		return fmt.Errorf("read again as %q", again.Raw)
	}
	if _, err := rd.Next(); !errors.Is(err, ErrRootEnd) {
		return fmt.Errorf("wrapped: more than one child: %v", err)
	}
	return nil
}

// xmlOracle reads raw with encoding/xml alone, resolving namespaces, and
// returns the name of its one top-level element and how deep it nests (1
// for an element without children). It fails on anything not well-formed,
// on comments, processing instructions and directives, and on anything
// but one element.
func xmlOracle(raw []byte) (top xml.Name, depth int, err error) {
	d := xml.NewDecoder(bytes.NewReader(raw))
	d.Strict = true
	var (
		level, elements int
	)
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return top, 0, fmt.Errorf("encoding/xml: %w", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if level == 0 {
				elements++
				top = tok.Name
			}
			level++
			depth = max(depth, level)
		case xml.EndElement:
			level--
		case xml.CharData:
			if level == 0 {
				return top, 0, fmt.Errorf("text %q outside the element", tok)
			}
		case xml.Comment, xml.ProcInst, xml.Directive:
			return top, 0, fmt.Errorf("restricted %T", tok)
		}
	}
	if elements != 1 {
		return top, 0, fmt.Errorf("%d top-level elements", elements)
	}
	return top, depth, nil
}

// addReaderSeeds adds the seeds FuzzReader and FuzzReaderDifferential
// share.
func addReaderSeeds(f *testing.F) {
	for _, doc := range []string{
		`<body xmlns='` + httpbind + `' rid='1'><message to='a@b'><body>hi &amp; bye</body></message></body>`,
		`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='x'><stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>`,
		`<b xmlns='` + httpbind + `' xmlns:x='urn:a'><x:y xmlns:x='urn:b'/><x:z x:a='1'/></b>`,
	} {
		f.Add([]byte(doc), true, uint8(0), uint16(0))
		f.Add([]byte(doc), false, uint8(3), uint16(40))
	}
}
