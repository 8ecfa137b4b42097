package main

import (
	"crypto/tls"
	"encoding/json"
	"encoding/xml"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/boshd/boshd/config"
	"github.com/boshd/boshd/gateway"
)

// get serves a GET of target with h.
func get(h http.Handler, target string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", target, nil))
	return w
}

func TestMuxStaticDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, content := range map[string]string{
		"index.html":           "<h1>chat</h1>",
		"lib/app.js":           "console.log(1)",
		"withindex/index.html": "inner",
		".env":                 "SECRET=1",
		".git/config":          "[core]",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := config.Default()
	cfg.StaticDir = dir
	bosh := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "bosh") })
	mux := newMux(cfg, bosh, nil, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5280})

	for _, tc := range []struct {
		target   string
		wantCode int
		wantBody string
	}{
		{"/", 200, "<h1>chat</h1>"},
		{"/lib/app.js", 200, "console.log(1)"},
		{"/withindex/", 200, "inner"},
		{"/lib/", 404, ""},
		{"/.env", 404, ""},
		{"/.git/config", 404, ""},
		{"/http-bind", 200, "bosh"},
		{"/.well-known/host-meta", 200, "http://127.0.0.1:5280/http-bind"},
		{"/.well-known/host-meta.json", 200, "http://127.0.0.1:5280/http-bind"},
	} {
		w := get(mux, tc.target)
		code, body := w.Code, w.Body.String()
		if code != tc.wantCode || !strings.Contains(body, tc.wantBody) {
			t.Errorf("GET %s: %d %q, want %d with %q", tc.target, code, body, tc.wantCode, tc.wantBody)
		}
	}

	// Without static_dir, nothing but BOSH and host-meta.
	mux = newMux(config.Default(), bosh, nil, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5280})
	if code := get(mux, "/").Code; code != 404 {
		t.Errorf("GET / without static_dir: %d", code)
	}
}

func TestAdvertisedURL(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	for _, tc := range []struct {
		public string
		tls    bool
		addr   net.Addr
		want   string
	}{
		{"", false, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5280}, "http://127.0.0.1:5280/http-bind"},
		{"", false, &net.TCPAddr{IP: net.ParseIP("::1"), Port: 5280}, "http://[::1]:5280/http-bind"},
		{"", true, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5281}, "https://127.0.0.1:5281/http-bind"},
		{"", false, &net.TCPAddr{IP: net.IPv4zero, Port: 5280}, "/http-bind"},
		{"", false, &net.TCPAddr{Port: 5280}, "/http-bind"},
		{"https://chat.example.org/http-bind", false, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5280}, "https://chat.example.org/http-bind"},
	} {
		cfg.PublicURL = tc.public
		cfg.TLSCertFile = ""
		if tc.tls {
			cfg.TLSCertFile = "cert.pem"
		}
		if got := advertisedURL(cfg, tc.addr); got != tc.want {
			t.Errorf("advertisedURL(public_url %q, %v) = %q, want %q", tc.public, tc.addr, got, tc.want)
		}
	}
}

// discover fetches both forms of host-meta from h for host (over TLS if
// tls is set) and returns the href of each link by relation, failing t
// unless both forms advertise the same links.
func discover(t *testing.T, h http.Handler, host string, overTLS bool) map[string]string {
	t.Helper()
	var forms [2]map[string]string
	for i, target := range []string{gateway.HostMetaPath, gateway.HostMetaJSONPath} {
		r := httptest.NewRequest("GET", target, nil)
		r.Host = host
		if overTLS {
			r.TLS = &tls.ConnectionState{}
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 200 {
			t.Fatalf("GET %s: %d %s", target, w.Code, w.Body)
		}
		var doc struct {
			Links []gateway.Link `xml:"Link" json:"links"`
		}
		var err error
		if target == gateway.HostMetaPath {
			err = xml.Unmarshal(w.Body.Bytes(), &doc)
		} else {
			err = json.Unmarshal(w.Body.Bytes(), &doc)
		}
		if err != nil {
			t.Fatalf("GET %s: %v\n%s", target, err, w.Body)
		}
		forms[i] = make(map[string]string)
		for _, l := range doc.Links {
			if _, dup := forms[i][l.Rel]; dup {
				t.Errorf("GET %s: two links %s:\n%s", target, l.Rel, w.Body)
			}
			forms[i][l.Rel] = l.Href
		}
	}
	if !maps.Equal(forms[0], forms[1]) {
		t.Errorf("host-meta advertises %v, host-meta.json %v", forms[0], forms[1])
	}
	return forms[0]
}

func TestMuxWebSocket(t *testing.T) {
	t.Parallel()
	bosh := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "bosh") })
	ws := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ws") })
	loopback := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5280}
	withStatic := config.Default()
	withStatic.StaticDir = t.TempDir()
	if err := os.WriteFile(filepath.Join(withStatic.StaticDir, "xmpp-websocket"), []byte("file"), 0o644); err != nil {
		t.Fatal(err)
	}
	slash := config.Default()
	slash.WebSocketPath = "/ws/"
	off := config.Default()
	off.WebSocketPath = ""

	for _, tc := range []struct {
		name   string
		cfg    config.Config
		ws     http.Handler
		target string
		want   string // the body served, "" for 404
		links  map[string]string
	}{
		{"mounted", config.Default(), ws, "/xmpp-websocket", "ws", map[string]string{
			gateway.RelBOSH:      "http://127.0.0.1:5280/http-bind",
			gateway.RelWebSocket: "ws://127.0.0.1:5280/xmpp-websocket",
		}},
		{"exact path", config.Default(), ws, "/xmpp-websocket/x", "", nil},
		{"BOSH beside it", config.Default(), ws, "/http-bind", "bosh", nil},
		{"exact path ending in /", slash, ws, "/ws/", "ws", map[string]string{
			gateway.RelBOSH:      "http://127.0.0.1:5280/http-bind",
			gateway.RelWebSocket: "ws://127.0.0.1:5280/ws/",
		}},
		{"below a path ending in /", slash, ws, "/ws/x", "", nil},
		{"no handler yet", config.Default(), nil, "/xmpp-websocket", "", map[string]string{
			gateway.RelBOSH: "http://127.0.0.1:5280/http-bind",
		}},
		{"websocket_path off", off, ws, "/xmpp-websocket", "", map[string]string{
			gateway.RelBOSH: "http://127.0.0.1:5280/http-bind",
		}},
		{"before static_dir", withStatic, ws, "/xmpp-websocket", "ws", nil},
		{"static_dir without a handler", withStatic, nil, "/xmpp-websocket", "file", nil},
	} {
		mux := newMux(tc.cfg, bosh, tc.ws, loopback)
		w := get(mux, tc.target)
		if tc.want == "" && w.Code != 404 || tc.want != "" && (w.Code != 200 || w.Body.String() != tc.want) {
			t.Errorf("%s: GET %s: %d %q, want %q (\"\": 404)", tc.name, tc.target, w.Code, w.Body, tc.want)
		}
		if tc.links != nil {
			if got := discover(t, mux, "chat.example.org", false); !maps.Equal(got, tc.links) {
				t.Errorf("%s: host-meta advertises %v, want %v", tc.name, got, tc.links)
			}
		}
	}
}

