package gateway

import (
	"crypto/tls"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// boshOnly is HostMeta advertising boshURL alone.
func boshOnly(boshURL string) http.Handler { return HostMeta(Link{Rel: RelBOSH, Href: boshURL}) }

// serveHostMeta sends one request to boshOnly(boshURL) and returns the
// recorded response.
func serveHostMeta(boshURL, method, target string, header map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		if k == "Host" {
			r.Host = v
			continue
		}
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	boshOnly(boshURL).ServeHTTP(w, r)
	return w
}

// parseXRD returns the href of every BOSH link in an XRD document, failing
// t unless the root is {nsXRD}XRD.
func parseXRD(t *testing.T, doc string) []string {
	t.Helper()
	var x struct {
		XMLName xml.Name
		Links   []struct {
			XMLName xml.Name
			Rel     string `xml:"rel,attr"`
			Href    string `xml:"href,attr"`
		} `xml:"Link"`
	}
	if err := xml.Unmarshal([]byte(doc), &x); err != nil {
		t.Fatalf("host-meta is not XML: %v\n%s", err, doc)
	}
	if x.XMLName.Space != nsXRD || x.XMLName.Local != "XRD" {
		t.Fatalf("root is {%s}%s, want {%s}XRD", x.XMLName.Space, x.XMLName.Local, nsXRD)
	}
	var hrefs []string
	for _, l := range x.Links {
		if l.XMLName.Space != nsXRD {
			t.Errorf("Link in namespace %q", l.XMLName.Space)
		}
		if l.Rel == "urn:xmpp:alt-connections:xbosh" {
			hrefs = append(hrefs, l.Href)
		}
	}
	return hrefs
}

// getHostMeta GETs target from the host-meta handler for the BOSH URL
// url, and checks that it is served as contentType to any origin
// (XEP-0156 §3).
func getHostMeta(t *testing.T, url, target, contentType string) *httptest.ResponseRecorder {
	t.Helper()
	w := serveHostMeta(url, "GET", target, nil)
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if got := w.Header().Get("Content-Type"); got != contentType {
		t.Errorf("Content-Type %q, want %q", got, contentType)
	}
	if got := w.Header().Get("Access-Control-Allow-Origin"); got != "*" {
		t.Errorf("Access-Control-Allow-Origin %q, want *", got)
	}
	return w
}

func TestHostMetaXML(t *testing.T) {
	t.Parallel()
	const url = "https://chat.example.org/http-bind?a=1&b=<2>"
	w := getHostMeta(t, url, "http://chat.example.org/.well-known/host-meta", "application/xrd+xml; charset=utf-8")
	body := w.Body.String()
	if !strings.HasPrefix(body, "<?xml") {
		t.Errorf("no XML declaration: %s", body)
	}
	if hrefs := parseXRD(t, body); len(hrefs) != 1 || hrefs[0] != url {
		t.Errorf("BOSH links %q, want [%q]:\n%s", hrefs, url, body)
	}
}

func TestHostMetaJSON(t *testing.T) {
	t.Parallel()
	const url = "https://chat.example.org/http-bind"
	w := getHostMeta(t, url, "http://chat.example.org/.well-known/host-meta.json", "application/json")
	var doc struct {
		Links []struct{ Rel, Href string } `json:"links"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
		t.Fatalf("host-meta.json: %v\n%s", err, w.Body)
	}
	if len(doc.Links) != 1 || doc.Links[0].Rel != "urn:xmpp:alt-connections:xbosh" || doc.Links[0].Href != url {
		t.Errorf("links %+v, want one xbosh link to %s", doc.Links, url)
	}
}

func TestHostMetaRelative(t *testing.T) {
	t.Parallel()
	// A path alone is advertised on the host and scheme of the request.
	w := serveHostMeta("/http-bind", "GET", "http://x/.well-known/host-meta", map[string]string{"Host": "127.0.0.1:5280"})
	if hrefs := parseXRD(t, w.Body.String()); len(hrefs) != 1 || hrefs[0] != "http://127.0.0.1:5280/http-bind" {
		t.Errorf("links %q", hrefs)
	}
	if got := w.Header().Get("Vary"); got != "Host" {
		t.Errorf("Vary %q, want Host", got)
	}

	r := httptest.NewRequest("GET", "https://chat.example.org/.well-known/host-meta.json", nil)
	r.TLS = &tls.ConnectionState{}
	rec := httptest.NewRecorder()
	boshOnly("/bosh").ServeHTTP(rec, r)
	if !strings.Contains(rec.Body.String(), `"href": "https://chat.example.org/bosh"`) {
		t.Errorf("over TLS: %s", rec.Body)
	}

	for _, host := range []string{"", "a b", "evil\"/><x", "example.org:http", "example.org:"} {
		w := serveHostMeta("/http-bind", "GET", "http://x/.well-known/host-meta", map[string]string{"Host": host})
		if w.Code != http.StatusBadRequest {
			t.Errorf("Host %q: status %d, want 400: %s", host, w.Code, w.Body)
		}
	}
	for _, host := range []string{"[::1]:5280", "chat.example.org", "[2001:db8::1]"} {
		w := serveHostMeta("/http-bind", "GET", "http://x/.well-known/host-meta", map[string]string{"Host": host})
		if w.Code != 200 {
			t.Errorf("Host %q: status %d: %s", host, w.Code, w.Body)
		}
	}
}

func TestHostMetaMethods(t *testing.T) {
	t.Parallel()
	const url = "https://chat.example.org/http-bind"
	w := serveHostMeta(url, "OPTIONS", "http://chat.example.org/.well-known/host-meta", map[string]string{
		"Origin":                         "https://app.example.com",
		"Access-Control-Request-Method":  "GET",
		"Access-Control-Request-Headers": "accept",
	})
	if w.Code != http.StatusNoContent || w.Header().Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(w.Header().Get("Access-Control-Allow-Methods"), "GET") ||
		w.Header().Get("Access-Control-Allow-Headers") != "accept" {
		t.Errorf("preflight: %d %v", w.Code, w.Header())
	}

	w = serveHostMeta(url, "HEAD", "http://chat.example.org/.well-known/host-meta", nil)
	if w.Code != 200 || w.Header().Get("Content-Type") == "" {
		t.Errorf("HEAD: %d %v", w.Code, w.Header())
	}

	w = serveHostMeta(url, "POST", "http://chat.example.org/.well-known/host-meta", nil)
	if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("POST: %d %v", w.Code, w.Header())
	}

	w = serveHostMeta(url, "GET", "http://chat.example.org/.well-known/webfinger", nil)
	if w.Code != http.StatusNotFound {
		t.Errorf("other path: %d", w.Code)
	}
}

func TestHostMetaOnMux(t *testing.T) {
	t.Parallel()
	// Mounted as the boshd command does, at both paths.
	mux := http.NewServeMux()
	hm := boshOnly("https://chat.example.org/http-bind")
	mux.Handle(HostMetaPath, hm)
	mux.Handle(HostMetaJSONPath, hm)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, path := range []string{HostMetaPath, HostMetaJSONPath} {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || !strings.Contains(string(body), "https://chat.example.org/http-bind") {
			t.Errorf("%s: %d %s", path, resp.StatusCode, body)
		}
	}
}

func TestHostMetaWebSocket(t *testing.T) {
	t.Parallel()
	// Both methods, in the order given; the WebSocket link relative to
	// the request takes ws or wss.
	links := []Link{{Rel: RelBOSH, Href: "https://chat.example.org/http-bind"}, {Rel: RelWebSocket, Href: "wss://chat.example.org/xmpp-websocket"}}
	for _, tc := range []struct {
		name  string
		links []Link
		tls   bool
		want  []Link
	}{
		{"absolute", links, false, links},
		{"relative", []Link{{RelBOSH, "/http-bind"}, {RelWebSocket, "/ws"}}, false,
			[]Link{{RelBOSH, "http://chat.example.org/http-bind"}, {RelWebSocket, "ws://chat.example.org/ws"}}},
		{"relative over TLS", []Link{{RelBOSH, "/http-bind"}, {RelWebSocket, "/ws"}}, true,
			[]Link{{RelBOSH, "https://chat.example.org/http-bind"}, {RelWebSocket, "wss://chat.example.org/ws"}}},
		{"mixed", []Link{links[0], {RelWebSocket, "/ws"}}, true,
			[]Link{links[0], {RelWebSocket, "wss://chat.example.org/ws"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := HostMeta(tc.links...)
			get := func(path string) []byte {
				r := httptest.NewRequest("GET", "http://chat.example.org"+path, nil)
				if tc.tls {
					r.TLS = &tls.ConnectionState{}
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				return w.Body.Bytes()
			}
			var doc hostMetaJSON
			body := get(HostMetaJSONPath)
			if err := json.Unmarshal(body, &doc); err != nil {
				t.Fatalf("host-meta.json: %v\n%s", err, body)
			}
			if !slices.Equal(doc.Links, tc.want) {
				t.Errorf("JSON links %+v, want %+v", doc.Links, tc.want)
			}
			var x xrd
			body = get(HostMetaPath)
			if err := xml.Unmarshal(body, &x); err != nil {
				t.Fatalf("host-meta: %v\n%s", err, body)
			}
			if !slices.Equal(x.Links, tc.want) {
				t.Errorf("XRD links %+v, want %+v", x.Links, tc.want)
			}
		})
	}
}
