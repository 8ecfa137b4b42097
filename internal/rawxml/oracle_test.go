package rawxml

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
)

// The Reader as it was before the byte-level scanner: encoding/xml's
// RawToken driven through a recording io.ByteReader. It is kept, unchanged
// but for its names, as the oracle of FuzzReaderDifferential. Do not fix
// it: it stands for the behaviour the scanner must keep.
//
// Nor share its code with the Reader's. What the two have in common
// (oByteReader and byteReader, oAppendDecl and appendDecl, the rules on
// reserved prefixes in checkPrefixes and checkRootStart, repeated
// attributes) is written twice on purpose, so that a fault in it cannot
// hide by being in both; duplicates lists these pairs, and they stay. The
// oracle's own repetition (the start of Root and of Next) is the old
// Reader's, kept as it was. It shares with the Reader only what both
// return or are checked against: Options, Root and Root.Namespace,
// Element, the errors and AppendAttrValue.

// oracleReader is the old Reader.
type oracleReader struct {
	opts Options
	rec  oRecorder
	dec  *xml.Decoder
	root Root

	// scope holds the namespace declarations in force, innermost last;
	// each records the depth of the element that made it.
	scope []oBinding
	// stack holds the raw names of the open elements below the root.
	stack []xml.Name
	// inherited lists the root-level prefixes the current child uses.
	inherited []string
}

type oBinding struct {
	prefix, uri string
	depth       int
}

// newOracleReader returns an oracleReader reading from r. If r is an io.ByteReader (a
// *bufio.Reader, say) it is read byte by byte and never past the end of the
// root's start tag or the current child, so the caller may go on using r.
// Otherwise the caller should wrap r in a bufio.Reader first.
func newOracleReader(r io.Reader, opts Options) *oracleReader {
	br, ok := r.(io.ByteReader)
	if !ok {
		br = &oByteReader{r: r}
	}
	rd := &oracleReader{opts: opts, rec: oRecorder{mark: -1}}
	rd.rec.r = br
	rd.rec.max = int64(opts.MaxElementSize)
	rd.dec = xml.NewDecoder(&rd.rec)
	rd.dec.Strict = true
	return rd
}

// Root reads up to and including the root element's start tag. Whitespace
// and an XML declaration may come before it; anything else is an error.
func (rd *oracleReader) Root() (Root, error) {
	// MaxElementSize bounds the root's start tag too.
	rd.rec.mark = rd.rec.n
	defer func() { rd.rec.mark = -1 }()
	for {
		before := rd.dec.InputOffset()
		tok, err := rd.dec.RawToken()
		if err != nil {
			return Root{}, rd.wrap(err)
		}
		switch t := tok.(type) {
		case xml.ProcInst:
			// Only an XML declaration, and only at the very start.
			if t.Target != "xml" || before != 0 {
				return Root{}, fmt.Errorf("%w: processing instruction <?%s?>", ErrRestricted, t.Target)
			}
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return Root{}, fmt.Errorf("%w: text before the root element", ErrMalformed)
			}
		case xml.StartElement:
			if err := oCheckAttrs(t.Attr); err != nil {
				return Root{}, err
			}
			rd.root = Root{Name: t.Name, Attr: t.Attr}
			rd.push(t.Attr, 1)
			if err := rd.checkPrefixes(t); err != nil {
				return Root{}, err
			}
			rd.rec.reset(rd.dec.InputOffset())
			return rd.root, nil
		case xml.Comment, xml.Directive:
			return Root{}, fmt.Errorf("%w: %T", ErrRestricted, tok)
		default:
			return Root{}, fmt.Errorf("%w: unexpected %T", ErrMalformed, tok)
		}
	}
}

