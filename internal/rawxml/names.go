package rawxml

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"unicode"
	"unicode/utf8"
)

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

// nameIn returns the name q locates in s.
func nameIn(s string, q qspan) xml.Name {
	if q.colon < 0 {
		return xml.Name{Local: s[q.start:q.end]}
	}
	return xml.Name{Space: s[q.start:q.colon], Local: s[q.colon+1 : q.end]}
}

func qnameString(n xml.Name) string {
	if n.Space == "" {
		return n.Local
	}
	return n.Space + ":" + n.Local
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

// readNameAlone reads a name that stands alone, not in a child: the target
// of a processing instruction or the name in the root's end tag. It reads
// the name's first byte, records the name in buf, emptied first, and
// returns where it is in buf and the byte after it, as readQName does if
// qualified is set, else as readName does.
func (rd *Reader) readNameAlone(what string, qualified bool) (qspan, byte, error) {
	b, err := rd.readByte()
	if err != nil {
		return qspan{}, b, err
	}
	rd.buf = append(rd.buf[:0], b)
	rd.rec = true
	var q qspan
	if qualified {
		q, b, err = rd.readQName(b, what)
	} else {
		q, b, err = rd.readName(b, what)
	}
	rd.rec = false
	return q, b, err
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
