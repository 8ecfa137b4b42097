package rawxml

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzReaderDifferential holds the Reader to the encoding/xml-based Reader
// it replaced (oracleReader, in oracle_test.go). Both read the same
// document with the same options, each from its own countingReader, and
// must agree call by call:
//
//   - Root: the same Name and Attr, or errors of the same class;
//   - Next: the same children (Name, NS and Raw, byte for byte), then the
//     same end: ErrRootEnd, or errors of the same class.
//
// The classes are: io.ErrUnexpectedEOF (and the old Reader's ErrMalformed
// for the end of the input inside a CDATA section, where the new one gives
// io.ErrUnexpectedEOF as documented); ErrLimit for MaxElementSize;
// ErrLimit for MaxDepth; ErrRestricted; ErrText; ErrMalformed. After a
// successful call (a root, a child, ErrRootEnd) the new Reader must have
// read exactly as many bytes as the old, or fewer provided the last one
// read is the '>' that ends the tag.
//
// Two kinds of disagreement are allowed, both where the new Reader refuses
// and the old did not yet, and nowhere else:
//
//   - Deliberate strictness. The new Reader refuses, with one of the
//     reasons listed in errors.go (errQName, errAttrSpace, errCharRef,
//     errXMLDecl, errProlog, errRootData, errDupExpanded), what
//     encoding/xml accepts though XML 1.0 or Namespaces in XML forbids it
//     (or, errRootData, RFC 6120 does). The input must then contain what
//     the reason names (see strictReasonHolds).
//   - Earlier refusal. Both calls fail, with different classes, and the
//     new Reader read no more bytes in that call than the old one; the new
//     class is ErrMalformed, ErrRestricted, ErrText or ErrLimit for
//     MaxDepth (never io.ErrUnexpectedEOF or the size limit). The new
//     Reader decides at the first byte that settles it (the "<!--" of a
//     comment, a bad byte in a name or a text); encoding/xml reads a whole
//     token first, and may meet the end of the input, the size limit, or
//     another fault of the token before its caller sees the first one.
//
// One more is a matter of words: where the input ends (or the size limit
// trips) inside a UTF-8 sequence in a text or an attribute value, the old
// Reader reports the incomplete sequence as invalid UTF-8 (ErrMalformed);
// the new one reports what happened (io.ErrUnexpectedEOF or ErrLimit),
// having read the same bytes.
//
// MaxElementSize needs no tolerance of its own: both Readers read at most
// MaxElementSize bytes in one call, and fail with ErrLimit when asked for
// one more, so they agree on where the limit trips except when one of
// them has refused earlier, which the rule above covers.
//
// Every document is read with the fuzzed options and again with no limits
// (DefaultNS as fuzzed). For documents of odd length the new Reader is
// one that had read part of the document with other options, then Reset.
func FuzzReaderDifferential(f *testing.F) {
	for _, s := range differentialSeeds {
		f.Add([]byte(s), true, uint8(0), uint16(0))
		f.Add([]byte(s), false, uint8(4), uint16(64))
	}
	// The seeds of FuzzReader, and its corpus.
	addReaderSeeds(f)
	files, _ := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzReader", "*"))
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		doc, defaultNS, maxDepth, maxSize, err := parseReaderSeed(data)
		if err != nil {
			f.Fatalf("%s: %v", name, err)
		}
		f.Add(doc, defaultNS, maxDepth, maxSize)
	}
	f.Fuzz(func(t *testing.T, doc []byte, defaultNS bool, maxDepth uint8, maxSize uint16) {
		opts := fuzzOptions(defaultNS, maxDepth, maxSize)
		if err := compareReaders(doc, opts); err != nil {
			t.Fatalf("%v\ndoc %q\noptions %+v", err, doc, opts)
		}
		opts.MaxDepth, opts.MaxElementSize = 0, 0
		if err := compareReaders(doc, opts); err != nil {
			t.Fatalf("%v\ndoc %q\noptions %+v", err, doc, opts)
		}
	})
}

