package rawxml

import (
	"fmt"
	"strings"
)

// prologPI reads a processing instruction before the root after its "<?":
// an XML declaration if it is at the very start, else restricted.
func (rd *Reader) prologPI(atStart bool) error {
	q, b, err := rd.readNameAlone("target name after <?", false)
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
		ok, err := rd.readLiteral(pseudo[i][1:])
		if err != nil {
			return err
		}
		if !ok {
			return bad
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
