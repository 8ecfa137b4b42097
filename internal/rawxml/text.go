package rawxml

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

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
