package rawxml

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
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
	r    io.ByteReader
	root Root

	// started is set by Root; err, once set, is what Next returns from
	// then on (ErrRootEnd after the root's end).
	started bool
	err     error

	// n counts the bytes read by the current call, which
	// Options.MaxElementSize bounds.
	n int
	// rec makes readByte append what it reads to buf.
	rec bool
	// buf holds the current child from its '<' (during Root: the root's
	// start tag, or the name being read).
	buf []byte
	// vals holds decoded attribute values: the namespace names of scope,
	// and during Root every value.
	vals []byte
	// attrs lists the attributes of the start tag being read.
	attrs []attr
	// scope holds the namespace declarations of the open elements below
	// the root, innermost last; the root's are in root.Attr.
	scope []binding
	// stack holds the names of the open elements below the root.
	stack []qspan
	// inherited lists the root-level prefixes the current child uses.
	inherited []string
	// extra collects the declarations the current child inherits.
	extra []byte

	// The first backing arrays of the slices above, so that a Reader
	// reading a small document (a BOSH request) allocates little but
	// itself.
	bufArr   [256]byte
	valsArr  [64]byte
	attrsArr [6]attr
	scopeArr [4]binding
	stackArr [8]qspan
	extraArr [64]byte
}

// span locates bytes in Reader.buf or Reader.vals.
type span struct{ start, end int }

// qspan locates a qualified name in Reader.buf; colon is -1 for a name
// without a prefix.
type qspan struct{ start, colon, end int }

func (q qspan) raw(buf []byte) []byte { return buf[q.start:q.end] }

func (q qspan) prefix(buf []byte) []byte {
	if q.colon < 0 {
		return nil
	}
	return buf[q.start:q.colon]
}

func (q qspan) local(buf []byte) []byte {
	if q.colon < 0 {
		return buf[q.start:q.end]
	}
	return buf[q.colon+1 : q.end]
}

// attr is one attribute of the start tag being read: its name and value
// as they are in buf, and its decoded value in vals if it was decoded.
type attr struct {
	name     qspan
	raw, val span
}

// decl tells whether a is a namespace declaration: declDefault for xmlns,
// declPrefix for xmlns:prefix.
func (a attr) decl(buf []byte) int {
	switch {
	case a.name.colon < 0 && string(a.name.raw(buf)) == "xmlns":
		return declDefault
	case a.name.colon >= 0 && string(a.name.prefix(buf)) == "xmlns":
		return declPrefix
	}
	return declNone
}

const (
	declNone = iota
	declDefault
	declPrefix
)

// binding is a namespace declaration below the root: prefix (empty for
// the default namespace) in buf, uri in vals.
type binding struct {
	prefix, uri span
	depth       int
}

// NewReader returns a Reader reading from r. If r is an io.ByteReader (a
// *bufio.Reader, say) it is read byte by byte and never past the end of the
// root's start tag or the current child, so the caller may go on using r.
// Otherwise the caller should wrap r in a bufio.Reader first.
func NewReader(r io.Reader, opts Options) *Reader {
	rd := new(Reader)
	rd.Reset(r, opts)
	return rd
}

// Reset makes rd a Reader of a new document from r, as NewReader returns,
// keeping the buffers it has. What rd returned before stays valid: Raw
// and the strings of Root and Element are never shared with the Reader.
func (rd *Reader) Reset(r io.Reader, opts Options) {
	br, ok := r.(io.ByteReader)
	if !ok {
		br = &byteReader{r: r}
	}
	*rd = Reader{
		opts: opts, r: br,
		buf: rd.buf[:0], vals: rd.vals[:0], extra: rd.extra[:0],
		attrs: rd.attrs[:0], scope: rd.scope[:0], stack: rd.stack[:0],
		inherited: rd.inherited[:0],
	}
	if rd.buf == nil {
		rd.buf, rd.vals, rd.extra = rd.bufArr[:0], rd.valsArr[:0], rd.extraArr[:0]
		rd.attrs, rd.scope, rd.stack = rd.attrsArr[:0], rd.scopeArr[:0], rd.stackArr[:0]
	}
}

// ResetAfterRoot makes rd a Reader of the rest of a document whose root
// start tag, root, a Reader (rd or another) has read from r with the same
// opts, and which stands between two children, the root still open (not
// `<r/>`, and its end tag not yet read): Next returns the next child, as
// that Reader's Next would have. A stream idle between two
// children can so give its Reader back and take one again when more
// comes. rd keeps its buffers, as with Reset.
func (rd *Reader) ResetAfterRoot(r io.Reader, opts Options, root Root) {
	rd.Reset(r, opts)
	rd.started = true
	rd.root = root
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
	if rd.started {
		return Root{}, errors.New("rawxml: Root called twice")
	}
	rd.started = true
	// MaxElementSize bounds the root's start tag too.
	rd.n = 0
	root, err := rd.readRoot()
	rd.rec = false
	if err != nil {
		rd.err = err
		return Root{}, err
	}
	return root, nil
}

// ErrRootEnd is returned by Next when the root element ends.
var ErrRootEnd = errors.New("rawxml: end of root element")

// Next returns the next child of the root. It returns ErrRootEnd after the
// root's end tag, and io.ErrUnexpectedEOF if the input ends first. Errors
// other than io.ErrUnexpectedEOF and those of the underlying reader wrap
// ErrRestricted, ErrText, ErrLimit or ErrMalformed.
func (rd *Reader) Next() (Element, error) {
	// Having failed (or ended), the Reader does not know where it stands
	// in the input: it gives the same answer again without reading.
	if rd.err != nil {
		return Element{}, rd.err
	}
	if !rd.started {
		return Element{}, errors.New("rawxml: Next called before Root")
	}
	// MaxElementSize bounds everything one call reads: whitespace before
	// the child, and the child, counted byte by byte as they are read, so
	// that no token grows past it in memory.
	rd.n = 0
	el, err := rd.next()
	rd.rec = false
	if err != nil {
		rd.err = err
		return Element{}, err
	}
	// Let a big child's buffers go rather than keep them for good: an
	// upstream's Reader lives as long as its session, and most sessions
	// are idle after a roster of some kilobytes.
	if cap(rd.buf) > maxKeep {
		rd.buf = rd.bufArr[:0]
	}
	if cap(rd.vals) > maxKeep {
		rd.vals = rd.valsArr[:0]
	}
	return el, nil
}

