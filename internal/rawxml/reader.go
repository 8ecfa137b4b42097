package rawxml

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
)

// XMLNamespace is the namespace bound to the reserved prefix "xml".
const XMLNamespace = "http://www.w3.org/XML/1998/namespace"

// Errors returned by Reader. Each is wrapped with context; test with
// errors.Is.
var (
	// ErrRestricted reports XML that RFC 6120 §11.1 and XEP-0124 §6 forbid:
	// comments, processing instructions, DOCTYPE and other directives.
	ErrRestricted = errors.New("rawxml: restricted XML")
	// ErrText reports character data other than whitespace directly inside
	// the root element.
	ErrText = errors.New("rawxml: text directly inside the root element")
	// ErrLimit reports an element nested deeper than Options.MaxDepth or
	// larger than Options.MaxElementSize.
	ErrLimit = errors.New("rawxml: limit exceeded")
	// ErrMalformed reports XML that is not well-formed or not
	// namespace-well-formed.
	ErrMalformed = errors.New("rawxml: malformed XML")
)

// Options tune a Reader. The zero value applies no limits and injects no
// default namespace.
type Options struct {
	// DefaultNS is declared (xmlns='DefaultNS') on every unprefixed child
	// that declares no default namespace of its own. XMPP relays set it to
	// "jabber:client".
	DefaultNS string
	// MaxDepth bounds element nesting, the root counting as depth 1.
	// Zero means no bound.
	MaxDepth int
	// MaxElementSize bounds the bytes of one child element. Zero means no
	// bound.
	MaxElementSize int
}

// Reader reads a root element and then its children, returning each child
// as the exact bytes it had in the input (plus namespace declarations it
// inherited from the root, so that it stands alone).
//
// A Reader is not safe for concurrent use.
type Reader struct {
	opts Options
	rec  recorder
	dec  *xml.Decoder
	root Root

	// scope holds the namespace declarations in force, innermost last;
	// each records the depth of the element that made it.
	scope []binding
	// stack holds the raw names of the open elements below the root.
	stack []xml.Name
	// inherited lists the root-level prefixes the current child uses.
	inherited []string
}

type binding struct {
	prefix, uri string
	depth       int
}

// NewReader returns a Reader reading from r. If r is an io.ByteReader (a
// *bufio.Reader, say) it is read byte by byte and never past the end of the
// root's start tag or the current child, so the caller may go on using r.
// Otherwise the caller should wrap r in a bufio.Reader first.
func NewReader(r io.Reader, opts Options) *Reader {
	br, ok := r.(io.ByteReader)
	if !ok {
		br = &byteReader{r: r}
	}
	rd := &Reader{opts: opts, rec: recorder{mark: -1}}
	rd.rec.r = br
	rd.rec.max = int64(opts.MaxElementSize)
	rd.dec = xml.NewDecoder(&rd.rec)
	rd.dec.Strict = true
	return rd
}

// Root describes the root element's start tag.
type Root struct {
	// Name is the raw name: Space holds the prefix, not a namespace.
	Name xml.Name
	// Attr holds the raw attributes, namespace declarations included.
	Attr []xml.Attr
}

// Namespace returns the namespace URI bound to prefix by the root's own
// declarations ("" for the default namespace). The prefix "xml" is always
// bound.
func (r Root) Namespace(prefix string) (string, bool) {
	if prefix == "xml" {
		return XMLNamespace, true
	}
	for _, a := range r.Attr {
		if prefix == "" && a.Name.Space == "" && a.Name.Local == "xmlns" {
			return a.Value, true
		}
		if prefix != "" && a.Name.Space == "xmlns" && a.Name.Local == prefix {
			return a.Value, true
		}
	}
	return "", false
}

// NS returns the namespace of the root element itself.
func (r Root) NS() string {
	ns, _ := r.Namespace(r.Name.Space)
	return ns
}

