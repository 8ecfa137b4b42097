package gateway

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"net"
	"net/http"
	"slices"
	"strings"
)

// XEP-0156 (Discovering Alternative XMPP Connection Methods) lets a client
// that knows only a JID find the BOSH or WebSocket URL of its domain: it
// fetches https://DOMAIN/.well-known/host-meta (RFC 6415), an XRD
// document, or host-meta.json, and looks for the link with the relation
// of the method it speaks.
const (
	// RelBOSH is the link relation of a BOSH URL (XEP-0156 §3).
	RelBOSH = "urn:xmpp:alt-connections:xbosh"
	// RelWebSocket is the link relation of an XMPP over WebSocket URL
	// (XEP-0156 §3, RFC 7395 §4).
	RelWebSocket = "urn:xmpp:alt-connections:websocket"
	// nsXRD is the namespace of host-meta's XML form.
	nsXRD = "http://docs.oasis-open.org/ns/xri/xrd-1.0"
)

// Paths of the two forms of host-meta, where HostMeta is mounted.
const (
	HostMetaPath     = "/.well-known/host-meta"
	HostMetaJSONPath = "/.well-known/host-meta.json"
)

// xrd is host-meta in its XML form (RFC 6415 §3).
type xrd struct {
	XMLName xml.Name `xml:"http://docs.oasis-open.org/ns/xri/xrd-1.0 XRD"`
	Links   []Link   `xml:"Link"`
}

// A Link is one connection method host-meta advertises.
type Link struct {
	// Rel is the link relation: RelBOSH or RelWebSocket.
	Rel string `xml:"rel,attr" json:"rel"`
	// Href is the URL: absolute, or a path alone (see HostMeta).
	Href string `xml:"href,attr" json:"href"`
}

// hostMetaJSON is host-meta in its JSON form (RFC 6415 appendix A).
type hostMetaJSON struct {
	Links []Link `json:"links"`
}

// HostMeta returns a handler for XEP-0156 discovery that advertises links,
// in order: normally the BOSH URL (RelBOSH) and, when there is one, the
// WebSocket URL (RelWebSocket). Mount it at HostMetaPath and at
// HostMetaJSONPath: it serves the XRD (XML) form at the first, the JSON
// form at the second, and 404 elsewhere.
//
// A link's Href is normally absolute (https://chat.example.org/http-bind,
// wss://chat.example.org/xmpp-websocket). A path alone (/http-bind) is
// advertised on the host each request came to, with the scheme it came
// on (http or https; ws or wss for RelWebSocket), for a server that does
// not know its public name.
//
// Every answer carries Access-Control-Allow-Origin: * as XEP-0156
// recommends, since web clients fetch host-meta from the XMPP domain, which
// is rarely the origin of their page.
func HostMeta(links ...Link) http.Handler {
	h := &hostMeta{links: slices.Clone(links)}
	if !slices.ContainsFunc(links, func(l Link) bool { return strings.HasPrefix(l.Href, "/") }) {
		h.xml, h.json = hostMetaDocuments(links)
	}
	return h
}

type hostMeta struct {
	links     []Link // as given to HostMeta; immutable
	xml, json []byte // the documents when every link is absolute, else nil; immutable
}

// hostMetaDocuments returns the XML and JSON forms of host-meta advertising
// links.
func hostMetaDocuments(links []Link) (xmlDoc, jsonDoc []byte) {
	var b bytes.Buffer
	b.WriteString(xml.Header)
	enc := xml.NewEncoder(&b)
	enc.Indent("", "  ")
	if err := enc.Encode(xrd{Links: links}); err != nil {
		panic("gateway: encoding host-meta: " + err.Error()) // strings only: cannot fail
	}
	b.WriteString("\n")
	j, err := json.MarshalIndent(hostMetaJSON{Links: links}, "", "  ")
	if err != nil {
		panic("gateway: encoding host-meta.json: " + err.Error())
	}
	return b.Bytes(), append(j, '\n')
}

func (h *hostMeta) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Access-Control-Allow-Origin", "*")
	var isJSON bool
	switch {
	case strings.HasSuffix(r.URL.Path, HostMetaJSONPath):
		isJSON = true
	case strings.HasSuffix(r.URL.Path, HostMetaPath):
	default:
		http.NotFound(w, r)
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions:
		// A CORS preflight: any origin may GET, with any header a
		// client may add (Accept is the usual one).
		hdr.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
		if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
			hdr.Set("Access-Control-Allow-Headers", req)
		}
		hdr.Set("Access-Control-Max-Age", "86400")
		hdr.Set("Allow", "GET, HEAD, OPTIONS")
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		hdr.Set("Allow", "GET, HEAD, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}

	xmlDoc, jsonDoc := h.xml, h.json
	if xmlDoc == nil {
		links := slices.Clone(h.links)
		for i, l := range links {
			if !strings.HasPrefix(l.Href, "/") {
				continue
			}
			url, ok := requestURL(r, l.Rel == RelWebSocket, l.Href)
			if !ok {
				http.Error(w, "bad Host header", http.StatusBadRequest)
				return
			}
			links[i].Href = url
		}
		xmlDoc, jsonDoc = hostMetaDocuments(links)
		hdr.Add("Vary", "Host")
	}
	doc, ctype := xmlDoc, "application/xrd+xml; charset=utf-8"
	if isJSON {
		doc, ctype = jsonDoc, "application/json"
	}
	hdr.Set("Content-Type", ctype)
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.Write(doc)
}

// requestURL returns path on the scheme and host r came to (its WebSocket
// scheme, ws or wss, if ws), and whether r's Host is a plausible
// host[:port].
func requestURL(r *http.Request, ws bool, path string) (string, bool) {
	host := r.Host
	name := host
	if h, port, err := net.SplitHostPort(host); err == nil {
		if port == "" || strings.Trim(port, "0123456789") != "" {
			return "", false
		}
		name = h
	}
	if name == "" || strings.ContainsFunc(name, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(".-:[]", c))
	}) {
		return "", false
	}
	scheme := "http"
	if ws {
		scheme = "ws"
	}
	if r.TLS != nil {
		scheme += "s"
	}
	return scheme + "://" + host + path, true
}