// maxKeep bounds the buffers a Reader keeps from one child to the next.
// Stanzas are mostly far smaller.
const maxKeep = 4 << 10

// Deliberate differences from encoding/xml (and the Reader built on it,
// kept as the oracle of FuzzReaderDifferential): these are refused here
// though encoding/xml accepts them in Strict mode, because XML 1.0 or
// Namespaces in XML forbids them, or (errRootData) because they are not
// the whitespace RFC 6120 and XEP-0124 allow between stanzas. Each error
// of the kind wraps one of these as well as ErrMalformed or ErrText.
var (
	// errQName: a name with a colon first or last, or whose local part
	// does not start with a name-start character (<:a>, <a:>, <a:1>,
	// xmlns:='x'), which encoding/xml takes as an unprefixed name.
	errQName = errors.New("name is not a QName")
	// errAttrSpace: attributes not separated by whitespace (<a b='1'c='2'>).
	errAttrSpace = errors.New("no whitespace between attributes")
	// errCharRef: a character reference to a surrogate (&#xD800;), which
	// encoding/xml turns into U+FFFD.
	errCharRef = errors.New("character reference to a surrogate")
	// errXMLDecl: an XML declaration that does not follow the XMLDecl
	// production (encoding/xml only looks for version= and encoding=
	// anywhere in it): version missing, out of order, unknown
	// pseudo-attributes, anything else in it.
	errXMLDecl = errors.New("not an XML declaration")
	// errProlog: before the root, character data other than XML
	// whitespace (S) that encoding/xml lets through because
	// bytes.TrimSpace removes it: references, CDATA sections, Unicode
	// spaces (U+00A0, U+0085, U+2000...).
	errProlog = errors.New("character data before the root element")
	// errRootData: the same directly inside the root (wraps ErrText).
	errRootData = errors.New("reference, CDATA section or non-XML whitespace")
	// errDupExpanded: two attributes with the same namespace and local
	// name but different prefixes (Namespaces in XML §6.3).
	errDupExpanded = errors.New("attributes with the same expanded name")
)

var (
	// errTooLarge is what readByte returns past Options.MaxElementSize.
	errTooLarge = fmt.Errorf("%w: element larger than the limit", ErrLimit)
	errBadUTF8  = fmt.Errorf("%w: invalid UTF-8", ErrMalformed)
)

// readByte reads one byte, within Options.MaxElementSize, appending it to
// buf if rec is set. The end of the input is io.ErrUnexpectedEOF.
func (rd *Reader) readByte() (byte, error) {
	if rd.opts.MaxElementSize > 0 && rd.n >= rd.opts.MaxElementSize {
		return 0, errTooLarge
	}
	b, err := rd.r.ReadByte()
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, err
	}
	rd.n++
	if rd.rec {
		rd.buf = append(rd.buf, b)
	}
	return b, nil
}

// readSpace reads bytes until one that is not XML whitespace, and returns
// it.
func (rd *Reader) readSpace() (byte, error) {
	for {
		b, err := rd.readByte()
		if err != nil || !isSpace(b) {
			return b, err
		}
	}
}

// readRoot reads what Root reads.
func (rd *Reader) readRoot() (Root, error) {
	for {
		b, err := rd.readSpace()
		if err != nil {
			return Root{}, err
		}
		if b != '<' {
			if err := rd.checkText(b); err != nil {
				return Root{}, err
			}
			return Root{}, fmt.Errorf("%w: %w", ErrMalformed, errProlog)
		}
		atStart := rd.n == 1
		if b, err = rd.readByte(); err != nil {
			return Root{}, err
		}
		switch b {
		case '?':
			if err := rd.prologPI(atStart); err != nil {
				return Root{}, err
			}
			continue
		case '!':
			if err := rd.bang(); err != nil {
				return Root{}, err
			}
			// A CDATA section.
			return Root{}, fmt.Errorf("%w: %w", ErrMalformed, errProlog)
		case '/':
			return Root{}, fmt.Errorf("%w: end tag before the root element", ErrMalformed)
		}
		rd.buf = append(rd.buf[:0], '<', b)
		rd.rec = true
		rd.vals = rd.vals[:0]
		name, b, err := rd.readQName(b, "element name after <")
		if err != nil {
			return Root{}, err
		}
		empty, err := rd.readAttrs(b, true)
		if err != nil {
			return Root{}, err
		}
		rd.rec = false
		// One string for the names and the values as they are.
		s := string(rd.buf)
		root := Root{Name: nameIn(s, name), Attr: make([]xml.Attr, len(rd.attrs))}
		for i, a := range rd.attrs {
			root.Attr[i].Name = nameIn(s, a.name)
			if val := rd.vals[a.val.start:a.val.end]; string(val) == s[a.raw.start:a.raw.end] {
				root.Attr[i].Value = s[a.raw.start:a.raw.end]
			} else {
				root.Attr[i].Value = string(val)
			}
		}
		if err := checkRootStart(root.Name, root.Attr); err != nil {
			return Root{}, err
		}
		rd.root = root
		if empty {
			rd.err = ErrRootEnd
		}
		return root, nil
	}
}

// nameIn returns the name q locates in s.
func nameIn(s string, q qspan) xml.Name {
	if q.colon < 0 {
		return xml.Name{Local: s[q.start:q.end]}
	}
	return xml.Name{Space: s[q.start:q.colon], Local: s[q.colon+1 : q.end]}
}

