package main

import (
	"errors"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"

	"github.com/boshd/boshd/config"
	"github.com/boshd/boshd/gateway"
)

// newMux returns what boshd serves over HTTP: BOSH at cfg.Path, XMPP
// over WebSocket at cfg.WebSocketPath when that is set and ws is not nil,
// XEP-0156 host-meta at /.well-known/host-meta and host-meta.json
// advertising both, and, when static_dir is set, the files of that
// directory at "/". addr is the address the server listens on, from which
// the advertised URLs are derived when public_url and
// public_websocket_url are not set.
func newMux(cfg config.Config, bosh http.Handler, ws http.Handler, addr net.Addr) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle(cfg.Path, bosh)
	links := []gateway.Link{{Rel: gateway.RelBOSH, Href: advertisedURL(cfg, addr)}}
	if cfg.WebSocketPath != "" && ws != nil {
		mux.Handle(exactPath(cfg.WebSocketPath), ws)
		links = append(links, gateway.Link{Rel: gateway.RelWebSocket, Href: advertisedWebSocketURL(cfg, addr)})
	}
	hostMeta := gateway.HostMeta(links...)
	mux.Handle(gateway.HostMetaPath, hostMeta)
	mux.Handle(gateway.HostMetaJSONPath, hostMeta)
	if cfg.StaticDir != "" {
		mux.Handle("/", staticFiles(cfg.StaticDir))
	}
	return mux
}

// exactPath returns the http.ServeMux pattern that matches the URL path p
// alone: a pattern ending in "/" would also match every path below it.
func exactPath(p string) string {
	if strings.HasSuffix(p, "/") {
		return p + "{$}"
	}
	return p
}

// advertisedURL is the BOSH URL host-meta advertises: public_url if set,
// else http://HOST:PORT/PATH from the listening address (https:// when
// boshd serves TLS), or only the path (advertised on whatever host a
// request names) when boshd listens on all addresses.
func advertisedURL(cfg config.Config, addr net.Addr) string {
	if cfg.PublicURL != "" {
		return cfg.PublicURL
	}
	return listenerURL("http", cfg, addr, cfg.Path)
}

// advertisedWebSocketURL is the XMPP over WebSocket URL host-meta
// advertises: public_websocket_url if set; else public_url's host with
// websocket_path, https becoming wss and http ws; else
// ws://HOST:PORT/PATH from the listening address (wss:// when boshd
// serves TLS), or only the path (advertised on whatever host a request
// names, ws or wss as it came) when boshd listens on all addresses.
func advertisedWebSocketURL(cfg config.Config, addr net.Addr) string {
	if cfg.PublicWebSocketURL != "" {
		return cfg.PublicWebSocketURL
	}
	if cfg.PublicURL != "" {
		// Validated: an absolute http or https URL with a host.
		if u, err := url.Parse(cfg.PublicURL); err == nil {
			scheme := "ws"
			if u.Scheme == "https" {
				scheme = "wss"
			}
			return (&url.URL{Scheme: scheme, Host: u.Host, Path: cfg.WebSocketPath}).String()
		}
	}
	return listenerURL("ws", cfg, addr, cfg.WebSocketPath)
}

// listenerURL returns scheme://HOST:PORT followed by the URL path p for
// the listening address addr, with scheme+"s" when boshd serves TLS, or p
// alone when addr is not a TCP address or is unspecified (all addresses).
func listenerURL(scheme string, cfg config.Config, addr net.Addr, p string) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || tcp.IP == nil || tcp.IP.IsUnspecified() {
		return p
	}
	if cfg.TLSCertFile != "" {
		scheme += "s"
	}
	return scheme + "://" + tcp.String() + p
}

// staticFiles serves the files under dir. Directories are served only
// through their index.html (no listings), and names starting with a dot
// (.git, .env) are not served at all.
func staticFiles(dir string) http.Handler {
	files := http.FileServerFS(indexOnlyFS{os.DirFS(dir)})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, part := range strings.Split(path.Clean("/"+r.URL.Path), "/") {
			if strings.HasPrefix(part, ".") {
				http.NotFound(w, r)
				return
			}
		}
		w.Header().Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, r)
	})
}

// indexOnlyFS hides the directories of its file system that have no
// index.html, so that http.FileServerFS lists none.
type indexOnlyFS struct{ fs.FS }

func (f indexOnlyFS) Open(name string) (fs.File, error) {
	file, err := f.FS.Open(name)
	if err != nil {
		return nil, err
	}
	info, err := file.Stat()
	if err != nil {
		file.Close()
		return nil, err
	}
	if info.IsDir() {
		if _, err := fs.Stat(f.FS, path.Join(name, "index.html")); err != nil {
			file.Close()
			return nil, errors.Join(fs.ErrNotExist, err)
		}
	}
	return file, nil
}
