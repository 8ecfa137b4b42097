package rawxml

import (
	"encoding/xml"
	"errors"
	"io"
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
	// depthShift is how much deeper than the caller counts opts.MaxDepth
	// is: 1 when Document reads its element as a child of a root that is
	// not there. Errors report the caller's limit, opts.MaxDepth less it.
	depthShift int

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
// comes. Of root, only the name and the namespace declarations are used:
// root.Declarations() will do. rd keeps its buffers, as with Reset.
func (rd *Reader) ResetAfterRoot(r io.Reader, opts Options, root Root) {
	rd.Reset(r, opts)
	rd.started = true
	rd.root = root
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
