package xmpp

import (
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/boshd/boshd/internal/wait"
	"github.com/boshd/boshd/internal/xmpptest"
)

// TestDrop checks that Drop closes the socket at once without ending the
// stream, over TCP and TLS, with Next reading or waiting for a restart:
// the server reads the end of the connection with no </stream:stream>
// (and over TLS no close_notify), Next returns an error wrapping
// net.ErrClosed, and every later call fails or does nothing.
func TestDrop(t *testing.T) {
	t.Parallel()
	pki := certs(t)
	for _, tc := range []struct {
		name    string
		tls     bool
		restart bool // Next waits for Restart when Drop comes
	}{
		{"tcp, reading", false, false},
		{"tcp, waiting for restart", false, true},
		{"tls, reading", true, false},
		{"tls, waiting for restart", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			type end struct {
				rest string
				err  error
				raw  int64 // TCP bytes read with rest: a TLS alert, if any
			}
			ended := make(chan end, 1)
			features := featuresPlainAuth
			if tc.tls {
				features = featuresTLS
			}
			addr := serve(t, xmpptest.Opened("s1", features, func(p *xmpptest.Peer) error {
				counted := &countingConn{Conn: p.Conn()}
				if tc.tls {
					if err := p.AcceptTLSOver(counted, pki.server); err != nil {
						return err
					}
					if err := p.Open("s2", featuresPlainAuth); err != nil {
						return err
					}
				}
				if tc.restart {
					if err := p.Send(xmpptest.Success); err != nil {
						return err
					}
				}
				n0 := counted.n.Load()
				b, err := io.ReadAll(p.Reader())
				ended <- end{string(b), err, counted.n.Load() - n0}
				return nil
			}))
			c := mustDial(t, &Dialer{RootCAs: pki.roots}, addr)
			if tc.restart {
				if b, err := c.Next(); err != nil || string(b) != xmpptest.Success {
					t.Fatalf("Next() = %s, %v; want %s", b, err, xmpptest.Success)
				}
			}
			next := goNext(c)
			// Let Next block, most often. This stays a sleep: there is
			// no state to wait on that says Next is blocked. Its
			// reading state (c.rd, c.src) belongs to its goroutine and
			// would race; the one sign of a wait for Restart,
			// testHookRestartWait, is a package variable that these
			// parallel subtests cannot share, and adding another hook
			// to production code for this is not worth it. Drop must
			// work whether or not Next has blocked yet, so a Next
			// scheduled late only tests the other order.
			time.Sleep(20 * time.Millisecond)
			start := time.Now()
			c.Drop()
			e := wait.Receive(t, ended, "the server to see the connection end")
			if strings.Contains(e.rest, closeTag) {
				t.Errorf("server read %q after Drop", e.rest)
			}
			if e.err != nil || e.raw != 0 {
				t.Errorf("server read %d bytes (a close_notify?), then %v; want nothing, then EOF", e.raw, e.err)
			}
			if r := await(t, next); !errors.Is(r.err, net.ErrClosed) {
				t.Errorf("Next after Drop = %s, %v; want net.ErrClosed", r.b, r.err)
			}
			if d := time.Since(start); d > closeGrace/2 {
				t.Errorf("Drop took %v", d)
			}
			if err := c.Write([]byte(`<presence/>`)); !errors.Is(err, net.ErrClosed) {
				t.Errorf("Write after Drop: %v, want net.ErrClosed", err)
			}
			if err := c.Restart(); !errors.Is(err, net.ErrClosed) {
				t.Errorf("Restart after Drop: %v, want net.ErrClosed", err)
			}
			if err := c.Close(); err != nil {
				t.Errorf("Close after Drop: %v", err)
			}
			c.Drop()
			if _, err := c.Next(); !errors.Is(err, net.ErrClosed) {
				t.Errorf("Next again: %v, want net.ErrClosed", err)
			}
		})
	}
}

