package main

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/boshd/boshd/config"
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
	mux := newMux(cfg, bosh, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5280})

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
	mux = newMux(config.Default(), bosh, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5280})
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
