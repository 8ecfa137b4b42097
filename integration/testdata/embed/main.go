// Command embed serves BOSH from a program of its own: boshd's handler,
// mounted in a plain http.Server, relays each session to an XMPP server.
package main

import (
	"context"
	"flag"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/boshd/boshd/bosh"
	"github.com/boshd/boshd/config"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:5280", "serve HTTP on `HOST:PORT`")
	domain := flag.String("domain", "example.org", "serve the XMPP `DOMAIN`")
	server := flag.String("server", "127.0.0.1:5222", "the XMPP server's `HOST:PORT`")
	flag.Parse()

	cfg := config.Default()
	cfg.Upstreams = map[string]string{*domain: *server}
	h, err := bosh.NewHandler(cfg, slog.Default())
	if err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.Handle(cfg.Path, h)
	inner, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	// Optional: lets held requests park without a goroutine (docs/design/002).
	ln := bosh.NewListener(inner)
	srv := &http.Server{
		Handler:           mux,
		ConnContext:       ln.ConnContext,
		ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout:      cfg.MaxWait + 30*time.Second, // requests are held up to MaxWait
	}

	// On SIGINT or SIGTERM, end the sessions (answering held requests
	// with system-shutdown), then stop the server.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		h.Shutdown(ctx)
		srv.Shutdown(ctx)
	}()

	log.Printf("serving BOSH at http://%s%s", ln.Addr(), cfg.Path)
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