// countingConn counts the bytes read through it.
type countingConn struct {
	net.Conn
	n atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// TestDropAfterClose checks that Drop cuts Close's grace short: the socket
// closes at once, after the one closing tag Close wrote.
func TestDropAfterClose(t *testing.T) {
	t.Parallel()
	addr, rest := serveRest(t)
	c := mustDial(t, new(Dialer), addr)
	next := goNext(c)
	if err := c.Close(); err != nil { // the server never answers: 2 s grace
		t.Fatal(err)
	}
	start := time.Now()
	c.Drop()
	if s := wait.Receive(t, rest, "the socket to close"); s != closeTag {
		t.Errorf("server read %q, want %s", s, closeTag)
	}
	if d := time.Since(start); d > closeGrace/2 {
		t.Errorf("socket closed %v after Drop", d)
	}
	if r := await(t, next); r.err == nil {
		t.Errorf("Next after Drop = %s", r.b)
	}
}

// TestDropUnblocksWrite checks that Drop does not wait for a Write blocked
// on a server that does not read: the Write fails at once.
func TestDropUnblocksWrite(t *testing.T) {
	t.Parallel()
	addr := serve(t, xmpptest.Opened("s1", featuresPlainAuth, func(p *xmpptest.Peer) error {
		p.WaitQuit() // never read again
		return nil
	}))
	c := mustDial(t, &Dialer{WriteTimeout: time.Minute}, addr)
	chunk := []byte(`<message><body>` + strings.Repeat("x", 64<<10) + `</body></message>`)
	written := make(chan error, 1)
	var writes atomic.Int64 // Writes returned
	go func() {
		var err error
		for i := 0; i < 4096 && err == nil; i++ { // at most 256 MiB
			err = c.Write(chunk)
			writes.Add(1)
		}
		written <- err
	}()
	// Wait for the writer to block: a Write holds wmu, and no Write has
	// returned since the last look, when it held wmu already. The socket
	// buffers fill soon, the server never reading.
	last := int64(-1)
	wait.Until(t, func() bool {
		if c.wmu.TryLock() {
			c.wmu.Unlock()
			last = -1
			return false
		}
		n := writes.Load()
		blocked := n == last
		last = n
		return blocked
	}, "a Write to block holding wmu")
	dropped := make(chan struct{})
	go func() {
		c.Drop()
		close(dropped)
	}()
	wait.Receive(t, dropped, "Drop to return")
	if err := wait.Receive(t, written, "the blocked Write to fail"); err == nil {
		t.Error("Write succeeded after Drop")
	}
}

// TestDropConcurrent drops, closes and writes from several goroutines at
// once while Next is blocked, for the race detector; nothing panics or
// blocks.
func TestDropConcurrent(t *testing.T) {
	t.Parallel()
	srv := xmpptest.NewRelay(t, featuresPlainAuth)
	c := mustDial(t, new(Dialer), srv.Addr())
	next := goNext(c)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 50 {
				if c.Write([]byte(`<presence/>`)) != nil {
					return
				}
			}
		})
	}
	wg.Go(func() { c.Drop() })
	wg.Go(func() { c.Close() })
	wg.Go(func() { c.Drop() })
	wg.Wait()
	if r := await(t, next); r.err == nil {
		t.Errorf("Next after Drop = %s", r.b)
	}
	if err := c.Write([]byte(`<presence/>`)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after Drop: %v, want net.ErrClosed", err)
	}
}

// TestCloseInDropGap checks Close called while Drop is halfway, after it
// has closed the socket and before it has marked the Conn closed under
// wmu: Close writes nothing to the dead socket and returns nil, as after
// Drop, and later writes fail with net.ErrClosed.
func TestCloseInDropGap(t *testing.T) {
	t.Parallel()
	addr, rest := serveRest(t)
	c := mustDial(t, new(Dialer), addr)
	// Drop's first half, as Drop does it.
	c.mu.Lock()
	c.dropped.Store(true)
	c.mu.Unlock()
	c.shutSocket(true)
	if err := c.Close(); err != nil {
		t.Errorf("Close in Drop's gap: %v, want nil", err)
	}
	if err := c.Write([]byte(`<presence/>`)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write in Drop's gap: %v, want net.ErrClosed", err)
	}
	c.Drop()
	if got := wait.Receive(t, rest, "the server to see the end of the connection"); strings.Contains(got, "</stream:stream>") {
		t.Errorf("server read %q after Drop, want no closing tag", got)
	}
}

// TestCloseRacingDrop runs Close and Drop at once on fresh Conns, for the
// race detector: Close never returns an error, and Next ends.
func TestCloseRacingDrop(t *testing.T) {
	t.Parallel()
	srv := xmpptest.NewRelay(t, featuresPlainAuth)
	for i := range 50 {
		c := mustDial(t, new(Dialer), srv.Addr())
		next := goNext(c)
		start := make(chan struct{})
		closed := make(chan error, 1)
		var wg sync.WaitGroup
		wg.Go(func() {
			<-start
			c.Drop()
		})
		wg.Go(func() {
			<-start
			closed <- c.Close()
		})
		close(start)
		wg.Wait()
		if err := <-closed; err != nil {
			t.Fatalf("round %d: Close racing Drop: %v, want nil", i, err)
		}
		if r := await(t, next); r.err == nil {
			t.Fatalf("round %d: Next after Drop and Close = %s", i, r.b)
		}
	}
}
