package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
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
	Children  []element
	// arrived is when the response's first byte was read (zero if not
	// known).
	arrived time.Time
}

// errNotBody is returned by parseResponse for a document whose root is
// not the httpbind <body/>.
var errNotBody = errors.New("root is not {" + nsHTTPBind + "}body")

// parseResponse parses a response body. It checks that the document is
// exactly one {httpbind}body element, with nothing but white space and an
// XML declaration around it.
func parseResponse(data []byte) (*response, error) {
	dec := xml.NewDecoder(bytes.NewReader(data))
	var root element
	found := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("parsing response: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if found {
				return nil, errors.New("parsing response: more than one root element")
			}
			if err := dec.DecodeElement(&root, &t); err != nil {
				return nil, fmt.Errorf("parsing response: %w", err)
			}
			found = true
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return nil, fmt.Errorf("parsing response: text outside the root: %q", t)
			}
		case xml.ProcInst:
		default:
			return nil, fmt.Errorf("parsing response: unexpected %T outside the root", tok)
		}
	}
	if !found {
		return nil, errors.New("parsing response: empty document")
	}
	if !root.is(nsHTTPBind, "body") {
		return nil, fmt.Errorf("parsing response: %w (got {%s}%s)", errNotBody, root.XMLName.Space, root.XMLName.Local)
	}
	return &response{
		Type:      root.attr("type"),
		Condition: root.attr("condition"),
		SID:       root.attr("sid"),
		Children:  root.Children,
	}, nil
}

// terminated reports whether the response ends the session.
func (r *response) terminated() bool { return r.Type == "terminate" }

// find returns the first child for which match holds, or nil.
func (r *response) find(match func(*element) bool) *element {
	for i := range r.Children {
		if match(&r.Children[i]) {
			return &r.Children[i]
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
