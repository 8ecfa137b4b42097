package bosh

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"net"
	"net/http"
	"strings"
)

// XEP-0156 (Discovering Alternative XMPP Connection Methods) lets a client
// that knows only a JID find the BOSH URL of its domain: it fetches
// https://DOMAIN/.well-known/host-meta (RFC 6415), an XRD document, or
// host-meta.json, and looks for the link with this relation.
const (
	// relBOSH is the link relation of a BOSH URL (XEP-0156 §3).
	relBOSH = "urn:xmpp:alt-connections:xbosh"
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
	XMLName xml.Name  `xml:"http://docs.oasis-open.org/ns/xri/xrd-1.0 XRD"`
	Links   []xrdLink `xml:"Link"`
}

type xrdLink struct {
	Rel  string `xml:"rel,attr" json:"rel"`
	Href string `xml:"href,attr" json:"href"`
}

// hostMetaJSON is host-meta in its JSON form (RFC 6415 appendix A).
type hostMetaJSON struct {
	Links []xrdLink `json:"links"`
}

// HostMeta returns a handler for XEP-0156 discovery that advertises boshURL
// as the BOSH connection method. Mount it at HostMetaPath and at
// HostMetaJSONPath: it serves the XRD (XML) form at the first, the JSON
// form at the second, and 404 elsewhere.
//
// boshURL is normally absolute (https://chat.example.org/http-bind). A
// path alone (/http-bind) is advertised on the scheme and host each request
// came to, for a server that does not know its public name.
//
// Every answer carries Access-Control-Allow-Origin: * as XEP-0156
// recommends, since web clients fetch host-meta from the XMPP domain, which
// is rarely the origin of their page.
func HostMeta(boshURL string) http.Handler {
	h := &hostMeta{url: boshURL}
	if !strings.HasPrefix(boshURL, "/") {
		h.xml, h.json = hostMetaDocuments(boshURL)
	}
	return h
}

type hostMeta struct {
	url       string // as given to HostMeta; immutable
	xml, json []byte // the documents for an absolute url, else nil; immutable
}

// hostMetaDocuments returns the XML and JSON forms of host-meta advertising
// url.
func hostMetaDocuments(url string) (xmlDoc, jsonDoc []byte) {
	links := []xrdLink{{Rel: relBOSH, Href: url}}
	var b bytes.Buffer
	b.WriteString(xml.Header)
	enc := xml.NewEncoder(&b)
	enc.Indent("", "  ")
	if err := enc.Encode(xrd{Links: links}); err != nil {
		panic("bosh: encoding host-meta: " + err.Error()) // strings only: cannot fail
	}
	b.WriteString("\n")
	j, err := json.MarshalIndent(hostMetaJSON{Links: links}, "", "  ")
	if err != nil {
		panic("bosh: encoding host-meta.json: " + err.Error())
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
		url, ok := requestURL(r, h.url)
		if !ok {
			http.Error(w, "bad Host header", http.StatusBadRequest)
			return
		}
		xmlDoc, jsonDoc = hostMetaDocuments(url)
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

// requestURL returns path on the scheme and host r came to, and whether
// r's Host is a plausible host[:port].
func requestURL(r *http.Request, path string) (string, bool) {
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
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + host + path, true
}
