package xmpp

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// filterFeatures removes from a standalone <stream:features> element the
// features that cannot cross a connection manager:
//
//   - <starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>: the client's
//     channel to boshd is HTTP, never TLS negotiated through us;
//   - SASL mechanisms whose name ends in -PLUS, and XEP-0440
//     <sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'/>: channel binding
//     would bind the client's authentication to boshd's TLS session;
//   - every feature in a urn:xmpp:sm:* namespace, unless keepSM is set:
//     XEP-0198 stream management is tied to boshd's TCP stream, which
//     a BOSH session cannot resume; a binding whose client stream maps
//     one to one onto it (XMPP over WebSocket, RFC 7395 §3.9) keeps it;
//   - <compression xmlns='http://jabber.org/features/compress'/>.
//
// Elements are matched by namespace URI, whatever their prefix. What is
// kept keeps its original bytes: removed elements are cut out of raw, and
// raw itself is returned if nothing is removed. starttls reports whether
// the server offered STARTTLS.
//
// raw must be well-formed, as rawxml.Reader guarantees: end tags are not
// matched against start tags here.
func filterFeatures(raw []byte, keepSM bool) (out []byte, starttls bool, err error) {
	d := xml.NewDecoder(bytes.NewReader(raw))
	var (
		scope []binding  // namespace declarations in force, innermost last
		cuts  [][2]int64 // byte ranges of raw to remove, in order
		depth int        // of the current element; <stream:features> is 1

		cutFrom   int64 = -1 // start of the depth-2 element being removed
		inMechs   bool       // inside a SASL <mechanisms>
		mechFrom  int64 = -1 // start of the <mechanism> being read
		mechName  []byte
		lastStart int64
	)
	for {
		lastStart = d.InputOffset()
		tok, err := d.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, false, fmt.Errorf("xmpp: stream features: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			scope = pushDecls(scope, t.Attr, depth)
			ns := lookupNS(scope, t.Name.Space)
			switch depth {
			case 2:
				inMechs = ns == nsSASL && t.Name.Local == "mechanisms"
				if ns == nsTLS && t.Name.Local == "starttls" {
					starttls = true
				}
				if unrelayable(ns, t.Name.Local, keepSM) {
					cutFrom = lastStart
				}
			case 3:
				if inMechs && ns == nsSASL && t.Name.Local == "mechanism" {
					mechFrom = lastStart
					mechName = mechName[:0]
				}
			}
		case xml.CharData:
			if depth == 3 && mechFrom >= 0 {
				mechName = append(mechName, t...)
			}
		case xml.EndElement:
			switch depth {
			case 2:
				if cutFrom >= 0 {
					cuts = append(cuts, [2]int64{cutFrom, d.InputOffset()})
					cutFrom = -1
				}
				inMechs = false
			case 3:
				if mechFrom >= 0 && bytes.HasSuffix(bytes.TrimSpace(mechName), []byte("-PLUS")) {
					cuts = append(cuts, [2]int64{mechFrom, d.InputOffset()})
				}
				mechFrom = -1
			}
			scope = popDecls(scope, depth)
			depth--
		}
	}
	if len(cuts) == 0 {
		return raw, starttls, nil
	}
	out = make([]byte, 0, len(raw))
	var at int64
	for _, c := range cuts {
		out = append(out, raw[at:c[0]]...)
		at = c[1]
	}
	return append(out, raw[at:]...), starttls, nil
}

// unrelayable reports whether a feature (a child of <stream:features>) must
// not be relayed to the client; stream management is relayed if keepSM.
func unrelayable(ns, local string, keepSM bool) bool {
	switch {
	case ns == nsTLS && local == "starttls",
		ns == nsSASLCB && local == "sasl-channel-binding",
		ns == nsCompres && local == "compression",
		!keepSM && strings.HasPrefix(ns, nsSMPrefx):
		return true
	}
	return false
}

// binding is one namespace declaration in scope.
type binding struct {
	prefix, uri string
	depth       int
}

// pushDecls adds the namespace declarations among attrs, made at depth.
func pushDecls(scope []binding, attrs []xml.Attr, depth int) []binding {
	for _, a := range attrs {
		switch {
		case a.Name.Space == "" && a.Name.Local == "xmlns":
			scope = append(scope, binding{"", a.Value, depth})
		case a.Name.Space == "xmlns":
			scope = append(scope, binding{a.Name.Local, a.Value, depth})
		}
	}
	return scope
}

// popDecls drops the declarations made at depth or deeper.
func popDecls(scope []binding, depth int) []binding {
	i := len(scope)
	for i > 0 && scope[i-1].depth >= depth {
		i--
	}
	return scope[:i]
}

// lookupNS returns the namespace bound to prefix ("" if none is).
func lookupNS(scope []binding, prefix string) string {
	for i := len(scope) - 1; i >= 0; i-- {
		if scope[i].prefix == prefix {
			return scope[i].uri
		}
	}
	return ""
}
