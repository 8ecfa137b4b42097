package xmpp

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	"github.com/boshd/boshd/internal/handoff"
	"github.com/boshd/boshd/internal/rawxml"
)

// This file hands an idle plaintext stream to another process in a live
// upgrade (docs/design/005-live-upgrade.md, "What moves"): its state, and
// a duplicate of its socket to pass over a Unix socket. The TCP
// connection is the same afterwards: the server sees nothing.

// ConnState is what an idle stream is besides its socket: where it goes,
// the features the client was given, and the server's stream header:
// what it told (ID, From, Lang, Version) and its namespace declarations,
// which the elements still to come inherit (Root; a parked stream keeps
// no other attribute of it). It holds plain values, for encoding/gob.
type ConnState struct {
	Target                  Target
	Features                []byte
	Root                    rawxml.Root
	ID, From, Lang, Version string
}

// ErrNotIdle is the error of Handoff for a stream that cannot be handed
// over now: not parked (a reader runs, or the server has just sent
// something), over TLS, between SASL success and the restart, or
// closing. Over TLS it never can be: crypto/tls cannot export a live
// connection's keys.
var ErrNotIdle = errors.New("xmpp: stream not idle and plaintext")

// Handoff freezes a parked stream for another process: it cancels the
// watch Park set, so that this process reads nothing more from the
// socket, and returns the stream's state and a duplicate of the socket
// (close-on-exec; the caller closes it once sent). c is otherwise
// unchanged. Once the other process has the stream, Drop c: the socket
// stays open through the other process's descriptor, and nothing is
// written. If the hand-over fails, call the resume function given to Park
// to go on reading here.
//
// Handoff returns ErrNotIdle, and changes nothing, unless the stream is
// parked (Park reported true and the watch has not fired), plaintext,
// and not closing.
func (c *Conn) Handoff() (ConnState, int, error) {
	if c.secure {
		return ConnState{}, -1, fmt.Errorf("%w: over TLS", ErrNotIdle)
	}
	c.mu.Lock()
	stop := c.stopWatch
	ok := stop != nil && !c.closing && !c.sockClosed && c.sasl == saslNone && !c.dropped.Load()
	if ok {
		c.stopWatch = nil
	}
	c.mu.Unlock()
	if !ok {
		return ConnState{}, -1, fmt.Errorf("%w: not parked", ErrNotIdle)
	}
	if !stop() {
		// The watch fired: resume runs, and a reader with it.
		return ConnState{}, -1, fmt.Errorf("%w: the server sent more", ErrNotIdle)
	}
	// No reader runs, nor will: the reader's fields are ours to read.
	fd, err := dupSocket(c.nc)
	if err != nil {
		return ConnState{}, -1, fmt.Errorf("xmpp: handoff: %w", err)
	}
	c.mu.Lock()
	hdr := c.hdr
	c.mu.Unlock()
	st := ConnState{
		Target: c.target, Features: append([]byte(nil), c.features...), Root: copyRoot(c.root),
		ID: hdr.id, From: hdr.from, Lang: hdr.lang, Version: hdr.version,
	}
	return st, fd, nil
}

// copyRoot returns a copy of r sharing nothing with it.
func copyRoot(r rawxml.Root) rawxml.Root {
	r.Attr = append(r.Attr[:0:0], r.Attr...)
	return r
}

// dupSocket returns a duplicate of nc's descriptor, close-on-exec. Never
// through os.File.Fd, which would put the socket, shared with nc, in
// blocking mode.
func dupSocket(nc net.Conn) (int, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("a %T has no descriptor", nc)
	}
	return handoff.Dup(sc)
}

// Resume goes on with a stream another process handed over (Handoff): f
// is its socket, st its state. The stream is idle: a reader (Next) waits
// for the server's next element, and writes go on the same connection.
// Resume takes its own descriptor; the caller closes f.
func (d *Dialer) Resume(st ConnState, f *os.File) (*Conn, error) {
	if st.Root.Name.Local != "stream" || st.Root.NS() != nsStream || st.Version == "" {
		return nil, fmt.Errorf("xmpp: resume: %w: root <%s>, version %q", errNotStream, qname(st.Root.Name.Space, st.Root.Name.Local), st.Version)
	}
	hdr := header{id: st.ID, from: st.From, lang: st.Lang, version: st.Version}
	nc, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("xmpp: resume: %w", err)
	}
	if _, ok := nc.(*net.TCPConn); !ok {
		nc.Close()
		return nil, fmt.Errorf("xmpp: resume: a %T, not a TCP connection", nc)
	}
	c := &Conn{
		nc:           nc,
		target:       st.Target,
		features:     append([]byte(nil), st.Features...),
		writeTimeout: d.WriteTimeout,
		maxSize:      d.MaxStanzaSize,
		watcher:      d.Watcher,
		parkAfter:    d.ParkAfter,
		root:         copyRoot(st.Root),
		hdr:          hdr,
	}
	if c.writeTimeout <= 0 {
		c.writeTimeout = defaultWriteTimeout
	}
	if c.maxSize <= 0 {
		c.maxSize = defaultMaxStanzaSize
	}
	c.src.setConn(nc)
	c.idle()
	return c, nil
}