// prologPI reads a processing instruction before the root after its "<?":
// an XML declaration if it is at the very start, else restricted.
func (rd *Reader) prologPI(atStart bool) error {
	b, err := rd.readByte()
	if err != nil {
		return err
	}
	rd.buf = append(rd.buf[:0], b)
	rd.rec = true
	q, b, err := rd.readName(b, "target name after <?")
	rd.rec = false
	if err != nil {
		return err
	}
	if target := q.raw(rd.buf); string(target) != "xml" || !atStart {
		return fmt.Errorf("%w: processing instruction <?%.20s", ErrRestricted, target)
	}
	return rd.xmlDecl(b)
}

// xmlDecl reads the rest of an XML declaration, b being the byte after
// "<?xml": version 1.0, optionally encoding UTF-8 and standalone, as the
// XMLDecl production has them.
func (rd *Reader) xmlDecl(b byte) error {
	bad := fmt.Errorf("%w: %w", ErrMalformed, errXMLDecl)
	next := 0 // index in pseudo of the next that may come
	pseudo := [...]string{"version", "encoding", "standalone"}
	for {
		space := isSpace(b)
		var err error
		if space {
			if b, err = rd.readSpace(); err != nil {
				return err
			}
		}
		if b == '?' {
			if next == 0 {
				return bad
			}
			if b, err = rd.readByte(); err != nil {
				return err
			}
			if b != '>' {
				return bad
			}
			return nil
		}
		if !space {
			return bad
		}
		i := next
		for i < len(pseudo) && pseudo[i][0] != b {
			i++
		}
		if i == len(pseudo) || next == 0 && i != 0 {
			return bad
		}
		for _, c := range []byte(pseudo[i][1:]) {
			if b, err = rd.readByte(); err != nil {
				return err
			}
			if b != c {
				return bad
			}
		}
		if b, err = rd.readSpace(); err != nil {
			return err
		}
		if b != '=' {
			return bad
		}
		quote, err := rd.readSpace()
		if err != nil {
			return err
		}
		if quote != '\'' && quote != '"' {
			return bad
		}
		var val [16]byte
		n := 0
		for {
			if b, err = rd.readByte(); err != nil {
				return err
			}
			if b == quote {
				break
			}
			if n == len(val) || !isNameByte(b) || b == ':' {
				return bad
			}
			val[n] = b
			n++
		}
		v := string(val[:n])
		switch i {
		case 0:
			if v != "1.0" {
				return fmt.Errorf("%w: %w: version %q", ErrMalformed, errXMLDecl, v)
			}
		case 1:
			if !strings.EqualFold(v, "utf-8") {
				return fmt.Errorf("%w: %w: encoding %q", ErrMalformed, errXMLDecl, v)
			}
		case 2:
			if v != "yes" && v != "no" {
				return bad
			}
		}
		next = i + 1
		if b, err = rd.readByte(); err != nil {
			return err
		}
	}
}

// bang reads what follows "<!": a comment or a directive (DOCTYPE), which
// it refuses as restricted, or the start of a CDATA section, which it reads
// up to "<![CDATA[" and accepts.
func (rd *Reader) bang() error {
	b, err := rd.readByte()
	if err != nil {
		return err
	}
	switch b {
	case '-':
		if b, err = rd.readByte(); err != nil {
			return err
		}
		if b != '-' {
			return fmt.Errorf("%w: invalid sequence <!- not part of <!--", ErrMalformed)
		}
		return fmt.Errorf("%w: comment", ErrRestricted)
	case '[':
		for _, c := range []byte("CDATA[") {
			if b, err = rd.readByte(); err != nil {
				return err
			}
			if b != c {
				return fmt.Errorf("%w: invalid <![ sequence", ErrMalformed)
			}
		}
		return nil
	}
	return fmt.Errorf("%w: DOCTYPE or other directive", ErrRestricted)
}

// checkText checks the character that starts with byte b in character
// data (where '<' has been dealt with): a valid reference if b is '&', else
// a valid character. It returns a Malformed error, or nil.
func (rd *Reader) checkText(b byte) error {
	switch {
	case b == '&':
		_, err := rd.reference()
		return err
	case b >= utf8.RuneSelf:
		_, err := rd.char(b)
		return err
	case b < 0x20 && !isSpace(b):
		return fmt.Errorf("%w: illegal character code %U", ErrMalformed, rune(b))
	}
	return nil
}

// next reads what Next reads.
func (rd *Reader) next() (Element, error) {
	b, err := rd.readSpace()
	if err != nil {
		return Element{}, err
	}
	if b != '<' {
		return Element{}, rd.rootText(b)
	}
	if b, err = rd.readByte(); err != nil {
		return Element{}, err
	}
	switch b {
	case '/':
		return Element{}, rd.rootEnd()
	case '?':
		return Element{}, fmt.Errorf("%w: processing instruction", ErrRestricted)
	case '!':
		if err := rd.bang(); err != nil {
			return Element{}, err
		}
		return Element{}, fmt.Errorf("%w: %w: CDATA section", ErrText, errRootData)
	}
	return rd.child(b)
}

// rootText returns the error for character data directly in the root
// starting with byte b, not whitespace.
func (rd *Reader) rootText(b byte) error {
	switch {
	case b == '&':
		if _, err := rd.reference(); err != nil {
			return err
		}
		return fmt.Errorf("%w: %w", ErrText, errRootData)
	case b >= utf8.RuneSelf:
		r, err := rd.char(b)
		if err != nil {
			return err
		}
		if unicode.IsSpace(r) {
			return fmt.Errorf("%w: %w", ErrText, errRootData)
		}
	case b < 0x20:
		return fmt.Errorf("%w: illegal character code %U", ErrMalformed, rune(b))
	}
	return ErrText
}

