package rawxml

import "encoding/xml"

// EmptyRoot is a fast path for the commonest BOSH request, an empty
// <body/>: it reads data as one self-closing root element with nothing
// around it but whitespace, and reports whether it could. When it reports
// true, the Root is what Reader.Root returns for data and Reader.Next then
// returns ErrRootEnd: data is well-formed and namespace-well-formed.
//
// EmptyRoot handles a strict, common subset only: no XML declaration, ASCII
// names, quoted attribute values of printable ASCII with no '<' or '&'
// (so no entity or character references), and a start tag no longer than
// opts.MaxElementSize if that is set. For anything else it reports false
// and the caller uses a Reader, which gives the full answer or the error.
// It never reads past data and allocates only the Root it returns.
func EmptyRoot(data []byte, opts Options) (Root, bool) {
	if opts.MaxElementSize > 0 && len(data) > opts.MaxElementSize {
		return Root{}, false
	}
	// A body with children ends with its end tag: decline it before
	// allocating anything.
	end := len(data)
	for end > 0 && isSpace(data[end-1]) {
		end--
	}
	if end < 2 || data[end-2] != '/' || data[end-1] != '>' {
		return Root{}, false
	}
	p := skipWS(data, 0)
	if p >= len(data) || data[p] != '<' {
		return Root{}, false
	}
	name, p, ok := scanName(data, p+1)
	if !ok {
		return Root{}, false
	}
	root := Root{Name: name, Attr: make([]xml.Attr, 0, 4)}
	for {
		q := skipWS(data, p)
		if q+1 < len(data) && data[q] == '/' && data[q+1] == '>' {
			if skipWS(data, q+2) != len(data) {
				return Root{}, false
			}
			break
		}
		if q == p {
			return Root{}, false // attributes must be separated by whitespace
		}
		var a xml.Attr
		if a.Name, p, ok = scanName(data, q); !ok {
			return Root{}, false
		}
		p = skipWS(data, p)
		if p >= len(data) || data[p] != '=' {
			return Root{}, false
		}
		p = skipWS(data, p+1)
		if p >= len(data) || (data[p] != '\'' && data[p] != '"') {
			return Root{}, false
		}
		quote := data[p]
		start := p + 1
		for p = start; p < len(data) && data[p] != quote; p++ {
			if c := data[p]; c < 0x20 || c >= 0x7f || c == '<' || c == '&' {
				return Root{}, false
			}
		}
		if p >= len(data) {
			return Root{}, false
		}
		a.Value = string(data[start:p])
		p++
		root.Attr = append(root.Attr, a)
	}
	// The checks Reader.Root makes on the start tag.
	if checkRootStart(root.Name, root.Attr) != nil {
		return Root{}, false
	}
	return root, true
}

// skipWS returns the index of the first byte at or after p in data that is
// not XML whitespace.
func skipWS(data []byte, p int) int {
	for p < len(data) && isSpace(data[p]) {
		p++
	}
	return p
}

// scanName reads an ASCII XML name at p, with at most one colon that has
// a name on each side (split as encoding/xml splits it), and returns it
// and the index after it.
func scanName(data []byte, p int) (xml.Name, int, bool) {
	start, colon := p, -1
	for ; p < len(data); p++ {
		c := data[p]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		case c >= '0' && c <= '9', c == '-', c == '.':
			if p == start || p == colon+1 {
				return xml.Name{}, p, false
			}
		case c == ':':
			if colon >= 0 || p == start {
				return xml.Name{}, p, false
			}
			colon = p
		default:
			goto end
		}
	}
end:
	if p == start || p == colon+1 {
		return xml.Name{}, p, false
	}
	if colon < 0 {
		return xml.Name{Local: internBOSH(data[start:p])}, p, true
	}
	return xml.Name{Space: internBOSH(data[start:colon]), Local: internBOSH(data[colon+1 : p])}, p, true
}
