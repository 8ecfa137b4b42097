package rawxml

import (
	"fmt"
	"slices"
)

// XMLNamespace is the namespace bound to the reserved prefix "xml".
const XMLNamespace = "http://www.w3.org/XML/1998/namespace"

// xmlnsNamespace is the namespace bound to the reserved prefix "xmlns".
const xmlnsNamespace = "http://www.w3.org/2000/xmlns/"

// binding is a namespace declaration below the root: prefix (empty for
// the default namespace) in buf, uri in vals.
type binding struct {
	prefix, uri span
	depth       int
}

// childNS returns the namespace of the child top, in scope after its own
// declarations, and after the DefaultNS rule.
func (rd *Reader) childNS(top qspan, ownDefault bool) string {
	prefix := top.prefix(rd.buf)
	if string(prefix) == "xml" {
		return XMLNamespace
	}
	if uri, ok := rd.scoped(prefix); ok {
		return internNS(uri)
	}
	if len(prefix) == 0 && !ownDefault && rd.opts.DefaultNS != "" {
		return rd.opts.DefaultNS
	}
	uri, _ := rd.rootNS(prefix)
	return uri
}

// scoped returns the URI, in vals, of the innermost declaration of prefix
// below the root, and false if there is none.
func (rd *Reader) scoped(prefix []byte) ([]byte, bool) {
	for i := len(rd.scope) - 1; i >= 0; i-- {
		if bd := rd.scope[i]; string(rd.buf[bd.prefix.start:bd.prefix.end]) == string(prefix) {
			return rd.vals[bd.uri.start:bd.uri.end], true
		}
	}
	return nil, false
}

// rootNS is Root.Namespace for a prefix in bytes, without the prefix xml.
func (rd *Reader) rootNS(prefix []byte) (string, bool) {
	for _, a := range rd.root.Attr {
		if len(prefix) == 0 && a.Name.Space == "" && a.Name.Local == "xmlns" {
			return a.Value, true
		}
		if len(prefix) != 0 && a.Name.Space == "xmlns" && a.Name.Local == string(prefix) {
			return a.Value, true
		}
	}
	return "", false
}

// prefixString returns prefix as a string, the root's copy if the root
// declares it.
func (rd *Reader) prefixString(prefix []byte) string {
	for _, a := range rd.root.Attr {
		if a.Name.Space == "xmlns" && a.Name.Local == string(prefix) {
			return a.Name.Local
		}
	}
	return internName(prefix)
}

// resolve returns the namespace bound to prefix, which is bound.
func (rd *Reader) resolve(prefix []byte) string {
	if string(prefix) == "xml" {
		return XMLNamespace
	}
	if uri, ok := rd.scoped(prefix); ok {
		return string(uri)
	}
	uri, _ := rd.rootNS(prefix)
	return uri
}

// use checks that prefix is bound and, if the binding in force is the
// root's, records that the current child inherits it.
func (rd *Reader) use(prefix []byte) error {
	if len(prefix) == 0 || string(prefix) == "xml" || string(prefix) == "xmlns" {
		return nil
	}
	for i := len(rd.scope) - 1; i >= 0; i-- {
		if bd := rd.scope[i]; string(rd.buf[bd.prefix.start:bd.prefix.end]) == string(prefix) {
			return nil
		}
	}
	for _, a := range rd.root.Attr {
		if a.Name.Space == "xmlns" && a.Name.Local == string(prefix) {
			if !slices.Contains(rd.inherited, a.Name.Local) {
				rd.inherited = append(rd.inherited, a.Name.Local)
			}
			return nil
		}
	}
	return fmt.Errorf("%w: undeclared prefix %q", ErrMalformed, prefix)
}

// standalone returns a copy of the child in buf, whose name is top, with
// the root's namespace declarations it relies on added to its start tag:
// the default namespace (Options.DefaultNS) if the child is unprefixed and
// declares none, and the root's declaration of each prefix the child uses
// without declaring it.
func (rd *Reader) standalone(top qspan, ownDefault bool) []byte {
	extra := rd.extra[:0]
	if top.colon < 0 && rd.opts.DefaultNS != "" && !ownDefault {
		extra = appendDecl(extra, "", rd.opts.DefaultNS)
	}
	for _, prefix := range rd.inherited {
		uri, _ := rd.root.Namespace(prefix)
		extra = appendDecl(extra, prefix, uri)
	}
	rd.extra = extra
	raw := rd.buf
	// The declarations go right after "<qname".
	out := make([]byte, 0, len(raw)+len(extra))
	out = append(out, raw[:top.end]...)
	out = append(out, extra...)
	return append(out, raw[top.end:]...)
}

func appendDecl(b []byte, prefix, uri string) []byte {
	b = append(b, " xmlns"...)
	if prefix != "" {
		b = append(b, ':')
		b = append(b, prefix...)
	}
	b = append(b, "='"...)
	b = AppendAttrValue(b, uri)
	return append(b, '\'')
}
