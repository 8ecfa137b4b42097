package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"

	"github.com/boshd/boshd/internal/rawxml"
)

// Namespaces of XMPP over WebSocket (RFC 7395) and of stream errors.
const (
	nsFraming = "urn:ietf:params:xml:ns:xmpp-framing"
	nsStreams = "urn:ietf:params:xml:ns:xmpp-streams"
)

// closeMessage ends the XMPP stream of a WebSocket connection (RFC 7395
// §3.6), written as Strophe.js, which takes nothing else for a clean
// close, expects it.
const closeMessage = "<close xmlns='" + nsFraming + "'/>"

// openMessage returns the <open/> that starts (and, after SASL success,
// restarts) the stream to domain (RFC 7395 §3.4).
func openMessage(domain string) string {
	return "<open xmlns='" + nsFraming + "' to='" + escapeAttr(domain) + "' version='1.0' xml:lang='en'/>"
}

// docOptions is how a message from the server is checked: one standalone
// element (RFC 7395 §3.3.3), an unprefixed one without a namespace taken
// as jabber:client.
var docOptions = rawxml.Options{DefaultNS: nsClient, MaxDepth: 64}

// parseMessage checks that msg is one standalone XML element and returns
// it, its Raw a slice of msg. It allocates nothing for the names XMPP
// uses most: it is the whole cost of a message boshload only counts.
func parseMessage(msg []byte) (rawxml.Element, error) {
	return rawxml.Document(msg, docOptions)
}

// is reports whether el is {ns}local.
func isElement(el rawxml.Element, ns, local string) bool {
	return el.NS == ns && el.Name.Local == local
}

// decodeElement decodes el, which parseMessage returned, into an element
// for the setup's checks (features, SASL outcome, iq results), with
// encoding/xml: a few messages per session, not per stanza.
func decodeElement(el rawxml.Element) (*element, error) {
	e := new(element)
	if err := xml.Unmarshal(el.Raw, e); err != nil {
		return nil, fmt.Errorf("decoding <%s/>: %w", el.Name.Local, err)
	}
	if e.XMLName.Space == "" {
		e.XMLName.Space = el.NS // the default namespace parseMessage applied
	}
	return e, nil
}

// inspector reads the parts of a message that the chat check needs, with
// a rawxml.Reader it keeps: a few allocations per message where
// encoding/xml makes dozens. It is owned by the reading goroutine.
type inspector struct {
	rd  rawxml.Reader
	src bytes.Reader
}

// messageFields returns the from attribute and the text of the
// jabber:client <body/> child of raw, a <message/> that parseMessage
// returned; hasBody is false when there is none.
func (in *inspector) messageFields(raw []byte) (from, body string, hasBody bool, err error) {
	root, err := in.start(raw)
	if err != nil {
		return "", "", false, err
	}
	from, _ = root.Get("", "from")
	for {
		child, err := in.next()
		if errors.Is(err, rawxml.ErrRootEnd) {
			return from, "", false, nil
		}
		if err != nil {
			return "", "", false, err
		}
		if isElement(child, nsClient, "body") {
			text, err := elementText(child.Raw)
			return from, text, err == nil, err
		}
	}
}

// firstChild returns the local name of the first child element of raw, an
// element that parseMessage returned, in namespace ns ("" if none): the
// condition of a stream error or of a SASL failure.
func (in *inspector) firstChild(raw []byte, ns string) string {
	if _, err := in.start(raw); err != nil {
		return ""
	}
	for {
		child, err := in.next()
		if err != nil {
			return ""
		}
		if child.NS == ns {
			return child.Name.Local
		}
	}
}

// start reads the start tag of raw, an element that parseMessage
// returned, as a root whose children next returns. An unprefixed child
// is in its parent's default namespace (no DefaultNS rule, unlike a
// stream's children), jabber:client when none is declared at all, as
// docOptions has it for the element itself.
func (in *inspector) start(raw []byte) (rawxml.Root, error) {
	in.src.Reset(raw)
	in.rd.Reset(&in.src, rawxml.Options{MaxDepth: docOptions.MaxDepth})
	return in.rd.Root()
}

// next returns the next child of the element start read.
func (in *inspector) next() (rawxml.Element, error) {
	child, err := in.rd.Next()
	if err == nil && child.NS == "" {
		child.NS = docOptions.DefaultNS
	}
	return child, err
}

// elementText returns the character data of raw, a standalone element
// holding text only. Plain text, the common case, is sliced out; text
// with references, CDATA or line ends to normalise, or with child
// elements, is decoded by encoding/xml (the element's own text, as
// element.Text holds it).
func elementText(raw []byte) (string, error) {
	if bytes.HasSuffix(raw, []byte("/>")) && bytes.IndexByte(raw, '>') == len(raw)-1 {
		return "", nil // <body/>
	}
	start := bytes.IndexByte(raw, '>') + 1
	end := bytes.LastIndexByte(raw, '<')
	if start <= 0 || end < start {
		return "", fmt.Errorf("element %q is not start tag, text, end tag", raw)
	}
	text := raw[start:end]
	if bytes.IndexByte(text, '&') < 0 && bytes.IndexByte(text, '<') < 0 && bytes.IndexByte(text, '\r') < 0 {
		return string(text), nil
	}
	var e struct {
		Text string `xml:",chardata"`
	}
	if err := xml.Unmarshal(raw, &e); err != nil {
		return "", err
	}
	return e.Text, nil
}