// rootEnd reads the root's end tag after its "</".
func (rd *Reader) rootEnd() error {
	b, err := rd.readByte()
	if err != nil {
		return err
	}
	rd.buf = append(rd.buf[:0], b)
	rd.rec = true
	q, b, err := rd.readQName(b, "element name after </")
	rd.rec = false
	if err != nil {
		return err
	}
	if isSpace(b) {
		if b, err = rd.readSpace(); err != nil {
			return err
		}
	}
	name := q.raw(rd.buf)
	if b != '>' {
		return fmt.Errorf("%w: invalid characters between </%s and >", ErrMalformed, name)
	}
	if !rd.isRootName(q) {
		return fmt.Errorf("%w: end tag </%s> does not match <%s>", ErrMalformed, name, qnameString(rd.root.Name))
	}
	return ErrRootEnd
}

// isRootName reports whether q names the root.
func (rd *Reader) isRootName(q qspan) bool {
	n := rd.root.Name
	if n.Space == "" {
		return q.colon < 0 && string(q.raw(rd.buf)) == n.Local
	}
	return q.colon >= 0 && string(q.prefix(rd.buf)) == n.Space && string(q.local(rd.buf)) == n.Local
}

func qnameString(n xml.Name) string {
	if n.Space == "" {
		return n.Local
	}
	return n.Space + ":" + n.Local
}

// child reads a child of the root whose "<" and first name byte b have
// been read.
func (rd *Reader) child(b byte) (Element, error) {
	rd.buf = append(rd.buf[:0], '<', b)
	rd.rec = true
	rd.vals = rd.vals[:0]
	rd.scope = rd.scope[:0]
	rd.stack = rd.stack[:0]
	rd.inherited = rd.inherited[:0]

	top, empty, err := rd.startTag(b, 2)
	if err != nil {
		return Element{}, err
	}
	// The child's own declarations are the bindings now in scope.
	ownDefault := false
	for _, bd := range rd.scope {
		if bd.prefix.start == bd.prefix.end {
			ownDefault = true
		}
	}
	el := Element{NS: rd.childNS(top, ownDefault)}
	el.Name.Local = internName(top.local(rd.buf))
	if top.colon >= 0 {
		el.Name.Space = rd.prefixString(top.prefix(rd.buf))
	}
	if !empty {
		rd.stack = append(rd.stack, top)
		if err := rd.content(); err != nil {
			return Element{}, err
		}
	}
	el.Raw = rd.standalone(top, ownDefault)
	return el, nil
}

// childNS returns the namespace of the child top, in scope after its own
// declarations, and after the DefaultNS rule.
func (rd *Reader) childNS(top qspan, ownDefault bool) string {
	prefix := top.prefix(rd.buf)
	if string(prefix) == "xml" {
		return XMLNamespace
	}
	for i := len(rd.scope) - 1; i >= 0; i-- {
		if bd := rd.scope[i]; string(rd.buf[bd.prefix.start:bd.prefix.end]) == string(prefix) {
			return internNS(rd.vals[bd.uri.start:bd.uri.end])
		}
	}
	if len(prefix) == 0 && !ownDefault && rd.opts.DefaultNS != "" {
		return rd.opts.DefaultNS
	}
	uri, _ := rd.rootNS(prefix)
	return uri
}

// rootNS is Root.Namespace for a prefix in bytes, without the prefix xml.
func (rd *Reader) rootNS(prefix []byte) (string, bool) {
	for _, a := range rd.root.Attr {
		if len(prefix) == 0 && a.Name.Space == "" && a.Name.Local == "xmlns" {
			return a.Value, true
		}
		if len(prefix) != 0 && a.Name.Space == "xmlns" && a.Name.Local == string(prefix) {
			return a.Value, true
		}
	}
	return "", false
}

// prefixString returns prefix as a string, the root's copy if the root
// declares it.
func (rd *Reader) prefixString(prefix []byte) string {
	for _, a := range rd.root.Attr {
		if a.Name.Space == "xmlns" && a.Name.Local == string(prefix) {
			return a.Name.Local
		}
	}
	return internName(prefix)
}

// content reads the content of the child after its start tag, up to and
// including the child's end tag.
func (rd *Reader) content() error {
	brackets := 0 // ']' just before, for "]]>"
	for {
		b, err := rd.readByte()
		if err != nil {
			return err
		}
		if textByte[b] {
			brackets = 0
			continue
		}
		switch b {
		case ']':
			brackets++
			continue
		case '>':
			if brackets >= 2 {
				return fmt.Errorf("%w: unescaped ]]> not in CDATA section", ErrMalformed)
			}
		case '<':
			done, err := rd.markup()
			if err != nil || done {
				return err
			}
		default:
			if err := rd.checkText(b); err != nil {
				return err
			}
		}
		brackets = 0
	}
}

// textByte tells the bytes that stand for themselves in character data,
// with nothing to check.
var textByte = func() (t [256]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = true
	}
	for _, b := range "\t\n\r" {
		t[b] = true
	}
	for _, b := range "<&]>" {
		t[b] = false
	}
	return t
}()

// markup reads the markup inside the child that starts with "<", which
// has been read, and reports whether it was the child's end tag.
func (rd *Reader) markup() (bool, error) {
	b, err := rd.readByte()
	if err != nil {
		return false, err
	}
	switch b {
	case '/':
		return rd.endTag()
	case '?':
		return false, fmt.Errorf("%w: processing instruction", ErrRestricted)
	case '!':
		if err := rd.bang(); err != nil {
			return false, err
		}
		return false, rd.cdata()
	}
	q, empty, err := rd.startTag(b, len(rd.stack)+2)
	if err != nil {
		return false, err
	}
	if !empty {
		rd.stack = append(rd.stack, q)
	}
	return false, nil
}