// TestMuxWebSocketAnyAddress checks host-meta when boshd listens on all
// addresses: both URLs on the host the discovery request named, with its
// scheme.
func TestMuxWebSocketAnyAddress(t *testing.T) {
	t.Parallel()
	ws := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	mux := newMux(config.Default(), ws, ws, &net.TCPAddr{IP: net.IPv6unspecified, Port: 5280})
	for _, tc := range []struct {
		host string
		tls  bool
		want map[string]string
	}{
		{"chat.example.org:5280", false, map[string]string{
			gateway.RelBOSH:      "http://chat.example.org:5280/http-bind",
			gateway.RelWebSocket: "ws://chat.example.org:5280/xmpp-websocket",
		}},
		{"chat.example.org", true, map[string]string{
			gateway.RelBOSH:      "https://chat.example.org/http-bind",
			gateway.RelWebSocket: "wss://chat.example.org/xmpp-websocket",
		}},
	} {
		if got := discover(t, mux, tc.host, tc.tls); !maps.Equal(got, tc.want) {
			t.Errorf("Host %s, TLS %v: host-meta advertises %v, want %v", tc.host, tc.tls, got, tc.want)
		}
	}
}

func TestAdvertisedWebSocketURL(t *testing.T) {
	t.Parallel()
	loopback := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5280}
	for _, tc := range []struct {
		name     string
		public   string // public_url
		publicWS string // public_websocket_url
		path     string // websocket_path, the default if empty
		tls      bool
		addr     net.Addr
		want     string
	}{
		{"listener", "", "", "", false, loopback, "ws://127.0.0.1:5280/xmpp-websocket"},
		{"IPv6 listener", "", "", "", false, &net.TCPAddr{IP: net.ParseIP("::1"), Port: 5280}, "ws://[::1]:5280/xmpp-websocket"},
		{"TLS listener", "", "", "", true, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5281}, "wss://127.0.0.1:5281/xmpp-websocket"},
		{"other path", "", "", "/ws", false, loopback, "ws://127.0.0.1:5280/ws"},
		{"all addresses", "", "", "", false, &net.TCPAddr{IP: net.IPv4zero, Port: 5280}, "/xmpp-websocket"},
		{"all addresses, TLS", "", "", "", true, &net.TCPAddr{Port: 5280}, "/xmpp-websocket"},
		{"public_url https", "https://chat.example.org/http-bind", "", "", false, loopback, "wss://chat.example.org/xmpp-websocket"},
		{"public_url http with a port", "http://chat.example.org:8080/bosh/http-bind", "", "", true, loopback, "ws://chat.example.org:8080/xmpp-websocket"},
		{"public_url IPv6", "https://[2001:db8::1]:8443/http-bind", "", "/ws", false, loopback, "wss://[2001:db8::1]:8443/ws"},
		{"public_websocket_url", "https://chat.example.org/http-bind", "wss://ws.example.org/xmpp", "", false, loopback, "wss://ws.example.org/xmpp"},
		{"public_websocket_url alone", "", "ws://127.0.0.1:8080/websocket", "", true, &net.TCPAddr{Port: 5280}, "ws://127.0.0.1:8080/websocket"},
	} {
		cfg := config.Default()
		cfg.PublicURL = tc.public
		cfg.PublicWebSocketURL = tc.publicWS
		if tc.path != "" {
			cfg.WebSocketPath = tc.path
		}
		if tc.tls {
			cfg.TLSCertFile, cfg.TLSKeyFile = "cert.pem", "key.pem"
		}
		if got := advertisedWebSocketURL(cfg, tc.addr); got != tc.want {
			t.Errorf("%s: advertisedWebSocketURL = %q, want %q", tc.name, got, tc.want)
		}
	}
}