// differentialSeeds are documents written for FuzzReaderDifferential, each
// read with and without limits.
var differentialSeeds = []string{
	// CDATA, references, text with '>' and "]]>".
	`<r><a><![CDATA[<b>&amp;]]]]><![CDATA[>]]></a><a>x &lt; &gt; &amp; &apos; &quot; &#65; &#x1F600; &#x000041;</a></r>`,
	`<r><a>&#X41;</a></r>`,
	`<r><a>]]></a></r>`,
	`<r><a>]] ]>]]&gt;</a></r>`,
	`<r><a b='>]]>' c="'&#34;"/></r>`,
	`<r><a>&#0;</a></r>`,
	`<r><a>&#xD800;</a></r>`,
	`<r><a>&#x110000;</a></r>`,
	`<r><a>&#;&#x;</a></r>`,
	`<r><a>&ampx;</a></r>`,
	`<r><a b='&lt;'>&unknown;</a></r>`,
	// Multi-byte UTF-8 names, text and values; bad UTF-8.
	"<r><ü:é xmlns:ü='urn:ü' ü:ß='ñ'>日本語</ü:é><a>\xff</a></r>",
	"<r><a\u00b7b/><\u00b7a/></r>",
	"<r><a b='\xc3\x28'/></r>",
	"<r><a>\xed\xa0\x80</a></r>",
	"<r><a>\xef\xbf\xbe</a></r>",
	// Prefixes: inherited, redeclared, unbound, reserved, QNames.
	`<s:r xmlns:s='urn:s' xmlns:t='urn:t' xmlns='urn:d'><s:a t:x='1'><t:b/></s:a><a xmlns=''/><u:a/></s:r>`,
	`<r xmlns:p='urn:p' xmlns:q='urn:p'><a p:x='1' q:x='2'/></r>`,
	`<r><a xmlns:p='urn:p' xmlns:q='urn:p' p:x='1' q:x='2'/></r>`,
	`<r><:a/><a:/><a:1/><a xmlns:='x'/></r>`,
	`<r><a:b:c/></r>`,
	`<r><xml:a xml:lang='en'/><a xmlns:xml='http://www.w3.org/XML/1998/namespace'/></r>`,
	// Deep nesting, empty elements, whitespace variants.
	`<r><a><b><c><d><e><f/></e></d></c></b></a></r>`,
	"<r>\n\t\r <a\n\tb\r=\n'1'\t/>\r\n</r\n>",
	"\u00a0<r/>",
	"<r>\u00a0<a/></r>",
	"<r>&#32;<a/></r>",
	"<r><![CDATA[ ]]><a/></r>",
	"&#32;<r/>",
	" \n<r/>",
	// XML declarations.
	`<?xml version='1.0'?><r/>`,
	`<?xml version="1.0" encoding="UTF-8" standalone='yes' ?><r/>`,
	`<?xml?><r/>`,
	`<?xml encoding='utf-8' version='1.0'?><r/>`,
	`<?xml version='1.1'?><r/>`,
	`<?xml version='1.0' encoding='latin1'?><r/>`,
	` <?xml version='1.0'?><r/>`,
	`<?xml-stylesheet href='a'?><r/>`,
	`<?xml version='1.0'?><?xml version='1.0'?><r/>`,
	// Attributes: quotes, spacing, repeats.
	`<r a="1" b='2' c = "3"><x a='"' b="'"/><x a='1'b='2'/><x a=1/><x a/><x a='<'/></r>`,
	`<r><x a='1' a='2'/></r>`,
	// Restricted.
	`<r><!-- c --></r>`,
	`<r><a><!-- c --></a></r>`,
	`<r><!- x></r>`,
	`<r><!DOCTYPE r></r>`,
	`<!DOCTYPE r [<!ENTITY x "y">]><r/>`,
	`<r><?pi x?></r>`,
	`<r><a><?xml version='1.0'?></a></r>`,
	// Ends, mismatches, truncation.
	`<r><a></b></r>`,
	`<r><a/></s>`,
	`<r><a/></r ><b/>`,
	`<r><a/>`,
	`<r><a b='`,
	`</r>`,
	`<r/>`,
	`<r></r>`,
	`text<r/>`,
	`<r>text</r>`,
}