// endTag reads an end tag after its "</" and reports whether it ended the
// child.
func (rd *Reader) endTag() (bool, error) {
	b, err := rd.readByte()
	if err != nil {
		return false, err
	}
	q, b, err := rd.readQName(b, "element name after </")
	if err != nil {
		return false, err
	}
	if isSpace(b) {
		if b, err = rd.readSpace(); err != nil {
			return false, err
		}
	}
	if b != '>' {
		return false, fmt.Errorf("%w: invalid characters between </%s and >", ErrMalformed, q.raw(rd.buf))
	}
	top := rd.stack[len(rd.stack)-1]
	if string(q.raw(rd.buf)) != string(top.raw(rd.buf)) {
		return false, fmt.Errorf("%w: end tag </%s> does not match <%s>", ErrMalformed, q.raw(rd.buf), top.raw(rd.buf))
	}
	depth := len(rd.stack) + 1
	i := len(rd.scope)
	for i > 0 && rd.scope[i-1].depth >= depth {
		i--
	}
	rd.scope = rd.scope[:i]
	rd.stack = rd.stack[:len(rd.stack)-1]
	return len(rd.stack) == 0, nil
}

// cdata reads a CDATA section after its "<![CDATA[", up to and including
// its "]]>".
func (rd *Reader) cdata() error {
	brackets := 0
	for {
		b, err := rd.readByte()
		if err != nil {
			return err
		}
		switch {
		case b == ']':
			brackets++
			continue
		case b == '>' && brackets >= 2:
			return nil
		case b < 0x20 && !isSpace(b):
			return fmt.Errorf("%w: illegal character code %U", ErrMalformed, rune(b))
		case b >= utf8.RuneSelf:
			if _, err := rd.char(b); err != nil {
				return err
			}
		}
		brackets = 0
	}
}

// char reads the rest of the UTF-8 sequence that starts with byte b and
// returns its character, which must be an XML Char.
func (rd *Reader) char(b byte) (rune, error) {
	var p [utf8.UTFMax]byte
	p[0] = b
	var n int
	switch {
	case b >= 0xC2 && b <= 0xDF:
		n = 2
	case b >= 0xE0 && b <= 0xEF:
		n = 3
	case b >= 0xF0 && b <= 0xF4:
		n = 4
	default:
		return 0, errBadUTF8
	}
	for i := 1; i < n; i++ {
		c, err := rd.readByte()
		if err != nil {
			return 0, err
		}
		p[i] = c
		// FullRune is true of a sequence already known to be invalid.
		if c&0xC0 != 0x80 || i+1 < n && utf8.FullRune(p[:i+1]) {
			return 0, errBadUTF8
		}
	}
	r, size := utf8.DecodeRune(p[:n])
	if size != n {
		return 0, errBadUTF8
	}
	if !isChar(r) {
		return 0, fmt.Errorf("%w: illegal character code %U", ErrMalformed, r)
	}
	return r, nil
}

// isChar reports whether r is in the XML Char production.
func isChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD ||
		r >= 0x10000 && r <= 0x10FFFF
}

// reference reads a reference after its '&' and returns the character it
// stands for: one of the five predefined entities, or a character
// reference to an XML Char.
func (rd *Reader) reference() (rune, error) {
	b, err := rd.readByte()
	if err != nil {
		return 0, err
	}
	if b == '#' {
		return rd.charRef()
	}
	var name [4]byte
	n := 0
	for b != ';' {
		if n == len(name) || !isNameByte(b) {
			return 0, fmt.Errorf("%w: invalid entity reference &%s%c", ErrMalformed, string(name[:n]), b)
		}
		name[n] = b
		n++
		if b, err = rd.readByte(); err != nil {
			return 0, err
		}
	}
	switch string(name[:n]) {
	case "lt":
		return '<', nil
	case "gt":
		return '>', nil
	case "amp":
		return '&', nil
	case "apos":
		return '\'', nil
	case "quot":
		return '"', nil
	}
	return 0, fmt.Errorf("%w: undefined entity &%s;", ErrMalformed, string(name[:n]))
}

