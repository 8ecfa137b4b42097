package xmpp

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boshd/boshd/internal/netpoll"
	"github.com/boshd/boshd/internal/wait"
	"github.com/boshd/boshd/internal/xmpptest"
)

// TestBufferReleasedWhileIdle checks that on plain TCP the read buffer is
// given back whenever nothing is buffered, that bytes already buffered are
// never dropped, and that reading resumes whether data arrived before or
// after Next started waiting.
func TestBufferReleasedWhileIdle(t *testing.T) {
	t.Parallel()
	sent := make(chan struct{})
	goOn := make(chan struct{})
	addr := serve(t, xmpptest.Opened("s1", featuresPlainAuth, func(p *xmpptest.Peer) error {
		<-goOn
		// Two stanzas in one write: one read fetches both.
		if err := p.Send(`<presence id='1'/><presence id='2'/>`); err != nil {
			return err
		}
		<-goOn
		// Sent before the client's Next starts waiting.
		if err := p.Send(`<presence id='3'/>`); err != nil {
			return err
		}
		close(sent)
		<-goOn
		// Sent while the client's Next waits.
		if err := p.Send(`<presence id='4'/>`); err != nil {
			return err
		}
		p.WaitQuit()
		return nil
	}))
	c := mustDial(t, new(Dialer), addr)
	if c.src.raw == nil {
		t.Fatal("plain TCP Conn cannot park")
	}
	if c.src.br != nil || c.rd != nil {
		t.Errorf("buffer held %v, Reader held %v after Dial with nothing buffered", c.src.br != nil, c.rd != nil)
	}
	want := func(id string, held bool) {
		t.Helper()
		b, err := c.Next()
		if w := `<presence xmlns='jabber:client' id='` + id + `'/>`; err != nil || string(b) != w {
			t.Fatalf("Next() = %s, %v; want %s", b, err, w)
		}
		if (c.src.br != nil) != held || (c.rd != nil) != held {
			t.Errorf("after stanza %s: buffer held = %v, Reader held = %v, want %v", id, c.src.br != nil, c.rd != nil, held)
		}
	}
	goOn <- struct{}{}
	want("1", true) // the second stanza is buffered
	want("2", false)
	goOn <- struct{}{}
	<-sent
	want("3", false)
	next := goNext(c)
	goOn <- struct{}{}
	r := await(t, next)
	if w := `<presence xmlns='jabber:client' id='4'/>`; r.err != nil || string(r.b) != w {
		t.Fatalf("Next() = %s, %v; want %s", r.b, r.err, w)
	}
}