// Get returns the value of the attribute with namespace ns and local name
// local, matching prefixed attributes by the namespace their prefix is bound
// to on the root (never by the prefix itself). Use ns "" for unprefixed
// attributes.
func (r Root) Get(ns, local string) (string, bool) {
	for _, a := range r.Attr {
		if a.Name.Local != local || a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
			continue
		}
		if a.Name.Space == "" {
			if ns == "" {
				return a.Value, true
			}
			continue
		}
		if uri, ok := r.Namespace(a.Name.Space); ok && uri == ns && ns != "" {
			return a.Value, true
		}
	}
	return "", false
}

// Element is one child of the root.
type Element struct {
	// Name is the raw name: Space holds the prefix, not a namespace.
	Name xml.Name
	// NS is the element's namespace URI, resolved in scope (after the
	// DefaultNS rule).
	NS string
	// Raw is the element's bytes, owned by the caller.
	Raw []byte
}

// Root reads up to and including the root element's start tag. Whitespace
// and an XML declaration may come before it; anything else is an error.
func (rd *Reader) Root() (Root, error) {
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
			if err := checkAttrs(t.Attr); err != nil {
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

// ErrRootEnd is returned by Next when the root element ends.
var ErrRootEnd = errors.New("rawxml: end of root element")

// Next returns the next child of the root. It returns ErrRootEnd after the
// root's end tag, and io.ErrUnexpectedEOF if the input ends first. Errors
// other than io.ErrUnexpectedEOF and those of the underlying reader wrap
// ErrRestricted, ErrText, ErrLimit or ErrMalformed.
func (rd *Reader) Next() (Element, error) {
	var (
		el    Element
		own   []xml.Attr // the child's own attributes
		start int64      // input offset of the child's '<'
	)
	// MaxElementSize bounds everything one call reads: whitespace before
	// the child, and the child. The recorder enforces it byte by byte, so
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
			if err := checkAttrs(t.Attr); err != nil {
				return Element{}, err
			}
			rd.push(t.Attr, depth)
			if err := rd.checkPrefixes(t); err != nil {
				return Element{}, err
			}
			if len(rd.stack) == 0 {
				own = t.Attr
				el.NS = rd.lookup(t.Name.Space)
				if t.Name.Space == "" && !declares(t.Attr, "") && rd.opts.DefaultNS != "" {
					el.NS = rd.opts.DefaultNS
				}
			}
			rd.stack = append(rd.stack, t.Name)
		case xml.EndElement:
			if len(rd.stack) == 0 {
				if t.Name != rd.root.Name {
					return Element{}, fmt.Errorf("%w: end tag </%s> does not match <%s>", ErrMalformed, qname(t.Name), qname(rd.root.Name))
				}
				return Element{}, ErrRootEnd
			}
			top := rd.stack[len(rd.stack)-1]
			if t.Name != top {
				return Element{}, fmt.Errorf("%w: end tag </%s> does not match <%s>", ErrMalformed, qname(t.Name), qname(top))
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
func (rd *Reader) standalone(raw []byte, name xml.Name, own []xml.Attr) []byte {
	// The declarations go right after "<qname" in raw.
	at := 1 + len(name.Local)
	if name.Space != "" {
		at += len(name.Space) + 1
	}
	var extra []byte
	if name.Space == "" && rd.opts.DefaultNS != "" && !declares(own, "") {
		extra = appendDecl(extra, "", rd.opts.DefaultNS)
	}
	for _, prefix := range rd.inherited {
		if uri, ok := rd.root.Namespace(prefix); ok && !declares(own, prefix) {
			extra = appendDecl(extra, prefix, uri)
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
func declares(attrs []xml.Attr, prefix string) bool {
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

func appendDecl(b []byte, prefix, uri string) []byte {
	b = append(b, " xmlns"...)
	if prefix != "" {
		b = append(b, ':')
		b = append(b, prefix...)
	}
	b = append(b, "='"...)
	b = AppendAttrValue(b, uri)
	return append(b, '\'')
}

// AppendAttrValue appends s to b escaped for a single-quoted attribute
// value.
func AppendAttrValue(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'':
			b = append(b, "&apos;"...)
		case '&':
			b = append(b, "&amp;"...)
		case '<':
			b = append(b, "&lt;"...)
		case '>':
			b = append(b, "&gt;"...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// push records the namespace declarations among attrs at depth.
func (rd *Reader) push(attrs []xml.Attr, depth int) {
	for _, a := range attrs {
		switch {
		case a.Name.Space == "" && a.Name.Local == "xmlns":
			rd.scope = append(rd.scope, binding{"", a.Value, depth})
		case a.Name.Space == "xmlns":
			rd.scope = append(rd.scope, binding{a.Name.Local, a.Value, depth})
		}
	}
}

// pop drops the declarations made at depth or deeper.
func (rd *Reader) pop(depth int) {
	i := len(rd.scope)
	for i > 0 && rd.scope[i-1].depth >= depth {
		i--
	}
	rd.scope = rd.scope[:i]
}

func (rd *Reader) lookup(prefix string) string {
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

// xmlnsNamespace is the namespace bound to the reserved prefix "xmlns".
const xmlnsNamespace = "http://www.w3.org/2000/xmlns/"

// checkPrefixes rejects prefixes on the element or its attributes that no
// declaration in scope binds, and declarations that Namespaces in XML
// forbids, and notes the prefixes bound on the root.
func (rd *Reader) checkPrefixes(t xml.StartElement) error {
	if t.Name.Space == "xmlns" {
		return fmt.Errorf("%w: element with the reserved prefix xmlns", ErrMalformed)
	}
	for _, a := range t.Attr {
		switch {
		case a.Name.Space == "" && a.Name.Local == "xmlns":
			if a.Value == XMLNamespace || a.Value == xmlnsNamespace {
				return fmt.Errorf("%w: default namespace set to a reserved namespace", ErrMalformed)
			}
		case a.Name.Space == "xmlns":
			switch {
			case a.Name.Local == "xmlns":
				return fmt.Errorf("%w: the prefix xmlns declared", ErrMalformed)
			case a.Value == "":
				return fmt.Errorf("%w: prefix %q bound to no namespace", ErrMalformed, a.Name.Local)
			case (a.Name.Local == "xml") != (a.Value == XMLNamespace), a.Value == xmlnsNamespace:
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

// use checks that prefix is bound and, if the binding in force is the
// root's, records that the current child inherits it.
func (rd *Reader) use(prefix string) error {
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
func checkAttrs(attrs []xml.Attr) error {
	for i := range attrs {
		for j := i + 1; j < len(attrs); j++ {
			if attrs[i].Name == attrs[j].Name {
				return fmt.Errorf("%w: repeated attribute %s", ErrMalformed, qname(attrs[i].Name))
			}
		}
	}
	return nil
}

func qname(n xml.Name) string {
	if n.Space == "" {
		return n.Local
	}
	return n.Space + ":" + n.Local
}

// wrap sorts a decoder error: the input ended (io.ErrUnexpectedEOF), the
// underlying reader failed (its error, or ErrLimit), or the XML is bad
// (ErrMalformed, whatever form encoding/xml gave it).
func (rd *Reader) wrap(err error) error {
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

// recorder is the io.ByteReader encoding/xml reads through. It keeps the
// bytes read since the last reset so a child can be sliced out by offset.
type recorder struct {
	r    io.ByteReader
	buf  []byte
	base int64 // input offset of buf[0]
	n    int64 // bytes read so far
	err  error
	// max, if positive, bounds the bytes read since mark; mark is -1
	// outside Next.
	max, mark int64
}

// errTooLarge is what the recorder returns past its bound.
var errTooLarge = fmt.Errorf("%w: element larger than the limit", ErrLimit)

func (c *recorder) ReadByte() (byte, error) {
	if c.max > 0 && c.mark >= 0 && c.n-c.mark >= c.max {
		c.err = errTooLarge
		return 0, errTooLarge
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
func (c *recorder) Read(p []byte) (int, error) {
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
func (c *recorder) reset(off int64) {
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

func (c *recorder) slice(from, to int64) []byte {
	return c.buf[from-c.base : to-c.base]
}

type byteReader struct {
	r   io.Reader
	one [1]byte
}

func (b *byteReader) ReadByte() (byte, error) {
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
