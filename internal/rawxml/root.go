package rawxml

import (
	"encoding/xml"
	"fmt"
)

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

// Declarations returns r with its namespace declarations only, in a
// slice of their own: all that ResetAfterRoot needs of a root. A caller
// keeping a root for as long as a stream lives keeps this, and not the
// other attributes and their strings.
func (r Root) Declarations() Root {
	n := 0
	for _, a := range r.Attr {
		if isDecl(a) {
			n++
		}
	}
	if n == 0 {
		return Root{Name: r.Name}
	}
	attrs := make([]xml.Attr, 0, n)
	for _, a := range r.Attr {
		if isDecl(a) {
			attrs = append(attrs, a)
		}
	}
	return Root{Name: r.Name, Attr: attrs}
}

// isDecl reports whether a is a namespace declaration: xmlns or
// xmlns:prefix.
func isDecl(a xml.Attr) bool {
	return a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns")
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
