package bosh_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/boshd/boshd/bosh"
	"github.com/boshd/boshd/config"
)

// A Handler mounted in a program's own server. A session for a domain the
// configuration does not serve is refused with host-unknown, without
// dialling anything.
func ExampleNewHandler() {
	cfg := config.Default()
	cfg.Upstreams = map[string]string{"example.org": "127.0.0.1:5222"}
	h, err := bosh.NewHandler(cfg, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	mux := http.NewServeMux()
	mux.Handle("/http-bind", h)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	resp, err := http.Post(srv.URL+"/http-bind", "text/xml",
		strings.NewReader("<body xmlns='http://jabber.org/protocol/httpbind' rid='1' to='elsewhere.example' wait='60' hold='1' ver='1.6'/>"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, resp.Header.Get("Content-Type"))
	fmt.Println(string(body))
	// Output:
	// 200 text/xml; charset=utf-8
	// <body xmlns='http://jabber.org/protocol/httpbind' type='terminate' condition='host-unknown'/>
}

// A server set up as boshd's own: through a Listener, so that requests
// held longer than park_after wait without a goroutine.
func ExampleNewListener() {
	cfg := config.Default()
	cfg.Upstreams = map[string]string{"example.org": "127.0.0.1:5222"}
	cfg.ParkHeld, cfg.ParkAfter = true, 10*time.Second
	h, err := bosh.NewHandler(cfg, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	ln := bosh.NewListener(inner)
	srv := &http.Server{Handler: h, ConnContext: ln.ConnContext}
	go srv.Serve(ln)
	defer srv.Close()
	defer h.Shutdown(context.Background())

	resp, err := http.Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode)
	// Output: 200
}