// charRef reads a character reference after its "&#".
func (rd *Reader) charRef() (rune, error) {
	b, err := rd.readByte()
	if err != nil {
		return 0, err
	}
	base := rune(10)
	if b == 'x' {
		base = 16
		if b, err = rd.readByte(); err != nil {
			return 0, err
		}
	}
	var r rune
	digits := 0
	for {
		var d rune
		switch {
		case b >= '0' && b <= '9':
			d = rune(b - '0')
		case base == 16 && b >= 'a' && b <= 'f':
			d = rune(b-'a') + 10
		case base == 16 && b >= 'A' && b <= 'F':
			d = rune(b-'A') + 10
		default:
			d = -1
		}
		if d < 0 {
			break
		}
		if r = r*base + d; r > unicode.MaxRune {
			r = unicode.MaxRune + 1 // stays too large
		}
		digits++
		if b, err = rd.readByte(); err != nil {
			return 0, err
		}
	}
	switch {
	case b != ';' || digits == 0 || r > unicode.MaxRune:
		return 0, fmt.Errorf("%w: invalid character reference", ErrMalformed)
	case r >= 0xD800 && r <= 0xDFFF:
		return 0, fmt.Errorf("%w: %w &#x%X;", ErrMalformed, errCharRef, r)
	case !isChar(r):
		return 0, fmt.Errorf("%w: illegal character code %U", ErrMalformed, r)
	}
	return r, nil
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

// readName reads a name whose first byte b has been read and recorded in
// buf (rec is set), and returns where it is in buf and the byte after it.
// It accepts the names encoding/xml accepts, colons anywhere; what is the
// name of what is expected, for the error.
func (rd *Reader) readName(b byte, what string) (qspan, byte, error) {
	q := qspan{start: len(rd.buf) - 1, colon: -1}
	bad := func() error { return fmt.Errorf("%w: expected %s", ErrMalformed, what) }
	if b < utf8.RuneSelf {
		if !isNameStartByte(b) {
			return q, b, bad()
		}
	} else if r, err := rd.char(b); err != nil {
		return q, b, err
	} else if !unicode.Is(nameFirst, r) {
		return q, b, bad()
	}
	for {
		var err error
		if b, err = rd.readByte(); err != nil {
			return q, b, err
		}
		if b < utf8.RuneSelf {
			if !isNameByte(b) {
				q.end = len(rd.buf) - 1
				return q, b, nil
			}
			continue
		}
		r, err := rd.char(b)
		if err != nil {
			return q, b, err
		}
		if !unicode.Is(nameFirst, r) && !unicode.Is(nameSecond, r) {
			return q, b, fmt.Errorf("%w: invalid character %U in a name", ErrMalformed, r)
		}
	}
}

// readQName is readName for a qualified name: at most one colon, with a
// name on either side.
func (rd *Reader) readQName(b byte, what string) (qspan, byte, error) {
	q, b, err := rd.readName(b, what)
	if err != nil {
		return q, b, err
	}
	name := q.raw(rd.buf)
	i := bytes.IndexByte(name, ':')
	if i < 0 {
		return q, b, nil
	}
	if bytes.IndexByte(name[i+1:], ':') >= 0 {
		return q, b, fmt.Errorf("%w: expected %s: more than one colon in %s", ErrMalformed, what, name)
	}
	q.colon = q.start + i
	if i == 0 || !isNCNameStart(name[i+1:]) {
		return q, b, fmt.Errorf("%w: %w: %s", ErrMalformed, errQName, name)
	}
	return q, b, nil
}

// isNCNameStart reports whether s starts with a character that may start
// a name other than a colon.
func isNCNameStart(s []byte) bool {
	if len(s) == 0 {
		return false
	}
	if s[0] < utf8.RuneSelf {
		return isNameStartByte(s[0]) && s[0] != ':'
	}
	r, _ := utf8.DecodeRune(s)
	return unicode.Is(nameFirst, r)
}

// isNameStartByte reports whether ASCII b may start a name.
func isNameStartByte(b byte) bool {
	return 'A' <= b && b <= 'Z' || 'a' <= b && b <= 'z' || b == '_' || b == ':'
}

// isNameByte reports whether ASCII b may be in a name.
func isNameByte(b byte) bool {
	return 'A' <= b && b <= 'Z' || 'a' <= b && b <= 'z' || '0' <= b && b <= '9' ||
		b == '_' || b == ':' || b == '.' || b == '-'
}

// readAttrs reads the attributes of a start tag into attrs, b being the
// byte after the element's name, up to and including the tag's '>'. It
// reports whether the tag ends with "/>". It decodes into vals the values
// of namespace declarations, or every value if all is set.
func (rd *Reader) readAttrs(b byte, all bool) (empty bool, err error) {
	rd.attrs = rd.attrs[:0]
	for {
		space := isSpace(b)
		if space {
			if b, err = rd.readSpace(); err != nil {
				return false, err
			}
		}
		switch b {
		case '/':
			if b, err = rd.readByte(); err != nil {
				return false, err
			}
			if b != '>' {
				return false, fmt.Errorf("%w: expected /> in element", ErrMalformed)
			}
			return true, nil
		case '>':
			return false, nil
		}
		if !space && len(rd.attrs) > 0 && (isNameByte(b) || b >= utf8.RuneSelf) {
			return false, fmt.Errorf("%w: %w", ErrMalformed, errAttrSpace)
		}
		var a attr
		if a.name, b, err = rd.readQName(b, "attribute name in element"); err != nil {
			return false, err
		}
		if isSpace(b) {
			if b, err = rd.readSpace(); err != nil {
				return false, err
			}
		}
		if b != '=' {
			return false, fmt.Errorf("%w: attribute name without = in element", ErrMalformed)
		}
		quote, err := rd.readSpace()
		if err != nil {
			return false, err
		}
		if quote != '\'' && quote != '"' {
			return false, fmt.Errorf("%w: unquoted or missing attribute value in element", ErrMalformed)
		}
		a.raw.start, a.val.start = len(rd.buf), len(rd.vals)
		if err := rd.attrValue(quote, all || a.decl(rd.buf) != declNone); err != nil {
			return false, err
		}
		a.raw.end, a.val.end = len(rd.buf)-1, len(rd.vals)
		rd.attrs = append(rd.attrs, a)
		if b, err = rd.readByte(); err != nil {
			return false, err
		}
	}
}

// attrValue reads an attribute value after its opening quote, up to and
// including the closing one, and appends it to vals decoded as
// encoding/xml decodes it if decode is set: references replaced, "\r\n"
// and "\r" made "\n".
func (rd *Reader) attrValue(quote byte, decode bool) error {
	var prev byte
	for {
		b, err := rd.readByte()
		if err != nil {
			return err
		}
		switch {
		case b == quote:
			return nil
		case b == '<':
			return fmt.Errorf("%w: unescaped < inside quoted string", ErrMalformed)
		case b == '&':
			r, err := rd.reference()
			if err != nil {
				return err
			}
			if decode {
				rd.vals = utf8.AppendRune(rd.vals, r)
			}
			prev = 0
			continue
		case b >= utf8.RuneSelf:
			r, err := rd.char(b)
			if err != nil {
				return err
			}
			if decode {
				rd.vals = utf8.AppendRune(rd.vals, r)
			}
		case b < 0x20 && !isSpace(b):
			return fmt.Errorf("%w: illegal character code %U", ErrMalformed, rune(b))
		case !decode:
		case b == '\r':
			rd.vals = append(rd.vals, '\n')
		case b == '\n' && prev == '\r':
		default:
			rd.vals = append(rd.vals, b)
		}
		prev = b
	}
}

// startTag reads a start tag below the root at depth (the root's children
// are at 2), whose "<" and first name byte b have been read, and checks
// it. It pushes its namespace declarations on scope and reports whether
// it ends with "/>".
func (rd *Reader) startTag(b byte, depth int) (qspan, bool, error) {
	q, b, err := rd.readQName(b, "element name after <")
	if err != nil {
		return q, false, err
	}
	empty, err := rd.readAttrs(b, false)
	if err != nil {
		return q, false, err
	}
	if rd.opts.MaxDepth > 0 && depth > rd.opts.MaxDepth {
		return q, false, fmt.Errorf("%w: nesting deeper than %d", ErrLimit, rd.opts.MaxDepth)
	}
	buf := rd.buf
	if err := rd.checkRepeated(); err != nil {
		return q, false, err
	}
	if string(q.prefix(buf)) == "xmlns" {
		return q, false, fmt.Errorf("%w: element with the reserved prefix xmlns", ErrMalformed)
	}
	for _, a := range rd.attrs {
		uri := rd.vals[a.val.start:a.val.end]
		switch a.decl(buf) {
		case declDefault:
			if string(uri) == XMLNamespace || string(uri) == xmlnsNamespace {
				return q, false, fmt.Errorf("%w: default namespace set to a reserved namespace", ErrMalformed)
			}
			rd.scope = append(rd.scope, binding{span{}, a.val, depth})
		case declPrefix:
			prefix := a.name.local(buf)
			switch {
			case string(prefix) == "xmlns":
				return q, false, fmt.Errorf("%w: the prefix xmlns declared", ErrMalformed)
			case len(uri) == 0:
				return q, false, fmt.Errorf("%w: prefix %q bound to no namespace", ErrMalformed, prefix)
			case (string(prefix) == "xml") != (string(uri) == XMLNamespace), string(uri) == xmlnsNamespace:
				return q, false, fmt.Errorf("%w: prefix %q bound to a reserved namespace, or xml rebound", ErrMalformed, prefix)
			}
			rd.scope = append(rd.scope, binding{span{a.name.colon + 1, a.name.end}, a.val, depth})
		}
	}
	if err := rd.use(q.prefix(buf)); err != nil {
		return q, false, err
	}
	prefixed := 0
	for _, a := range rd.attrs {
		if p := a.name.prefix(buf); len(p) != 0 && string(p) != "xmlns" {
			if err := rd.use(p); err != nil {
				return q, false, err
			}
			prefixed++
		}
	}
	if prefixed > 1 {
		if err := rd.checkExpanded(); err != nil {
			return q, false, err
		}
	}
	return q, empty, nil
}

// xmlnsNamespace is the namespace bound to the reserved prefix "xmlns".
const xmlnsNamespace = "http://www.w3.org/2000/xmlns/"

// checkRepeated rejects a start tag that repeats an attribute.
func (rd *Reader) checkRepeated() error {
	attrs, buf := rd.attrs, rd.buf
	if len(attrs) > 32 {
		// Quadratic is too slow for a hostile start tag.
		seen := make(map[string]bool, len(attrs))
		for _, a := range attrs {
			name := a.name.raw(buf)
			if seen[string(name)] {
				return fmt.Errorf("%w: repeated attribute %s", ErrMalformed, name)
			}
			seen[string(name)] = true
		}
		return nil
	}
	for i := range attrs {
		for j := i + 1; j < len(attrs); j++ {
			if string(attrs[i].name.raw(buf)) == string(attrs[j].name.raw(buf)) {
				return fmt.Errorf("%w: repeated attribute %s", ErrMalformed, attrs[i].name.raw(buf))
			}
		}
	}
	return nil
}

// checkExpanded rejects a start tag with two prefixed attributes of the
// same local name whose prefixes are bound to the same namespace.
func (rd *Reader) checkExpanded() error {
	attrs, buf := rd.attrs, rd.buf
	if len(attrs) <= 32 {
		for i, a := range attrs {
			p := a.name.prefix(buf)
			if len(p) == 0 || string(p) == "xmlns" {
				continue
			}
			for _, b := range attrs[:i] {
				q := b.name.prefix(buf)
				if len(q) == 0 || string(q) == "xmlns" || string(a.name.local(buf)) != string(b.name.local(buf)) {
					continue
				}
				if ns := rd.resolve(p); ns == rd.resolve(q) {
					return fmt.Errorf("%w: %w: {%s}%s", ErrMalformed, errDupExpanded, ns, a.name.local(buf))
				}
			}
		}
		return nil
	}
	type expanded struct{ ns, local string }
	seen := make(map[expanded]bool)
	for _, a := range attrs {
		p := a.name.prefix(buf)
		if len(p) == 0 || string(p) == "xmlns" {
			continue
		}
		e := expanded{rd.resolve(p), string(a.name.local(buf))}
		if seen[e] {
			return fmt.Errorf("%w: %w: {%s}%s", ErrMalformed, errDupExpanded, e.ns, e.local)
		}
		seen[e] = true
	}
	return nil
}

// resolve returns the namespace bound to prefix, which is bound.
func (rd *Reader) resolve(prefix []byte) string {
	if string(prefix) == "xml" {
		return XMLNamespace
	}
	for i := len(rd.scope) - 1; i >= 0; i-- {
		if bd := rd.scope[i]; string(rd.buf[bd.prefix.start:bd.prefix.end]) == string(prefix) {
			return string(rd.vals[bd.uri.start:bd.uri.end])
		}
	}
	uri, _ := rd.rootNS(prefix)
	return uri
}

// use checks that prefix is bound and, if the binding in force is the
// root's, records that the current child inherits it.
func (rd *Reader) use(prefix []byte) error {
	if len(prefix) == 0 || string(prefix) == "xml" || string(prefix) == "xmlns" {
		return nil
	}
	for i := len(rd.scope) - 1; i >= 0; i-- {
		if bd := rd.scope[i]; string(rd.buf[bd.prefix.start:bd.prefix.end]) == string(prefix) {
			return nil
		}
	}
	for _, a := range rd.root.Attr {
		if a.Name.Space == "xmlns" && a.Name.Local == string(prefix) {
			if !slices.Contains(rd.inherited, a.Name.Local) {
				rd.inherited = append(rd.inherited, a.Name.Local)
			}
			return nil
		}
	}
	return fmt.Errorf("%w: undeclared prefix %q", ErrMalformed, prefix)
}

// standalone returns a copy of the child in buf, whose name is top, with
// the root's namespace declarations it relies on added to its start tag:
// the default namespace (Options.DefaultNS) if the child is unprefixed and
// declares none, and the root's declaration of each prefix the child uses
// without declaring it.
func (rd *Reader) standalone(top qspan, ownDefault bool) []byte {
	extra := rd.extra[:0]
	if top.colon < 0 && rd.opts.DefaultNS != "" && !ownDefault {
		extra = appendDecl(extra, "", rd.opts.DefaultNS)
	}
	for _, prefix := range rd.inherited {
		uri, _ := rd.root.Namespace(prefix)
		extra = appendDecl(extra, prefix, uri)
	}
	rd.extra = extra
	raw := rd.buf
	// The declarations go right after "<qname".
	out := make([]byte, 0, len(raw)+len(extra))
	out = append(out, raw[:top.end]...)
	out = append(out, extra...)
	return append(out, raw[top.end:]...)
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

// checkRootStart checks a root's start tag as Reader.Root does (and
// EmptyRoot): no repeated attribute, no reserved prefix or namespace
// misused as checkPrefixes has it, every prefix bound by the root's own
// declarations, and no two attributes with the same expanded name.
func checkRootStart(name xml.Name, attrs []xml.Attr) error {
	// Quadratic is too slow for a hostile start tag: maps past a few.
	var seen map[xml.Name]bool
	if len(attrs) > 32 {
		seen = make(map[xml.Name]bool, len(attrs))
	}
	for i, a := range attrs {
		if seen != nil {
			if seen[a.Name] {
				return fmt.Errorf("%w: repeated attribute %s", ErrMalformed, qnameString(a.Name))
			}
			seen[a.Name] = true
			continue
		}
		for _, b := range attrs[:i] {
			if a.Name == b.Name {
				return fmt.Errorf("%w: repeated attribute %s", ErrMalformed, qnameString(a.Name))
			}
		}
	}
	if name.Space == "xmlns" {
		return fmt.Errorf("%w: element with the reserved prefix xmlns", ErrMalformed)
	}
	for _, a := range attrs {
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
	root := Root{Name: name, Attr: attrs}
	bound := func(prefix string) error {
		if prefix == "" || prefix == "xmlns" {
			return nil
		}
		if _, ok := root.Namespace(prefix); !ok {
			return fmt.Errorf("%w: undeclared prefix %q", ErrMalformed, prefix)
		}
		return nil
	}
	if err := bound(name.Space); err != nil {
		return err
	}
	expanded := make(map[xml.Name]bool)
	for _, a := range attrs {
		if err := bound(a.Name.Space); err != nil {
			return err
		}
		if a.Name.Space == "" || a.Name.Space == "xmlns" {
			continue
		}
		ns, _ := root.Namespace(a.Name.Space)
		e := xml.Name{Space: ns, Local: a.Name.Local}
		if expanded[e] {
			return fmt.Errorf("%w: %w: {%s}%s", ErrMalformed, errDupExpanded, ns, a.Name.Local)
		}
		expanded[e] = true
	}
	return nil
}

// internName returns b as a string, without allocating for the names
// XMPP uses most.
func internName(b []byte) string {
	switch string(b) {
	case "message":
		return "message"
	case "presence":
		return "presence"
	case "iq":
		return "iq"
	case "body":
		return "body"
	case "stream":
		return "stream"
	case "features":
		return "features"
	case "error":
		return "error"
	case "success":
		return "success"
	case "failure":
		return "failure"
	case "challenge":
		return "challenge"
	case "response":
		return "response"
	case "auth":
		return "auth"
	case "proceed":
		return "proceed"
	case "starttls":
		return "starttls"
	case "a":
		return "a"
	case "r":
		return "r"
	case "enable":
		return "enable"
	case "enabled":
		return "enabled"
	case "resume":
		return "resume"
	case "resumed":
		return "resumed"
	case "failed":
		return "failed"
	}
	return string(b)
}

// internNS returns b as a string, without allocating for the namespaces
// XMPP stanzas declare most.
func internNS(b []byte) string {
	switch string(b) {
	case "jabber:client":
		return "jabber:client"
	case "jabber:server":
		return "jabber:server"
	case "http://etherx.jabber.org/streams":
		return "http://etherx.jabber.org/streams"
	case "urn:ietf:params:xml:ns:xmpp-sasl":
		return "urn:ietf:params:xml:ns:xmpp-sasl"
	case "urn:ietf:params:xml:ns:xmpp-tls":
		return "urn:ietf:params:xml:ns:xmpp-tls"
	case "urn:ietf:params:xml:ns:xmpp-bind":
		return "urn:ietf:params:xml:ns:xmpp-bind"
	case "urn:ietf:params:xml:ns:xmpp-session":
		return "urn:ietf:params:xml:ns:xmpp-session"
	case "urn:ietf:params:xml:ns:xmpp-streams":
		return "urn:ietf:params:xml:ns:xmpp-streams"
	case "urn:xmpp:sm:3":
		return "urn:xmpp:sm:3"
	case "jabber:iq:roster":
		return "jabber:iq:roster"
	}
	return string(b)
}

// byteReader makes an io.Reader an io.ByteReader, reading one byte at a
// time.
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