// Next returns the next child of the root. It returns ErrRootEnd after the
// root's end tag, and io.ErrUnexpectedEOF if the input ends first. Errors
// other than io.ErrUnexpectedEOF and those of the underlying reader wrap
// ErrRestricted, ErrText, ErrLimit or ErrMalformed.
func (rd *oracleReader) Next() (Element, error) {
	var (
		el    Element
		own   []xml.Attr // the child's own attributes
		start int64      // input offset of the child's '<'
	)
	// MaxElementSize bounds everything one call reads: whitespace before
	// the child, and the child. The oRecorder enforces it byte by byte, so
	// no token grows past it in memory.
	rd.rec.mark = rd.rec.n
	defer func() { rd.rec.mark = -1 }()
	for {
		before := rd.dec.InputOffset()
		tok, err := rd.dec.RawToken()
		if err != nil {
			return Element{}, rd.wrap(err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth := len(rd.stack) + 2
			if rd.opts.MaxDepth > 0 && depth > rd.opts.MaxDepth {
				return Element{}, fmt.Errorf("%w: nesting deeper than %d", ErrLimit, rd.opts.MaxDepth)
			}
			if len(rd.stack) == 0 {
				start = before
				el = Element{Name: t.Name}
				rd.rec.reset(start)
				rd.inherited = rd.inherited[:0]
			}
			if err := oCheckAttrs(t.Attr); err != nil {
				return Element{}, err
			}
			rd.push(t.Attr, depth)
			if err := rd.checkPrefixes(t); err != nil {
				return Element{}, err
			}
			if len(rd.stack) == 0 {
				own = t.Attr
				el.NS = rd.lookup(t.Name.Space)
				if t.Name.Space == "" && !oDeclares(t.Attr, "") && rd.opts.DefaultNS != "" {
					el.NS = rd.opts.DefaultNS
				}
			}
			rd.stack = append(rd.stack, t.Name)
		case xml.EndElement:
			if len(rd.stack) == 0 {
				if t.Name != rd.root.Name {
					return Element{}, fmt.Errorf("%w: end tag </%s> does not match <%s>", ErrMalformed, oQName(t.Name), oQName(rd.root.Name))
				}
				return Element{}, ErrRootEnd
			}
			top := rd.stack[len(rd.stack)-1]
			if t.Name != top {
				return Element{}, fmt.Errorf("%w: end tag </%s> does not match <%s>", ErrMalformed, oQName(t.Name), oQName(top))
			}
			rd.pop(len(rd.stack) + 1)
			rd.stack = rd.stack[:len(rd.stack)-1]
			if len(rd.stack) == 0 {
				end := rd.dec.InputOffset()
				el.Raw = rd.standalone(rd.rec.slice(start, end), el.Name, own)
				rd.rec.reset(end)
				return el, nil
			}
		case xml.CharData:
			if len(rd.stack) == 0 && len(bytes.TrimSpace(t)) != 0 {
				return Element{}, ErrText
			}
			if len(rd.stack) == 0 {
				rd.rec.reset(rd.dec.InputOffset())
			}
		case xml.Comment, xml.ProcInst, xml.Directive:
			return Element{}, fmt.Errorf("%w: %T", ErrRestricted, tok)
		}
	}
}

// standalone returns a copy of the child's raw bytes with the root's
// namespace declarations the child relies on added to its start tag: the
// default namespace (Options.DefaultNS) if the child is unprefixed and
// declares none, and the root's declaration of each prefix the child uses
// without declaring it.
func (rd *oracleReader) standalone(raw []byte, name xml.Name, own []xml.Attr) []byte {
	// The declarations go right after "<qname" in raw.
	at := 1 + len(name.Local)
	if name.Space != "" {
		at += len(name.Space) + 1
	}
	var extra []byte
	if name.Space == "" && rd.opts.DefaultNS != "" && !oDeclares(own, "") {
		extra = oAppendDecl(extra, "", rd.opts.DefaultNS)
	}
	for _, prefix := range rd.inherited {
		if uri, ok := rd.root.Namespace(prefix); ok && !oDeclares(own, prefix) {
			extra = oAppendDecl(extra, prefix, uri)
		}
	}
	if len(extra) == 0 {
		return append([]byte(nil), raw...)
	}
	out := make([]byte, 0, len(raw)+len(extra))
	out = append(out, raw[:at]...)
	out = append(out, extra...)
	return append(out, raw[at:]...)
}

// declares reports whether attrs declare prefix ("" for the default
// namespace).
func oDeclares(attrs []xml.Attr, prefix string) bool {
	for _, a := range attrs {
		if prefix == "" && a.Name.Space == "" && a.Name.Local == "xmlns" {
			return true
		}
		if prefix != "" && a.Name.Space == "xmlns" && a.Name.Local == prefix {
			return true
		}
	}
	return false
}

func oAppendDecl(b []byte, prefix, uri string) []byte {
	b = append(b, " xmlns"...)
	if prefix != "" {
		b = append(b, ':')
		b = append(b, prefix...)
	}
	b = append(b, "='"...)
	b = AppendAttrValue(b, uri)
	return append(b, '\'')
}

// push records the namespace declarations among attrs at depth.
func (rd *oracleReader) push(attrs []xml.Attr, depth int) {
	for _, a := range attrs {
		switch {
		case a.Name.Space == "" && a.Name.Local == "xmlns":
			rd.scope = append(rd.scope, oBinding{"", a.Value, depth})
		case a.Name.Space == "xmlns":
			rd.scope = append(rd.scope, oBinding{a.Name.Local, a.Value, depth})
		}
	}
}

// pop drops the declarations made at depth or deeper.
func (rd *oracleReader) pop(depth int) {
	i := len(rd.scope)
	for i > 0 && rd.scope[i-1].depth >= depth {
		i--
	}
	rd.scope = rd.scope[:i]
}

func (rd *oracleReader) lookup(prefix string) string {
	if prefix == "xml" {
		return XMLNamespace
	}
	for i := len(rd.scope) - 1; i >= 0; i-- {
		if rd.scope[i].prefix == prefix {
			return rd.scope[i].uri
		}
	}
	return ""
}

// oXMLNSNamespace is the namespace bound to the reserved prefix "xmlns".
const oXMLNSNamespace = "http://www.w3.org/2000/xmlns/"

// checkPrefixes rejects prefixes on the element or its attributes that no
// declaration in scope binds, and declarations that Namespaces in XML
// forbids, and notes the prefixes bound on the root.
func (rd *oracleReader) checkPrefixes(t xml.StartElement) error {
	if t.Name.Space == "xmlns" {
		return fmt.Errorf("%w: element with the reserved prefix xmlns", ErrMalformed)
	}
	for _, a := range t.Attr {
		switch {
		case a.Name.Space == "" && a.Name.Local == "xmlns":
			if a.Value == XMLNamespace || a.Value == oXMLNSNamespace {
				return fmt.Errorf("%w: default namespace set to a reserved namespace", ErrMalformed)
			}
		case a.Name.Space == "xmlns":
			switch {
			case a.Name.Local == "xmlns":
				return fmt.Errorf("%w: the prefix xmlns declared", ErrMalformed)
			case a.Value == "":
				return fmt.Errorf("%w: prefix %q bound to no namespace", ErrMalformed, a.Name.Local)
			case (a.Name.Local == "xml") != (a.Value == XMLNamespace), a.Value == oXMLNSNamespace:
				return fmt.Errorf("%w: prefix %q bound to a reserved namespace, or xml rebound", ErrMalformed, a.Name.Local)
			}
		}
	}
	if err := rd.use(t.Name.Space); err != nil {
		return err
	}
	for _, a := range t.Attr {
		if err := rd.use(a.Name.Space); err != nil {
			return err
		}
	}
	return nil
}

// use checks that prefix is bound and, if the oBinding in force is the
// root's, records that the current child inherits it.
func (rd *oracleReader) use(prefix string) error {
	if prefix == "" || prefix == "xml" || prefix == "xmlns" {
		return nil
	}
	for i := len(rd.scope) - 1; i >= 0; i-- {
		if rd.scope[i].prefix == prefix {
			if rd.scope[i].depth == 1 && !slices.Contains(rd.inherited, prefix) {
				rd.inherited = append(rd.inherited, prefix)
			}
			return nil
		}
	}
	return fmt.Errorf("%w: undeclared prefix %q", ErrMalformed, prefix)
}

// checkAttrs rejects a start tag that repeats an attribute, which
// encoding/xml lets through.
func oCheckAttrs(attrs []xml.Attr) error {
	for i := range attrs {
		for j := i + 1; j < len(attrs); j++ {
			if attrs[i].Name == attrs[j].Name {
				return fmt.Errorf("%w: repeated attribute %s", ErrMalformed, oQName(attrs[i].Name))
			}
		}
	}
	return nil
}

func oQName(n xml.Name) string {
	if n.Space == "" {
		return n.Local
	}
	return n.Space + ":" + n.Local
}

// wrap sorts a decoder error: the input ended (io.ErrUnexpectedEOF), the
// underlying reader failed (its error, or ErrLimit), or the XML is bad
// (ErrMalformed, whatever form encoding/xml gave it).
func (rd *oracleReader) wrap(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	if rd.rec.err != nil && err == rd.rec.err {
		return err
	}
	var se *xml.SyntaxError
	if errors.As(err, &se) && se.Msg == "unexpected EOF" {
		return io.ErrUnexpectedEOF
	}
	return fmt.Errorf("%w: %v", ErrMalformed, err)
}

// oRecorder is the io.ByteReader encoding/xml reads through. It keeps the
// bytes read since the last reset so a child can be sliced out by offset.
type oRecorder struct {
	r    io.ByteReader
	buf  []byte
	base int64 // input offset of buf[0]
	n    int64 // bytes read so far
	err  error
	// max, if positive, bounds the bytes read since mark; mark is -1
	// outside Next.
	max, mark int64
}

// oErrTooLarge is what the oRecorder returns past its bound.
var oErrTooLarge = fmt.Errorf("%w: element larger than the limit", ErrLimit)

func (c *oRecorder) ReadByte() (byte, error) {
	if c.max > 0 && c.mark >= 0 && c.n-c.mark >= c.max {
		c.err = oErrTooLarge
		return 0, oErrTooLarge
	}
	b, err := c.r.ReadByte()
	if err != nil {
		c.err = err
		return 0, err
	}
	c.buf = append(c.buf, b)
	c.n++
	return b, nil
}

// Read is never called by encoding/xml on an io.ByteReader, but xml.Decoder
// needs an io.Reader.
func (c *oRecorder) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	b, err := c.ReadByte()
	if err != nil {
		return 0, err
	}
	p[0] = b
	return 1, nil
}

// reset forgets the bytes before input offset off.
func (c *oRecorder) reset(off int64) {
	drop := int(off - c.base)
	if drop <= 0 {
		return
	}
	if drop > len(c.buf) {
		drop = len(c.buf)
	}
	rest := copy(c.buf, c.buf[drop:])
	c.buf = c.buf[:rest]
	c.base += int64(drop)
	if cap(c.buf) > 16<<10 && len(c.buf) < 1<<10 {
		c.buf = append([]byte(nil), c.buf...)
	}
}

func (c *oRecorder) slice(from, to int64) []byte {
	return c.buf[from-c.base : to-c.base]
}

type oByteReader struct {
	r   io.Reader
	one [1]byte
}

func (b *oByteReader) ReadByte() (byte, error) {
	for {
		n, err := b.r.Read(b.one[:])
		if n == 1 {
			return b.one[0], nil
		}
		if err != nil {
			return 0, err
		}
	}
}