// TestParkOverTLS checks that a TLS Conn gives its buffer back and parks
// while idle, and that it never parks on bytes tls.Conn has read from the
// socket and not yet returned, for which the socket's readiness will not
// come: a second record that arrived in the same TCP segment as the first
// (held raw in tls.Conn), and the rest of a record when the read buffer
// filled exactly at the end of an element (held decrypted).
func TestParkOverTLS(t *testing.T) {
	t.Parallel()
	pki := certs(t)
	goOn := make(chan struct{})
	// exact fills the read buffer to its last byte, so that the next
	// element stays in tls.Conn.
	pad := bufSize - len(`<message id='a'><body></body></message>`)
	exact := `<message id='a'><body>` + strings.Repeat("x", pad) + `</body></message>`
	addr := serve(t, xmpptest.Opened("s1", featuresTLS, func(p *xmpptest.Peer) error {
		held := &heldConn{Conn: p.Conn()}
		if err := p.AcceptTLSOver(held, pki.server); err != nil {
			return err
		}
		if err := p.Open("s2", featuresPlainAuth); err != nil {
			return err
		}
		// Two records in one TCP write.
		<-goOn
		held.hold()
		if err := p.Send(`<presence id='1'/>`); err != nil {
			return err
		}
		if err := p.Send(`<presence id='2'/>`); err != nil {
			return err
		}
		if err := held.flush(); err != nil {
			return err
		}
		// One record whose first element fills the read buffer.
		<-goOn
		if err := p.Send(exact + `<presence id='3'/>`); err != nil {
			return err
		}
		// While parked.
		<-goOn
		if err := p.Send(`<presence id='4'/>`); err != nil {
			return err
		}
		p.WaitQuit()
		return nil
	}))
	poller := newPoller(t)
	c := mustDial(t, &Dialer{RootCAs: pki.roots, Watcher: poller}, addr)
	if !c.Secure() || c.src.raw == nil {
		t.Fatalf("TLS Conn: secure %v, parkable %v; want both", c.Secure(), c.src.raw != nil)
	}
	if c.src.br != nil {
		t.Error("buffer held after Dial with nothing left to read")
	}
	resumed := make(chan struct{}, 4)
	resume := func() { resumed <- struct{}{} }
	want := func(w string) {
		t.Helper()
		b, err := c.Next()
		if err != nil || string(b) != w {
			t.Fatalf("Next() = %.60s, %v; want %.60s", b, err, w)
		}
	}
	presence := func(id string) string { return `<presence xmlns='jabber:client' id='` + id + `'/>` }

	goOn <- struct{}{}
	want(presence("1"))
	if !c.Buffered() {
		t.Error("Buffered() = false with the second record read from the socket")
	}
	if c.Park(resume) {
		t.Fatal("Park = true with the second record read from the socket")
	}
	want(presence("2"))

	goOn <- struct{}{}
	want(strings.Replace(exact, "<message ", "<message xmlns='jabber:client' ", 1))
	if c.Park(resume) {
		t.Fatal("Park = true with the rest of a record decrypted")
	}
	want(presence("3"))

	if !c.Park(resume) {
		t.Fatal("Park with nothing left to read = false")
	}
	if c.src.br != nil || c.rd != nil {
		t.Errorf("buffer held %v, Reader held %v while parked", c.src.br != nil, c.rd != nil)
	}
	goOn <- struct{}{}
	awaitResumed(t, resumed, "not resumed when the server sent more")
	want(presence("4"))
}

// heldConn is a net.Conn whose writes can be held back and then sent in
// one write, so that several TLS records arrive together.
type heldConn struct {
	net.Conn
	mu      sync.Mutex
	holding bool
	buf     []byte
}

func (h *heldConn) hold() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.holding = true
}

func (h *heldConn) Write(b []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.holding {
		h.buf = append(h.buf, b...)
		return len(b), nil
	}
	return h.Conn.Write(b)
}

// flush sends what was held in one write and stops holding.
func (h *heldConn) flush() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.holding = false
	_, err := h.Conn.Write(h.buf)
	h.buf = nil
	return err
}

// TestParkHandsWaitToWatcher checks Conn.Park: with nothing buffered it
// hands the wait to the Watcher, whose callback fires when the server
// sends more; with something buffered, or data within ParkAfter, it does
// not; and a stream closed while parked stops its watch.
func TestParkHandsWaitToWatcher(t *testing.T) {
	goOn := make(chan struct{})
	addr := serve(t, xmpptest.Opened("s1", featuresPlainAuth, func(p *xmpptest.Peer) error {
		for _, s := range []string{
			`<presence id='1'/><presence id='2'/>`, // one read: 2 is buffered after 1
			`<presence id='3'/>`,                   // while parked
			`<presence id='4'/>`,                   // within ParkAfter
		} {
			<-goOn
			if err := p.Send(s); err != nil {
				return err
			}
		}
		p.WaitQuit()
		return nil
	}))
	poller := newPoller(t)
	c := mustDial(t, &Dialer{Watcher: poller}, addr)
	resumed := make(chan struct{}, 4)
	resume := func() { resumed <- struct{}{} }
	want := func(id string) {
		t.Helper()
		b, err := c.Next()
		if w := `<presence xmlns='jabber:client' id='` + id + `'/>`; err != nil || string(b) != w {
			t.Fatalf("Next() = %s, %v; want %s", b, err, w)
		}
	}
	goOn <- struct{}{}
	want("1")
	if c.Park(resume) {
		t.Fatal("Park with a stanza buffered = true")
	}
	want("2")
	if !c.Park(resume) {
		t.Fatal("Park with nothing buffered = false")
	}
	goOn <- struct{}{}
	awaitResumed(t, resumed, "not resumed when the server sent more")
	want("3")

	c.parkAfter = 5 * time.Second
	go func() {
		time.Sleep(50 * time.Millisecond)
		goOn <- struct{}{}
	}()
	if c.Park(resume) {
		t.Fatal("Park with data within ParkAfter = true")
	}
	want("4")

	c.parkAfter = 0
	if !c.Park(resume) {
		t.Fatal("Park = false")
	}
	// The test server does not answer the close tag: the socket is closed
	// after closeGrace, and the watch of the parked reader with it.
	defer func(g time.Duration) { closeGrace = g }(closeGrace)
	closeGrace = 50 * time.Millisecond
	c.Close()
	wait.Until(t, c.sockClosedNow, "the socket to close after Close")
	c.mu.Lock()
	watching := c.stopWatch != nil
	c.mu.Unlock()
	if watching {
		t.Fatal("socket closed with its watch still set")
	}
}