// parseReaderSeed reads a FuzzReader corpus file ("go test fuzz v1": a
// []byte, a bool, a byte and a uint16).
func parseReaderSeed(data []byte) (doc []byte, defaultNS bool, maxDepth uint8, maxSize uint16, err error) {
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 5 || lines[0] != "go test fuzz v1" {
		return nil, false, 0, 0, errors.New("not a corpus file of FuzzReader")
	}
	arg := func(line, typ string) (string, error) {
		if !strings.HasPrefix(line, typ+"(") || !strings.HasSuffix(line, ")") {
			return "", fmt.Errorf("%q is not a %s", line, typ)
		}
		return line[len(typ)+1 : len(line)-1], nil
	}
	s, err := arg(lines[1], "[]byte")
	if err == nil {
		s, err = strconv.Unquote(s)
	}
	if err != nil {
		return nil, false, 0, 0, err
	}
	var b, d, m string
	if b, err = arg(lines[2], "bool"); err != nil {
		return nil, false, 0, 0, err
	}
	if d, err = arg(lines[3], "byte"); err != nil {
		return nil, false, 0, 0, err
	}
	if m, err = arg(lines[4], "uint16"); err != nil {
		return nil, false, 0, 0, err
	}
	dn, err1 := strconv.ParseUint(d, 0, 8)
	mn, err2 := strconv.ParseUint(m, 0, 16)
	if err := errors.Join(err1, err2); err != nil {
		return nil, false, 0, 0, err
	}
	return []byte(s), b == "true", uint8(dn), uint16(mn), nil
}

// errorClass names the class of a Reader's answer, new or old.
func errorClass(err error) string {
	switch {
	case err == nil:
		return "ok"
	case err == ErrRootEnd:
		return "end"
	case err == io.ErrUnexpectedEOF:
		return "eof"
	case strings.HasSuffix(err.Error(), "unexpected EOF in CDATA section"):
		// The old Reader's one way of reporting the end of the input
		// as ErrMalformed (encoding/xml's message differs from the
		// "unexpected EOF" it looks for): the same thing.
		return "eof"
	case errors.Is(err, errTooLarge), errors.Is(err, oErrTooLarge):
		return "size"
	case errors.Is(err, ErrLimit):
		return "depth"
	case errors.Is(err, ErrRestricted):
		return "restricted"
	case errors.Is(err, ErrText):
		return "text"
	case errors.Is(err, ErrMalformed):
		return "malformed"
	}
	return fmt.Sprintf("other (%T %v)", err, err)
}

// compareReaders reads doc with both Readers and reports the first
// disagreement FuzzReaderDifferential does not allow.
func compareReaders(doc []byte, opts Options) error {
	oldSrc, newSrc := newCountingReader(doc), newCountingReader(doc)
	old, nw := newOracleReader(oldSrc, opts), NewReader(newSrc, opts)
	if len(doc)%2 == 1 {
		// bosh reuses its Readers: for half the inputs the new Reader
		// has first read part of the same document with other options,
		// its buffers grown and its state left mid-way, and is Reset.
		nw = NewReader(bytes.NewReader(doc), Options{DefaultNS: "urn:dirty", MaxDepth: 3})
		if _, err := nw.Root(); err == nil {
			nw.Next()
			nw.Next()
		}
		nw.Reset(newSrc, opts)
	}

	oldRoot, oldErr := old.Root()
	newRoot, newErr := nw.Root()
	done, err := compareCall(doc, "Root", oldErr, newErr, 0, oldSrc.n(), newSrc.n())
	if err != nil || done {
		return err
	}
	if !reflect.DeepEqual(oldRoot, newRoot) {
		return fmt.Errorf("Root: old %+v, new %+v", oldRoot, newRoot)
	}
	for call := 1; ; call++ {
		if call > len(doc)+1 {
			return fmt.Errorf("Next called %d times without an end", call)
		}
		oldStart, newStart := oldSrc.n(), newSrc.n()
		oldEl, oldErr := old.Next()
		newEl, newErr := nw.Next()
		what := fmt.Sprintf("Next #%d", call)
		if oldStart != newStart {
			panic("compareReaders: the Readers start a call at different offsets")
		}
		done, err := compareCall(doc, what, oldErr, newErr, oldStart, oldSrc.n(), newSrc.n())
		if err != nil || done {
			return err
		}
		if oldEl.Name != newEl.Name || oldEl.NS != newEl.NS || !bytes.Equal(oldEl.Raw, newEl.Raw) {
			return fmt.Errorf("%s: old <%v> in %q: %q\nnew <%v> in %q: %q", what, oldEl.Name, oldEl.NS, oldEl.Raw, newEl.Name, newEl.NS, newEl.Raw)
		}
		// The new Reader may have read less; the next call starts where
		// the old one did only if it read the same.
		if oldSrc.n() != newSrc.n() {
			return nil
		}
	}
}

