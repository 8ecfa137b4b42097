package main

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/boshd/boshd/config"
	"github.com/boshd/boshd/internal/wait"
)

// TestConnsPerIP checks that the server serve builds refuses connections
// from one address over max_conns_per_ip at once, serves other addresses
// meanwhile, and serves the first again once its connections close.
func TestConnsPerIP(t *testing.T) {
	t.Parallel()
	const limit = 2
	addr, _ := startServerWith(t, func(cfg *config.Config) {
		cfg.MaxConnsPerIP = limit
		cfg.TrustedProxies = nil // loopback, where the clients are, is not a proxy here
	})
	flooder := net.ParseIP("127.0.0.2")
	if ln, err := net.Listen("tcp4", "127.0.0.2:0"); err != nil {
		t.Skipf("no second loopback address: %v", err)
	} else {
		ln.Close()
	}

	var held []net.Conn
	for range limit {
		c := dialFrom(t, flooder, addr)
		if err := getHostMeta(c); err != nil {
			t.Fatalf("a connection within the limit: %v", err)
		}
		held = append(held, c)
	}
	over := dialFrom(t, flooder, addr)
	over.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := over.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		t.Errorf("connection %d from %s: read %d bytes, %v; want it closed at once", limit+1, flooder, n, err)
	}
	over.Close()

	if err := getHostMeta(dialFrom(t, net.ParseIP("127.0.0.1"), addr)); err != nil {
		t.Errorf("another address during the flood: %v", err)
	}

	for _, c := range held {
		c.Close()
	}
	if !wait.For(wait.Deadline, func() bool { return getHostMeta(dialFrom(t, flooder, addr)) == nil }) {
		t.Errorf("%s not served again after its connections closed", flooder)
	}
}

// dialFrom opens a TCP connection to addr from the address local; the
// test closes it when it ends.
func dialFrom(t *testing.T, local net.IP, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: local}, Timeout: 10 * time.Second}
	c, err := d.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// getHostMeta sends a GET of host-meta on c and reads the response's status line:
// an error means c was not served.
func getHostMeta(c net.Conn) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET /.well-known/host-meta HTTP/1.1\r\nHost: example.org\r\n\r\n"); err != nil {
		return err
	}
	line := make([]byte, len("HTTP/1.1 200"))
	if _, err := io.ReadFull(c, line); err != nil {
		return err
	}
	if string(line) != "HTTP/1.1 200" {
		return errors.New("answered " + string(line))
	}
	return nil
}

// isReset reports whether err is a connection reset, which is how a
// connection closed with unread data in it may end.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET)
}
