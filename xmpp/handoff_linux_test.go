package xmpp

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/boshd/boshd/internal/xmpptest"
)

// TestHandoffResume hands a parked plaintext stream over, as to another
// process, and goes on with it: the server's next elements, one relying
// on the stream header's namespace declarations, arrive through the
// resumed Conn; its writes reach the server on the same TCP connection;
// and dropping the old Conn is nothing the server sees.
func TestHandoffResume(t *testing.T) {
	t.Parallel()
	srv := xmpptest.NewRelay(t, featuresPlainAuth)
	c := mustDial(t, &Dialer{Watcher: newPoller(t), ParkAfter: time.Millisecond}, srv.Addr())
	if _, _, err := c.Handoff(); !errors.Is(err, ErrNotIdle) {
		t.Fatalf("Handoff before Park: %v, want ErrNotIdle", err)
	}
	woken := make(chan struct{}, 1)
	if !c.Park(func() { woken <- struct{}{} }) {
		t.Fatal("an idle stream did not park")
	}
	st, fd, err := c.Handoff()
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "upstream")
	d := &Dialer{Watcher: newPoller(t), ParkAfter: time.Millisecond}
	r, err := d.Resume(st, f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c.Drop()
	if string(r.Features()) != string(c.Features()) {
		t.Errorf("resumed features %s, want %s", r.Features(), c.Features())
	}
	if r.StreamID() != "s1" || r.From() != c.From() || r.Version() != c.Version() {
		t.Errorf("resumed header: id %q from %q version %q, want those of %q %q %q", r.StreamID(), r.From(), r.Version(), c.StreamID(), c.From(), c.Version())
	}

	if err := r.Write([]byte("<presence/>")); err != nil {
		t.Fatal(err)
	}
	srv.WaitGot(t, "<presence/>")
	srv.Push(t, "<message id='m1'/>")
	if b, err := r.Next(); err != nil || string(b) != `<message xmlns='jabber:client' id='m1'/>` {
		t.Fatalf("resumed Next() = %s, %v", b, err)
	}
	select {
	case <-woken:
		t.Error("the old process's watch fired after the hand-over")
	case <-time.After(50 * time.Millisecond):
	}
	if srv.Accepts() != 1 {
		t.Errorf("the server accepted %d connections, want the one", srv.Accepts())
	}
	// The prefix "stream" is bound by the header the old process read.
	srv.Push(t, xmpptest.StreamError("system-shutdown"))
	var se *StreamError
	if _, err := r.Next(); !errors.As(err, &se) || se.Condition != "system-shutdown" {
		t.Fatalf("resumed Next() after a stream error: %v", err)
	}
}

// TestHandoffRefused: a stream that is not parked, or is closing, is not
// handed over, and goes on as it was.
func TestHandoffRefused(t *testing.T) {
	t.Parallel()
	srv := xmpptest.NewRelay(t, featuresPlainAuth)
	c := mustDial(t, &Dialer{Watcher: newPoller(t), ParkAfter: time.Millisecond}, srv.Addr())
	if !c.Park(func() {}) {
		t.Fatal("an idle stream did not park")
	}
	c.Close()
	if _, _, err := c.Handoff(); !errors.Is(err, ErrNotIdle) {
		t.Errorf("Handoff of a closing stream: %v, want ErrNotIdle", err)
	}
}
