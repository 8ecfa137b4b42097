// Command barehttp is a BENCHMARK FIXTURE: the cheapest HTTP handler that
// boshload's --poll mode accepts, to compare boshd's empty-poll round trips
// against plain net/http under the same generator. It reads each request
// body and answers an empty BOSH <body/> with a fixed sid: no session, no
// rid check, no XML parsing.
//
//	barehttp [-listen 127.0.0.1:5290]
package main

import (
	"flag"
	"io"
	"log"
	"net"
	"net/http"
	"time"
)

const answer = "<body xmlns='http://jabber.org/protocol/httpbind' sid='bare' wait='60' hold='0' requests='1'/>"

func main() {
	listen := flag.String("listen", "127.0.0.1:5290", "loopback `address` to listen on")
	flag.Parse()
	host, _, err := net.SplitHostPort(*listen)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		log.Fatalf("barehttp: -listen must be a loopback IP address and port, got %q", *listen)
	}
	srv := &http.Server{
		Addr:              *listen,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
			w.Header().Set("Content-Type", "text/xml; charset=utf-8")
			io.WriteString(w, answer)
		}),
	}
	log.Printf("barehttp (benchmark fixture) on %s", *listen)
	log.Fatal(srv.ListenAndServe())
}
