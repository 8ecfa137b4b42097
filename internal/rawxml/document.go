package rawxml

import (
	"bytes"
	"fmt"
	"io"
	"sync"
)

// Document checks that b is an XML document of one element and nothing
// else, as each message of XMPP over WebSocket must be (RFC 7395 §3.3.3:
// "parsable as standalone XML documents"), and returns that element.
//
// An XML declaration (version 1.0, encoding UTF-8 if any) may start b, and
// whitespace may come before the element and after it; nothing else may.
// RFC 7395 makes the declaration NOT RECOMMENDED, not forbidden, so it is
// accepted, and left out of Raw: relayed into a stream, it would be a
// processing instruction there.
//
// The element is checked as Reader checks a child: well-formed,
// namespace-well-formed (every prefix declared by the element itself or
// inside it, since nothing is around it), valid UTF-8 and XML characters,
// and none of what XMPP forbids (RFC 6120 §11.1): comments, processing
// instructions, DOCTYPE and entities other than the predefined ones,
// anywhere in b. Unlike Reader's root, the element may hold text, as a
// SASL <auth/> does.
//
// In the Element returned, Name is the raw name (Space holds the prefix),
// NS the element's namespace URI (opts.DefaultNS for an unprefixed element
// that declares no default namespace), and Raw the element's bytes in b,
// from its "<" to its last ">": a subslice of b, not a copy, with nothing
// added (the element stands alone as it came).
//
// opts.MaxDepth bounds nesting, the element counting as depth 1;
// opts.MaxElementSize bounds len(b). Errors wrap ErrRestricted for what
// XMPP forbids (a stream error restricted-xml), ErrLimit for a limit
// exceeded, and ErrMalformed for anything else (not-well-formed): no
// element, an incomplete one, text or a second element around it.
//
// Document allocates nothing for the element names and namespaces XMPP
// uses most; it allocates the strings of others.
func Document(b []byte, opts Options) (Element, error) {
	if opts.MaxElementSize > 0 && len(b) > opts.MaxElementSize {
		return Element{}, fmt.Errorf("%w: document of %d bytes, larger than %d", ErrLimit, len(b), opts.MaxElementSize)
	}
	d := docPool.Get().(*docReader)
	d.br.Reset(b)
	inner := Options{DefaultNS: opts.DefaultNS}
	if opts.MaxDepth > 0 {
		// Read as a child of a root that is not there: one deeper.
		inner.MaxDepth = opts.MaxDepth + 1
	}
	d.rd.Reset(&d.br, inner)
	// So that a limit exceeded is reported as opts.MaxDepth, not inner's.
	d.rd.depthShift = 1
	el, start, err := d.rd.document()
	end := d.rd.n
	d.br.Reset(nil)
	if cap(d.rd.buf) > maxKeep {
		d.rd.buf = d.rd.bufArr[:0]
	}
	if cap(d.rd.vals) > maxKeep {
		d.rd.vals = d.rd.valsArr[:0]
	}
	docPool.Put(d)
	if err != nil {
		return Element{}, err
	}
	el.Raw = b[start:end:end]
	return el, nil
}

// docReader is what Document reads with, pooled.
type docReader struct {
	rd Reader
	br bytes.Reader
}

var docPool = sync.Pool{New: func() any { return new(docReader) }}

// document reads what Document reads, and returns the element (without
// Raw) and the offset of its "<". Its end is at rd.n.
func (rd *Reader) document() (Element, int, error) {
	rd.n = 0
	for {
		b, err := rd.readSpace()
		if err != nil {
			return Element{}, 0, docEOF(err, "before its element")
		}
		if b != '<' {
			if err := rd.checkText(b); err != nil {
				return Element{}, 0, docEOF(err, "in character data")
			}
			return Element{}, 0, fmt.Errorf("%w: %w", ErrMalformed, errProlog)
		}
		start := rd.n - 1
		if b, err = rd.readByte(); err != nil {
			return Element{}, 0, docEOF(err, "in markup")
		}
		switch b {
		case '?':
			if err := rd.prologPI(start == 0); err != nil {
				return Element{}, 0, docEOF(err, "in a processing instruction")
			}
			continue
		case '!':
			if err := rd.bang(); err != nil {
				return Element{}, 0, docEOF(err, "in a comment or directive")
			}
			return Element{}, 0, fmt.Errorf("%w: %w", ErrMalformed, errProlog)
		case '/':
			return Element{}, 0, fmt.Errorf("%w: end tag before the element", ErrMalformed)
		}
		top, empty, ownDefault, err := rd.childStart(b)
		if err != nil {
			return Element{}, 0, docEOF(err, "in the element")
		}
		// A document has no root: childNS resolves by its declarations
		// and DefaultNS alone.
		el := Element{NS: rd.childNS(top, ownDefault)}
		el.Name.Local = internName(top.local(rd.buf))
		if top.colon >= 0 {
			el.Name.Space = internName(top.prefix(rd.buf))
		}
		if err := rd.childRest(top, empty); err != nil {
			return Element{}, 0, docEOF(err, "in the element")
		}
		rd.rec = false
		return el, start, rd.docEnd()
	}
}

// docEnd checks that nothing but whitespace follows the element.
func (rd *Reader) docEnd() error {
	n := rd.n
	b, err := rd.readSpace()
	if err == io.ErrUnexpectedEOF {
		rd.n = n
		return nil
	}
	if err != nil {
		return err
	}
	if b != '<' {
		if err := rd.checkText(b); err != nil {
			return docEOF(err, "in character data")
		}
		return fmt.Errorf("%w: character data after the element", ErrMalformed)
	}
	if b, err = rd.readByte(); err != nil {
		return docEOF(err, "in markup")
	}
	switch b {
	case '?':
		return fmt.Errorf("%w: processing instruction", ErrRestricted)
	case '!':
		if err := rd.bang(); err != nil {
			return docEOF(err, "in a comment or directive")
		}
		return fmt.Errorf("%w: CDATA section after the element", ErrMalformed)
	}
	return fmt.Errorf("%w: more than one element", ErrMalformed)
}

// docEOF makes the end of b, met while reading what, an ErrMalformed
// error: b is the whole document, so it cannot be waited for. Other errors
// are returned as they are.
func docEOF(err error, what string) error {
	if err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: document ends %s", ErrMalformed, what)
	}
	return err
}
