package rawxml

import (
	"fmt"
	"unicode/utf8"
)

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
