package xmltest

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"

	"github.com/boshd/boshd/internal/rawxml"
)

// Standalone checks that raw stands alone as one element:
//
//   - encoding/xml, strict, reads it alone as exactly one well-formed
//     element with no comment, processing instruction or directive, and
//     no text outside it;
//   - rawxml reads it as a root (then its children until the end, or
//     until text, which a root may not hold);
//   - rawxml, with opts, reads it back byte for byte as the first child
//     of the document head + raw + tail.
//
// It returns the element's name as encoding/xml resolves it, and the
// child rawxml read back, for checks of the caller's own.
func Standalone(raw []byte, head, tail string, opts rawxml.Options) (xml.Name, rawxml.Element, error) {
	top, err := strictElement(raw)
	if err != nil {
		return top, rawxml.Element{}, err
	}
	rd := rawxml.NewReader(bytes.NewReader(raw), rawxml.Options{})
	if _, err := rd.Root(); err != nil {
		return top, rawxml.Element{}, fmt.Errorf("not readable as a root: %w", err)
	}
	for {
		_, err := rd.Next()
		if errors.Is(err, rawxml.ErrRootEnd) || errors.Is(err, rawxml.ErrText) {
			break
		}
		if err != nil {
			return top, rawxml.Element{}, fmt.Errorf("not readable as a root: %w", err)
		}
	}
	doc := append(append([]byte(head), raw...), tail...)
	rd = rawxml.NewReader(bytes.NewReader(doc), opts)
	if _, err := rd.Root(); err != nil {
		return top, rawxml.Element{}, fmt.Errorf("read again: %w", err)
	}
	el, err := rd.Next()
	if err != nil {
		return top, el, fmt.Errorf("read again: %w", err)
	}
	if !bytes.Equal(el.Raw, raw) {
		return top, el, fmt.Errorf("read again as %q", el.Raw)
	}
	return top, el, nil
}

// strictElement is the encoding/xml part of Standalone.
func strictElement(raw []byte) (xml.Name, error) {
	d := xml.NewDecoder(bytes.NewReader(raw))
	d.Strict = true
	var tops []xml.Name // the top-level elements
	depth := 0
	for {
		tok, err := d.Token()
		switch tok := tok.(type) {
		case xml.StartElement:
			if depth++; depth == 1 {
				tops = append(tops, tok.Name)
			}
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 0 {
				return xml.Name{}, fmt.Errorf("text %q outside the element", tok)
			}
		case xml.Comment, xml.ProcInst, xml.Directive:
			return xml.Name{}, fmt.Errorf("restricted %T", tok)
		}
		if err == io.EOF {
			break
		} else if err != nil {
			return xml.Name{}, fmt.Errorf("encoding/xml: %w", err)
		}
	}
	if len(tops) != 1 {
		return xml.Name{}, fmt.Errorf("%d top-level elements", len(tops))
	}
	return tops[0], nil
}