// sockClosedNow reports whether c's socket has been closed.
func (c *Conn) sockClosedNow() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sockClosed
}

// TestParkOverTLSHangUp checks that a TLS server hanging up right after
// a stanza is seen whether the hang-up comes before or after the stream
// parks: Next returns the stanza, then an error, and never waits for
// ever.
func TestParkOverTLSHangUp(t *testing.T) {
	t.Parallel()
	for _, together := range []bool{true, false} {
		t.Run(fmt.Sprintf("together=%v", together), func(t *testing.T) {
			pki := certs(t)
			goOn := make(chan struct{})
			addr := serve(t, xmpptest.Opened("s1", featuresTLS, func(p *xmpptest.Peer) error {
				raw := p.Conn()
				if err := p.AcceptTLS(pki.server); err != nil {
					return err
				}
				if err := p.Open("s2", featuresPlainAuth); err != nil {
					return err
				}
				<-goOn
				if err := p.Send(`<presence id='1'/>`); err != nil {
					return err
				}
				if !together {
					<-goOn
				}
				return raw.Close() // no close_notify, no </stream:stream>
			}))
			poller := newPoller(t)
			c := mustDial(t, &Dialer{RootCAs: pki.roots, Watcher: poller}, addr)
			goOn <- struct{}{}
			if b, err := c.Next(); err != nil || string(b) != `<presence xmlns='jabber:client' id='1'/>` {
				t.Fatalf("Next() = %s, %v", b, err)
			}
			resumed := make(chan struct{}, 1)
			if !together {
				if !c.Park(func() { resumed <- struct{}{} }) {
					t.Fatal("Park with nothing left to read = false")
				}
				goOn <- struct{}{}
				awaitResumed(t, resumed, "not resumed when the server hung up")
			} else if c.Park(func() { resumed <- struct{}{} }) {
				awaitResumed(t, resumed, "not resumed when the server hung up")
			}
			r := await(t, goNext(c))
			if r.err == nil {
				t.Fatalf("Next after the hang-up = %s, want an error", r.b)
			}
		})
	}
}

