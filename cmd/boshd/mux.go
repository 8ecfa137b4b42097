package main

import (
	"errors"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path"
	"strings"

	"github.com/boshd/boshd/config"
	"github.com/boshd/boshd/gateway"
)

// newMux returns what boshd serves over HTTP: BOSH at cfg.Path, XEP-0156
// host-meta at /.well-known/host-meta and host-meta.json, and, when
// static_dir is set, the files of that directory at "/". addr is the
// address the server listens on, from which the advertised BOSH URL is
// derived when public_url is not set.
func newMux(cfg config.Config, h http.Handler, addr net.Addr) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle(cfg.Path, h)
	hostMeta := gateway.HostMeta(gateway.Link{Rel: gateway.RelBOSH, Href: advertisedURL(cfg, addr)})
	mux.Handle(gateway.HostMetaPath, hostMeta)
	mux.Handle(gateway.HostMetaJSONPath, hostMeta)
	if cfg.StaticDir != "" {
		mux.Handle("/", staticFiles(cfg.StaticDir))
	}
	return mux
}

// advertisedURL is the BOSH URL host-meta advertises: public_url if set,
// else http://HOST:PORT/PATH from the listening address (https:// when
// boshd serves TLS), or only the path (advertised on whatever host a
// request names) when boshd listens on all addresses.
func advertisedURL(cfg config.Config, addr net.Addr) string {
	if cfg.PublicURL != "" {
		return cfg.PublicURL
	}
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || tcp.IP == nil || tcp.IP.IsUnspecified() {
		return cfg.Path
	}
	scheme := "http://"
	if cfg.TLSCertFile != "" {
		scheme = "https://"
	}
	return scheme + tcp.String() + cfg.Path
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
