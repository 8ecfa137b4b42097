package xmpp

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/boshd/boshd/internal/rawxml"
)

// Namespaces this package matches elements by.
const (
	nsClient  = "jabber:client"
	nsStream  = "http://etherx.jabber.org/streams"
	nsStreams = "urn:ietf:params:xml:ns:xmpp-streams" // stream error conditions
	nsTLS     = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL    = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsSASLCB  = "urn:xmpp:sasl-cb:0"
	nsSMPrefx = "urn:xmpp:sm:"
	nsCompres = "http://jabber.org/features/compress"
)

// closeTag ends the client's stream.
const closeTag = "</stream:stream>"

// appendHeader appends the client's stream header for t to b.
func appendHeader(b []byte, t *Target) []byte {
	b = append(b, "<?xml version='1.0'?><stream:stream to='"...)
	b = rawxml.AppendAttrValue(b, t.Domain)
	if t.From != "" {
		b = append(b, "' from='"...)
		b = rawxml.AppendAttrValue(b, t.From)
	}
	b = append(b, "' version='1.0'"...)
	if t.Lang != "" {
		b = append(b, " xml:lang='"...)
		b = rawxml.AppendAttrValue(b, t.Lang)
		b = append(b, '\'')
	}
	return append(b, " xmlns='"+nsClient+"' xmlns:stream='"+nsStream+"'>"...)
}

// header is what the server's stream header tells the client: what a
// relay passes on in a header of its own (RFC 7395's <open/>).
type header struct {
	id, from string
	lang     string // xml:lang
	version  string // at least 1.0
}

// errNotStream reports a server that does not open an XMPP 1.0 client
// stream.
var errNotStream = errors.New("xmpp: server did not open an XMPP 1.0 client stream")

// parseHeader checks the server's stream header and returns what it tells.
func parseHeader(root rawxml.Root) (header, error) {
	if root.Name.Local != "stream" || root.NS() != nsStream {
		return header{}, fmt.Errorf("%w: root element <%s>", errNotStream, qname(root.Name.Space, root.Name.Local))
	}
	if ns, ok := root.Namespace(""); ok && ns != nsClient {
		return header{}, fmt.Errorf("%w: content namespace %q", errNotStream, ns)
	}
	v, _ := root.Get("", "version")
	major, _, _ := strings.Cut(v, ".")
	if n, err := strconv.Atoi(major); err != nil || n < 1 {
		return header{}, fmt.Errorf("%w: version %q", errNotStream, v)
	}
	h := header{version: v}
	h.id, _ = root.Get("", "id")
	h.from, _ = root.Get("", "from")
	h.lang, _ = root.Get(rawxml.XMLNamespace, "lang")
	return h, nil
}

func qname(prefix, local string) string {
	if prefix == "" {
		return local
	}
	return prefix + ":" + local
}
