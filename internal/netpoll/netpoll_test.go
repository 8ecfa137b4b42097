//go:build linux

package netpoll

import (
	"errors"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// pair returns both ends of a loopback TCP connection.
func pair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

func rawConn(t *testing.T, c *net.TCPConn) syscall.RawConn {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

func newPoller(t *testing.T) *Poller {
	t.Helper()
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func fired(ch <-chan struct{}, d time.Duration) bool {
	select {
	case <-ch:
		return true
	case <-time.After(d):
		return false
	}
}

func TestWatch(t *testing.T) {
	tests := []struct {
		name   string
		events Events
		act    func(client *net.TCPConn)
		fires  bool
	}{
		{"hang-up seen", HangUp, func(c *net.TCPConn) { c.Close() }, true},
		{"data is not a hang-up", HangUp, func(c *net.TCPConn) { c.Write([]byte("x")) }, false},
		{"data is readable", Readable, func(c *net.TCPConn) { c.Write([]byte("x")) }, true},
		{"hang-up is readable", Readable, func(c *net.TCPConn) { c.Close() }, true},
		{"nothing happens", Readable, func(*net.TCPConn) {}, false},
	}
	p := newPoller(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, server := pair(t)
			ch := make(chan struct{}, 2)
			w, err := p.Watch(rawConn(t, server), tt.events, func() { ch <- struct{}{} })
			if err != nil {
				t.Fatal(err)
			}
			tt.act(client)
			if got := fired(ch, 200*time.Millisecond); got != tt.fires {
				t.Fatalf("fired = %v, want %v", got, tt.fires)
			}
			if stopped := w.Stop(); stopped == tt.fires {
				t.Fatalf("Stop = %v after fired = %v", stopped, tt.fires)
			}
			if fired(ch, 50*time.Millisecond) {
				t.Fatal("fired twice")
			}
		})
	}
}

// watchHangUp watches c for a hang-up with p; the returned channel
// receives when the watch fires.
func watchHangUp(t *testing.T, p *Poller, c *net.TCPConn) (*Watch, <-chan struct{}) {
	t.Helper()
	ch := make(chan struct{}, 1)
	w, err := p.Watch(rawConn(t, c), HangUp, func() { ch <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	return w, ch
}

func TestStopBeforeEvent(t *testing.T) {
	p := newPoller(t)
	client, server := pair(t)
	w, ch := watchHangUp(t, p, server)
	if !w.Stop() {
		t.Fatal("Stop before any event = false")
	}
	client.Close()
	if fired(ch, 100*time.Millisecond) {
		t.Fatal("a stopped watch fired")
	}
	// The socket can be watched again, and is.
	_, ch = watchHangUp(t, p, server)
	if !fired(ch, time.Second) {
		t.Fatal("watching again: the hang-up is not seen")
	}
}

func TestClosedSocketNotConfused(t *testing.T) {
	// A socket closed while watched leaves the set; a new socket that
	// gets the same descriptor number is not taken for it.
	p := newPoller(t)
	_, server := pair(t)
	w, ch := watchHangUp(t, p, server)
	server.Close()
	client2, server2 := pair(t)
	client2.Close()
	_ = server2
	if fired(ch, 100*time.Millisecond) {
		t.Fatal("the watch of a closed socket fired for another one")
	}
	w.Stop() // Control fails on the closed socket: nothing to remove
}

func TestClose(t *testing.T) {
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	_, server := pair(t)
	if _, err := p.Watch(rawConn(t, server), HangUp, func() {}); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Watch(rawConn(t, server), HangUp, func() {}); err != ErrClosed {
		t.Fatalf("Watch after Close: %v, want ErrClosed", err)
	}
}

func TestAwaitReadable(t *testing.T) {
	tests := []struct {
		name    string
		act     func(client *net.TCPConn)
		timeout bool // the read deadline passes first
	}{
		{"data", func(c *net.TCPConn) { c.Write([]byte("x")) }, false},
		{"hang-up", func(c *net.TCPConn) { c.Close() }, false},
		{"nothing", func(*net.TCPConn) {}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, server := pair(t)
			tt.act(client)
			server.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			err := AwaitReadable(rawConn(t, server))
			if timedOut := errors.Is(err, os.ErrDeadlineExceeded); timedOut != tt.timeout || (!tt.timeout && err != nil) {
				t.Fatalf("AwaitReadable = %v, want timeout %v", err, tt.timeout)
			}
			if tt.name == "data" {
				// Nothing was consumed.
				b := make([]byte, 1)
				if n, err := server.Read(b); n != 1 || err != nil || b[0] != 'x' {
					t.Fatalf("Read after AwaitReadable = %d %q %v", n, b[:n], err)
				}
			}
		})
	}
}
