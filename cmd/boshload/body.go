package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/boshd/boshd/internal/rawxml"
)

// Namespaces of the elements boshload writes and reads.
const (
	nsHTTPBind = "http://jabber.org/protocol/httpbind"
	nsXBOSH    = "urn:xmpp:xbosh"
	nsStream   = "http://etherx.jabber.org/streams"
	nsSASL     = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsBind     = "urn:ietf:params:xml:ns:xmpp-bind"
	nsSession  = "urn:ietf:params:xml:ns:xmpp-session"
	nsClient   = "jabber:client"
)

// element is a parsed XML element with namespaces resolved.
type element struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Children []element  `xml:",any"`
	Text     string     `xml:",chardata"`
}

// is reports whether e is {space}local.
func (e *element) is(space, local string) bool {
	return e != nil && e.XMLName.Space == space && e.XMLName.Local == local
}

// attr returns the value of the unqualified attribute local.
func (e *element) attr(local string) string {
	for _, a := range e.Attrs {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// child returns the first child {space}local, or nil.
func (e *element) child(space, local string) *element {
	if e == nil {
		return nil
	}
	for i := range e.Children {
		if e.Children[i].is(space, local) {
			return &e.Children[i]
		}
	}
	return nil
}

// response is a parsed BOSH response <body/>.
type response struct {
	Type      string // "" or "terminate"
	Condition string // terminal condition, if any
	SID       string
	// Children are the body's children, each standalone (the
	// declarations it inherited added), its namespace resolved.
	Children []rawxml.Element
	// arrived is when the response's first byte was read (zero if not
	// known).
	arrived time.Time
}

// errNotBody is returned by parseResponse for a document whose root is
// not the httpbind <body/>.
var errNotBody = errors.New("root is not {" + nsHTTPBind + "}body")

// responseOptions is how a response is read: children unprefixed and
// without a declaration of their own are in the body's default namespace,
// as XML has it (no DefaultNS rule).
var responseOptions = rawxml.Options{MaxDepth: 64}

// responseParser reads response bodies with a rawxml.Reader it keeps, so
// that a response costs its children's copies and little else: the
// generator must cost less per stanza than the server it loads, and
// encoding/xml cost it more than boshd's whole relay.
type responseParser struct {
	rd  rawxml.Reader
	src bytes.Reader
}

// parsers holds the responseParsers of the requests not in flight: a
// response is parsed by the goroutine that posted its request, two at a
// time in a chatting session.
var parsers = sync.Pool{New: func() any { return new(responseParser) }}

// parseResponse parses a response body. It checks that the document is
// exactly one {httpbind}body element, with nothing but white space and an
// XML declaration before it and white space after it, and no comment,
// processing instruction or DOCTYPE anywhere.
func parseResponse(data []byte) (*response, error) {
	p := parsers.Get().(*responseParser)
	defer parsers.Put(p)
	r, err := p.parse(data)
	if err != nil {
		return nil, fmt.Errorf("parsing response: %w", err)
	}
	return r, nil
}

// parse is parseResponse with p's reader.
func (p *responseParser) parse(data []byte) (*response, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("empty document")
	}
	p.src.Reset(data)
	p.rd.Reset(&p.src, responseOptions)
	root, err := p.rd.Root()
	if err != nil {
		return nil, err
	}
	if ns := root.NS(); ns != nsHTTPBind || root.Name.Local != "body" {
		return nil, fmt.Errorf("%w (got {%s}%s)", errNotBody, ns, root.Name.Local)
	}
	r := new(response)
	r.Type, _ = root.Get("", "type")
	r.Condition, _ = root.Get("", "condition")
	r.SID, _ = root.Get("", "sid")
	for {
		el, err := p.rd.Next()
		if errors.Is(err, rawxml.ErrRootEnd) {
			break
		}
		if err != nil {
			return nil, err
		}
		r.Children = append(r.Children, el)
	}
	// The reader stops at the root's end: what follows must be white
	// space.
	if rest := data[len(data)-p.src.Len():]; len(bytes.TrimSpace(rest)) > 0 {
		return nil, fmt.Errorf("%q after the root", clip(rest))
	}
	return r, nil
}

// terminated reports whether the response ends the session.
func (r *response) terminated() bool { return r.Type == "terminate" }

// find returns the first child, decoded, for which match holds, or nil.
// It decodes each child with encoding/xml: for the login's few
// responses, never for chatting's.
func (r *response) find(match func(*element) bool) *element {
	for _, c := range r.Children {
		e, err := decodeElement(c)
		if err != nil {
			continue // well-formed, as rawxml checked: not met
		}
		if match(e) {
			return e
		}
	}
	return nil
}

// escapeAttr escapes s for an attribute value in single quotes or for
// character data.
func escapeAttr(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s)) // writing to a strings.Builder never fails
	return b.String()
}

// createBody returns the session creation request, as a browser library
// such as Strophe.js sends it.
func createBody(rid uint64, domain string, wait, hold int) string {
	return fmt.Sprintf("<body rid='%d' to='%s' xml:lang='en' wait='%d' hold='%d' "+
		"content='text/xml; charset=utf-8' ver='1.6' xmpp:version='1.0' xmlns='%s' xmlns:xmpp='%s'/>",
		rid, escapeAttr(domain), wait, hold, nsHTTPBind, nsXBOSH)
}

// sessionBody returns a request of session sid carrying payload (may be
// empty: an idle poll).
func sessionBody(rid uint64, sid, payload string) string {
	if payload == "" {
		return fmt.Sprintf("<body rid='%d' sid='%s' xmlns='%s'/>", rid, escapeAttr(sid), nsHTTPBind)
	}
	return fmt.Sprintf("<body rid='%d' sid='%s' xmlns='%s'>%s</body>", rid, escapeAttr(sid), nsHTTPBind, payload)
}

// restartBody returns the stream restart request after SASL success
// (XEP-0206 §5).
func restartBody(rid uint64, sid, domain string) string {
	return fmt.Sprintf("<body rid='%d' sid='%s' to='%s' xml:lang='en' xmpp:restart='true' xmlns='%s' xmlns:xmpp='%s'/>",
		rid, escapeAttr(sid), escapeAttr(domain), nsHTTPBind, nsXBOSH)
}

// terminateBody returns the request that ends session sid. An
// authenticated session says goodbye with unavailable presence, as
// XEP-0206 §6 suggests; an unauthenticated stream may carry no stanza.
func terminateBody(rid uint64, sid string, authenticated bool) string {
	if !authenticated {
		return fmt.Sprintf("<body rid='%d' sid='%s' type='terminate' xmlns='%s'/>", rid, escapeAttr(sid), nsHTTPBind)
	}
	return fmt.Sprintf("<body rid='%d' sid='%s' type='terminate' xmlns='%s'>%s</body>",
		rid, escapeAttr(sid), nsHTTPBind, unavailablePresence)
}
