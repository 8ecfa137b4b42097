package rawxml

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

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
	q, b, err := rd.readNameAlone("element name after </", true)
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

// child reads a child of the root whose "<" and first name byte b have
// been read.
func (rd *Reader) child(b byte) (Element, error) {
	top, empty, ownDefault, err := rd.childStart(b)
	if err != nil {
		return Element{}, err
	}
	// Resolved now: the end of the child pops its declarations.
	el := Element{NS: rd.childNS(top, ownDefault)}
	el.Name.Local = internName(top.local(rd.buf))
	if top.colon >= 0 {
		el.Name.Space = rd.prefixString(top.prefix(rd.buf))
	}
	if err := rd.childRest(top, empty); err != nil {
		return Element{}, err
	}
	el.Raw = rd.standalone(top, ownDefault)
	return el, nil
}

// childStart reads the start tag of a child of the root whose "<" and
// first name byte b have been read, recording the child in buf from its
// "<". It returns the child's name, whether the tag ends with "/>", and
// whether the child declares a default namespace of its own; the child's
// declarations are then the bindings in scope.
func (rd *Reader) childStart(b byte) (top qspan, empty, ownDefault bool, err error) {
	rd.buf = append(rd.buf[:0], '<', b)
	rd.rec = true
	rd.vals = rd.vals[:0]
	rd.scope = rd.scope[:0]
	rd.stack = rd.stack[:0]
	rd.inherited = rd.inherited[:0]

	top, empty, err = rd.startTag(b, 2)
	if err != nil {
		return top, false, false, err
	}
	for _, bd := range rd.scope {
		if bd.prefix.start == bd.prefix.end {
			ownDefault = true
		}
	}
	return top, empty, ownDefault, nil
}

// childRest reads the rest of the child whose start tag childStart read:
// its content and end tag, unless the start tag was empty.
func (rd *Reader) childRest(top qspan, empty bool) error {
	if empty {
		return nil
	}
	rd.stack = append(rd.stack, top)
	return rd.content()
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
	depth := len(rd.stack) + 2
	q, empty, err := rd.startTag(b, depth)
	if err != nil {
		return false, err
	}
	if empty {
		// A self-closing tag is its own end tag: its declarations go
		// out of scope with it, as endTag's would.
		rd.popScope(depth)
	} else {
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
	rd.popScope(len(rd.stack) + 1)
	rd.stack = rd.stack[:len(rd.stack)-1]
	return len(rd.stack) == 0, nil
}

// popScope drops from scope the namespace declarations of the element at
// depth, which has ended, and of any deeper one.
func (rd *Reader) popScope(depth int) {
	i := len(rd.scope)
	for i > 0 && rd.scope[i-1].depth >= depth {
		i--
	}
	rd.scope = rd.scope[:i]
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
		return q, false, fmt.Errorf("%w: nesting deeper than %d", ErrLimit, rd.opts.MaxDepth-rd.depthShift)
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
