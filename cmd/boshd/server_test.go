package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boshd/boshd/bosh"
	"github.com/boshd/boshd/config"
	"github.com/boshd/boshd/internal/xmpptest"
)

// startServer serves a bosh.Handler in front of a fake upstream as serve
// does: through the http.Server newHTTPServer builds, on a bosh.Listener
// on a loopback port. It returns the server's address and the upstream.
func startServer(t *testing.T) (addr string, up *xmpptest.Server) {
	t.Helper()
	return startServerWith(t, nil)
}

// startServerWith is startServer with the configuration changed by mutate,
// if not nil.
func startServerWith(t *testing.T, mutate func(*config.Config)) (addr string, up *xmpptest.Server) {
	t.Helper()
	up = xmpptest.NewRelay(t, xmpptest.NoFeatures)
	cfg := config.Default()
	cfg.Upstreams = map[string]string{"example.org": up.Addr()}
	cfg.UpstreamTLS = "plaintext"
	cfg.MaxWait = 10 * time.Second
	if mutate != nil {
		mutate(&cfg)
	}
	logger := slog.New(slog.DiscardHandler)
	h, err := bosh.NewHandler(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newHTTPServer(cfg, newMux(cfg, h, nil, ln.Addr()), logger)
	bln, err := newListener(ln, srv, h)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(bln)
	t.Cleanup(func() {
		h.Shutdown(context.Background())
		srv.Close()
	})
	return ln.Addr().String(), up
}

// dripUntilClosed opens a connection to addr, writes head, then one byte
// of drip every interval, and returns how long the server took to close
// the connection (or max, if it never did).
func dripUntilClosed(addr, head, drip string, interval, max time.Duration) (time.Duration, string, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, "", err
	}
	defer c.Close()
	start := time.Now()
	if _, err := io.WriteString(c, head); err != nil {
		return 0, "", err
	}
	closed := make(chan string, 1)
	go func() {
		data, _ := io.ReadAll(c)
		closed <- string(data)
	}()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	timeout := time.After(max)
	for i := 0; ; i++ {
		select {
		case answer := <-closed:
			return time.Since(start), answer, nil
		case <-timeout:
			return max, "", fmt.Errorf("connection still open after %v", max)
		case <-tick.C:
			c.Write([]byte{drip[i%len(drip)]})
		}
	}
}

func TestSlowloris(t *testing.T) {
	// The http.Server of boshd bounds slow clients: headers must come
	// within ReadHeaderTimeout (10 s) and the whole request within
	// ReadTimeout (30 s), and headers are at most MaxHeaderBytes (16 KiB).
	// A well-behaved session relays both ways all the while.
	if testing.Short() {
		t.Skip("takes 30 s")
	}
	t.Parallel()
	addr, up := startServer(t)
	good := newRelayer(t, "http://"+addr+"/http-bind", up)

	t.Run("header too large", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		go io.WriteString(c, "POST /http-bind HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 1<<20)+"\r\n\r\n")
		status := make([]byte, len("HTTP/1.1 431"))
		_, err = io.ReadFull(c, status)
		if err != nil || !strings.Contains(string(status), "431") {
			t.Errorf("1 MiB header: %q %v, want 431", status, err)
		}
	})

	stop := make(chan struct{})
	relayed := make(chan error, 1)
	go func() {
		for n := 0; ; n++ {
			if err := good.relay(n); err != nil {
				relayed <- err
				return
			}
			select {
			case <-stop:
				relayed <- nil
				return
			case <-time.After(50 * time.Millisecond): // a pace, not an order
			}
		}
	}()
	var wg sync.WaitGroup
	check := func(name, head, wantAnswer string, min, max time.Duration) {
		defer wg.Done()
		took, answer, err := dripUntilClosed(addr, head, "X-Drip: 1\r\n", 500*time.Millisecond, max+5*time.Second)
		if err != nil {
			t.Errorf("%s: %v after %v", name, err, took)
			return
		}
		t.Logf("%s: connection closed after %v (answer %q)", name, took.Round(100*time.Millisecond), answer)
		if took < min || took > max {
			t.Errorf("%s: connection closed after %v, want %v to %v", name, took, min, max)
		}
		if !strings.HasPrefix(answer, wantAnswer) {
			t.Errorf("%s: answered %q, want %q first", name, answer, wantAnswer)
		}
	}
	wg.Add(2)
	go check("slow headers", "POST /http-bind HTTP/1.1\r\nHost: x\r\n", "", 9*time.Second, 13*time.Second)
	// The body cut off by ReadTimeout gets a 400, not net/http's empty 200.
	go check("slow body", "POST /http-bind HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: 100000\r\n\r\n<body", "HTTP/1.1 400", 29*time.Second, 33*time.Second)
	wg.Wait()
	close(stop)
	if err := <-relayed; err != nil {
		t.Fatalf("well-behaved session harmed during the attack: %v", err)
	}
	if err := good.relay(-1); err != nil {
		t.Fatalf("well-behaved session harmed after the attack: %v", err)
	}
}