// compareCall compares the answers of one call, which started at offset
// start and ended at offsets oldEnd and newEnd. It reports whether the
// comparison is over (an error or the end on both sides, or an allowed
// refusal by the new Reader), or the disagreement.
func compareCall(doc []byte, what string, oldErr, newErr error, start, oldEnd, newEnd int) (bool, error) {
	oldClass, newClass := errorClass(oldErr), errorClass(newErr)
	if oldClass == newClass {
		if oldClass != "ok" && oldClass != "end" {
			return true, nil
		}
		if newEnd > oldEnd || newEnd < oldEnd && (newEnd == start || doc[newEnd-1] != '>') {
			return false, fmt.Errorf("%s (%s): old read %d bytes, new %d", what, oldClass, oldEnd-start, newEnd-start)
		}
		return oldClass == "end", nil
	}
	if reason := strictReason(newErr); reason != nil {
		if !strictReasonHolds(reason, doc) {
			return false, fmt.Errorf("%s: new refused (%v) but the input has nothing of the kind; old: %v", what, newErr, oldErr)
		}
		return true, nil
	}
	if (newClass == "eof" || newClass == "size") && oldClass == "malformed" && strings.HasSuffix(oldErr.Error(), "invalid UTF-8") &&
		newEnd == oldEnd && endsInPartialRune(doc[:newEnd]) {
		return true, nil
	}
	earlier := newClass == "malformed" || newClass == "restricted" || newClass == "text" || newClass == "depth"
	if oldErr != nil && oldErr != ErrRootEnd && earlier && newEnd-start <= oldEnd-start {
		return true, nil
	}
	return false, fmt.Errorf("%s: old %s (%v) after %d bytes, new %s (%v) after %d bytes", what, oldClass, oldErr, oldEnd-start, newClass, newErr, newEnd-start)
}

// strictReasons are the reasons of the new Reader's deliberate strictness.
var strictReasons = []error{errQName, errAttrSpace, errCharRef, errXMLDecl, errProlog, errRootData, errDupExpanded}

func strictReason(err error) error {
	for _, reason := range strictReasons {
		if errors.Is(err, reason) {
			return reason
		}
	}
	return nil
}

// strictReasonHolds checks, roughly but independently of the Reader, that
// doc has something of the kind reason names.
func strictReasonHolds(reason error, doc []byte) bool {
	switch reason {
	case errQName:
		// A colon with no name byte before it, or none that may start a
		// local part after it.
		for i, c := range doc {
			if c != ':' {
				continue
			}
			if i == 0 || !(isNameByte(doc[i-1]) || doc[i-1] >= 0x80) {
				return true
			}
			if i+1 == len(doc) || !(isNameStartByte(doc[i+1]) && doc[i+1] != ':' || doc[i+1] >= 0x80) {
				return true
			}
		}
		return hasNonStartAfterColon(doc)
	case errAttrSpace:
		for i := 1; i < len(doc); i++ {
			if (doc[i-1] == '\'' || doc[i-1] == '"') && (isNameByte(doc[i]) || doc[i] >= 0x80) {
				return true
			}
		}
		return false
	case errCharRef:
		return bytes.Contains(doc, []byte("&#"))
	case errXMLDecl:
		return bytes.HasPrefix(doc, []byte("<?xml"))
	case errProlog, errRootData:
		return bytes.ContainsAny(doc, "&") || bytes.Contains(doc, []byte("<![CDATA[")) || bytes.IndexFunc(doc, func(r rune) bool { return r >= 0x80 }) >= 0
	case errDupExpanded:
		return bytes.Count(doc, []byte("xmlns:")) >= 2
	}
	return false
}

// hasNonStartAfterColon reports whether a colon in doc is followed by a
// non-ASCII character that cannot start a name.
func hasNonStartAfterColon(doc []byte) bool {
	for i := 0; i+1 < len(doc); i++ {
		if doc[i] == ':' && doc[i+1] >= 0x80 && !isNCNameStart(doc[i+1:]) {
			return true
		}
	}
	return false
}

// endsInPartialRune reports whether b ends inside a UTF-8 sequence that
// its lead byte says is longer.
func endsInPartialRune(b []byte) bool {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if b[i] >= 0xC0 {
			return !utf8.FullRune(b[i:])
		}
		if b[i] < 0x80 {
			return false
		}
	}
	return false
}