// newPoller returns a netpoll.Poller closed when the test ends.
func newPoller(t *testing.T) *netpoll.Poller {
	t.Helper()
	p, err := netpoll.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// awaitResumed waits for a parked Conn's resume function to be called,
// failing t with msg after wait.Deadline.
func awaitResumed(t *testing.T, resumed <-chan struct{}, msg string) {
	t.Helper()
	wait.Receive(t, resumed, "the resume function: %s", msg)
}

// TestDropParked checks that Drop on a parked stream stops its watch: the
// resume function is not called, and the server sees no closing tag.
func TestDropParked(t *testing.T) {
	t.Parallel()
	addr, rest := serveRest(t)
	c := mustDial(t, &Dialer{Watcher: newPoller(t)}, addr)
	resumed := make(chan struct{}, 1)
	if !c.Park(func() { resumed <- struct{}{} }) {
		t.Fatal("Park = false")
	}
	c.Drop()
	c.mu.Lock()
	watching, closed := c.stopWatch != nil, c.sockClosed
	c.mu.Unlock()
	if watching || !closed {
		t.Fatalf("after Drop: watching %v, socket closed %v; want false, true", watching, closed)
	}
	if s := wait.Receive(t, rest, "the socket to close"); s != "" {
		t.Errorf("server read %q after Drop", s)
	}
	select {
	case <-resumed:
		t.Error("a dropped stream was resumed")
	case <-time.After(50 * time.Millisecond):
	}
}

// TestParkNow checks Conn.ParkNow: it cuts short the wait Park makes
// before handing over (a stream about to move need not stay silent for
// ParkAfter), makes the next Park hand over at once, leaves a read of
// Next alone (the deadline it uses applies only while Park waits), and
// ParkNow(false) restores the wait.
func TestParkNow(t *testing.T) {
	goOn := make(chan struct{})
	addr := serve(t, xmpptest.Opened("s1", featuresPlainAuth, func(p *xmpptest.Peer) error {
		for _, s := range []string{
			`<presence id='1'/>`,            // while parked
			`<presence id='2'>`,             // the start of an element...
			`</presence><presence id='3'/>`, // ...its end, after a ParkNow
		} {
			<-goOn
			if err := p.Send(s); err != nil {
				return err
			}
		}
		p.WaitQuit()
		return nil
	}))
	c := mustDial(t, &Dialer{Watcher: newPoller(t), ParkAfter: time.Minute}, addr)
	resumed := make(chan struct{}, 4)
	resume := func() { resumed <- struct{}{} }

	// A Park waiting its minute is cut short.
	parked := make(chan bool, 1)
	go func() { parked <- c.Park(resume) }()
	wait.Until(t, func() bool {
		c.pmu.Lock()
		defer c.pmu.Unlock()
		return c.parkWaiting
	}, "Park to wait its ParkAfter")
	start := time.Now()
	c.ParkNow(true)
	if !wait.Receive(t, parked, "Park after ParkNow(true)") {
		t.Fatal("Park cut short by ParkNow = false, want the wait handed over")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Park returned %v after ParkNow", d)
	}
	goOn <- struct{}{}
	awaitResumed(t, resumed, "not resumed when the server sent more")
	if b, err := c.Next(); err != nil || string(b) != `<presence xmlns='jabber:client' id='1'/>` {
		t.Fatalf("Next() = %s, %v", b, err)
	}

	// Next, blocked in the middle of an element, is not disturbed.
	goOn <- struct{}{}
	next := make(chan error, 1)
	go func() {
		b, err := c.Next()
		if err == nil && string(b) != `<presence xmlns='jabber:client' id='2'></presence>` {
			err = fmt.Errorf("Next() = %s", b)
		}
		next <- err
	}()
	time.Sleep(50 * time.Millisecond)
	c.ParkNow(true)
	time.Sleep(50 * time.Millisecond)
	goOn <- struct{}{}
	if err := wait.Receive(t, next, "Next across a ParkNow"); err != nil {
		t.Fatalf("Next across a ParkNow: %v", err)
	}
	// presence 3 is buffered: Park refuses; once read, Park hands over
	// at once.
	if c.Park(resume) {
		t.Fatal("Park with a stanza buffered = true")
	}
	if _, err := c.Next(); err != nil {
		t.Fatal(err)
	}
	if !c.Park(resume) {
		t.Fatal("Park after ParkNow(true) = false, want the wait handed over at once")
	}
	c.Drop()

	// ParkNow(false): the wait is back.
	c.ParkNow(false)
	c.pmu.Lock()
	now := c.parkNow
	c.pmu.Unlock()
	if now {
		t.Fatal("ParkNow(false) left parkNow set")
	}
}
