package xmpp

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/boshd/boshd/internal/netpoll"
	"github.com/boshd/boshd/internal/rawxml"
)

// joinPool holds buffers for joining the slices of a Write over TLS;
// buffers grown past maxPooledJoin are left to the collector.
var joinPool = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

const maxPooledJoin = 64 << 10

// closeGrace is how long Close waits for the server to end its stream
// before closing the socket. A variable so tests can shorten it.
var closeGrace = 2 * time.Second

// Conn is an upstream XMPP client stream opened by Dialer.Dial. It relays
// raw bytes: Next reads what the server sends, Write sends what the client
// sent.
//
// One goroutine at a time may call Next. Write, Restart, Close and Drop
// may be called from any goroutine, also while Next is blocked.
type Conn struct {
	// Set by Dial, immutable afterwards.
	nc           net.Conn      // the TCP connection, or the tls.Conn over it
	target       Target        // for the header Restart sends
	secure       bool          // nc is TLS
	features     []byte        // filtered features of the stream Dial opened
	writeTimeout time.Duration // deadline for each write
	maxSize      int           // bound on one element from the server
	watcher      Watcher       // for Park; nil if none
	parkAfter    time.Duration // how long Park waits before using watcher
	logins       LoginGate     // paces SASL exchanges; nil if none

	// pmu guards parkNow and parkWaiting: ParkNow cuts Park's wait
	// short with a read deadline only while Park waits, never while
	// Next reads.
	pmu         sync.Mutex
	parkNow     bool // set by ParkNow: Park hands the wait over at once
	parkWaiting bool // Park waits parkAfter on the runtime poller

	// Owned by the goroutine calling Next (by Dial before that).
	src          source         // nc's bytes, buffered
	rd           *rawxml.Reader // reads the current server stream from src; nil while idle (see reader)
	root         rawxml.Root    // the current server stream's header, for rd
	rerr         error          // terminal result of Next, returned again by later calls
	afterSuccess bool           // Next returned SASL <success/>; next it waits for Restart

	// wmu serialises writes to nc: Write, Restart and Close. It is held
	// during a write, which WriteTimeout bounds.
	wmu    sync.Mutex
	closed bool  // Close was called; guarded by wmu
	werr   error // first write error, returned by later writes; guarded by wmu

	// dropped is set by Drop, before it closes the socket; writers read
	// it without a lock (an atomic, so that each Write pays for none).
	dropped atomic.Bool

	// mu guards the fields below. It is never held during I/O.
	mu         sync.Mutex
	hdr        header        // the current server stream header
	sasl       saslState     // where the stream restart after SASL stands
	wake       chan struct{} // signalled by Restart and Close; non-nil while sasl != saslNone
	closing    bool          // Close has written </stream:stream> (or failed to)
	readerDone bool          // Next returned a terminal result: nobody reads nc any more
	sockClosed bool          // nc has been closed
	timer      *time.Timer   // Close's grace timer, until the socket is closed
	stopWatch  func() bool   // cancels Park's watch; nil if none
	// inLogin: a SASL exchange holds a place at logins, until the
	// server answers it or the stream ends. cancelLogin ends a wait
	// for a place; nil when none is under way.
	inLogin     bool
	cancelLogin func()
}

// Park is for the goroutine calling Next, between two calls, when it would
// rather end than wait for the server: an idle stream then costs no
// goroutine (docs/design/002). If the server sends nothing within the
// Dialer's ParkAfter, Park hands the wait to the Dialer's Watcher and
// reports true: the caller must not call Next again, and resume, called
// once the server has sent more (or hung up), starts a new reader that
// does. resume is called from the Watcher's goroutine and must be quick.
//
// Park reports false, having handed nothing over, when Next should be
// called now: the server has sent something (over TLS, also something
// tls.Conn has read and not yet returned), the stream waits for a restart
// after SASL or has ended, or there is no Watcher.
func (c *Conn) Park(resume func()) bool {
	if c.watcher == nil || c.src.raw == nil || c.afterSuccess || c.rerr != nil || !c.src.drained() {
		return false
	}
	if c.parkAfter > 0 && !c.waitBeforePark() {
		return false // something came, or an error Next will see
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sockClosed {
		return false
	}
	stop, err := c.watcher.WatchReadable(c.src.raw, resume)
	if err != nil {
		return false
	}
	c.stopWatch = stop
	return true
}

// waitBeforePark waits, near the top of the stack, for the server to send
// something within parkAfter (readiness through the runtime poller,
// bounded by a read deadline), unless ParkNow says not to or cuts it
// short. It reports whether Park should hand the wait over: nothing came.
func (c *Conn) waitBeforePark() bool {
	c.pmu.Lock()
	if c.parkNow {
		c.pmu.Unlock()
		return true
	}
	c.nc.SetReadDeadline(time.Now().Add(c.parkAfter))
	c.parkWaiting = true
	c.pmu.Unlock()
	err := netpoll.AwaitReadable(c.src.raw)
	c.pmu.Lock()
	defer c.pmu.Unlock()
	c.parkWaiting = false
	// Cleared under pmu, after which ParkNow sets no deadline: Next's
	// reads have none.
	c.nc.SetReadDeadline(time.Time{})
	return err != nil && errors.Is(err, os.ErrDeadlineExceeded)
}

// ParkNow has Park, from now on, hand the wait to the Watcher at once
// instead of waiting the Dialer's ParkAfter first, and cuts a wait under
// way short: a stream about to be handed to another process (Handoff,
// which takes only a parked stream) gets there within a round of its
// reader, not after ParkAfter of silence. ParkNow(false) restores the
// wait. It may be called from any goroutine.
func (c *Conn) ParkNow(now bool) {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	c.parkNow = now
	if now && c.parkWaiting {
		c.nc.SetReadDeadline(time.Now())
	}
}

// Buffered reports whether the server has sent bytes that were read from
// the connection but not yet returned by Next: the start of the next
// element, most often all of it. A relay that sees it true can call Next
// again before passing on what it has, and so pass on a burst from the
// server together; OnWait tells it when Next is about to wait for the
// server instead. Only the goroutine calling Next may call Buffered.
func (c *Conn) Buffered() bool {
	return !c.afterSuccess && c.rerr == nil && c.src.buffered() > 0
}

// OnWait sets f to be called by Next, on the goroutine calling it, before
// each read that may wait for the server: whenever everything read from
// the connection so far has been parsed. f must be quick and must not call
// Next. Only the goroutine calling Next may call OnWait.
func (c *Conn) OnWait(f func()) { c.src.wait = f }

// Features returns the <stream:features> of the stream Dial opened (the
// secured one if STARTTLS was done), filtered of what cannot be relayed
// (see the package documentation). The element declares xmlns:stream and
// can be relayed as it is. The caller must not modify it.
func (c *Conn) Features() []byte { return c.features }

// header returns a copy of the server's current stream header, which
// Next replaces at a restart.
func (c *Conn) header() header {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hdr
}

// StreamID returns the id of the server's current stream header.
func (c *Conn) StreamID() string { return c.header().id }

// From returns the `from` of the server's current stream header: the
// domain it serves.
func (c *Conn) From() string { return c.header().from }

// Lang returns the xml:lang of the server's current stream header, the
// default language of what the server sends (RFC 6120 §4.7.4); "" if it
// sent none.
func (c *Conn) Lang() string { return c.header().lang }

// Version returns the version of the server's current stream header, as
// the server wrote it: "1.0" or higher (Dial refuses a server that does
// not speak XMPP 1.0).
func (c *Conn) Version() string { return c.header().version }

// AwaitingRestart reports whether the element Next returned last was a
// SASL <success/>: the next call waits for Restart, and what it returns
// is the new stream's features, its header read (StreamID, From, Lang and
// Version give the new one's). A relay that announces each stream to its
// client, as XMPP over WebSocket does with <open/> (RFC 7395 §3.7), does
// so before that element. Only the goroutine calling Next may call it.
func (c *Conn) AwaitingRestart() bool { return c.afterSuccess }

// Secure reports whether the stream runs over TLS.
func (c *Conn) Secure() bool { return c.secure }

// Next returns the next top-level element from the server, ready to relay:
// its original bytes, standalone (an unprefixed stanza without xmlns gets
// xmlns='jabber:client'; <stream:features> and <stream:error> declare
// xmlns:stream). Stream features are filtered as for Features.
//
// After returning a SASL <success/>, the next call waits until Restart has
// been called (or the Conn closed), then reads the server's new stream
// header; the element it returns is then the new stream's features.
//
// Next returns io.EOF when the server ends its stream with
// </stream:stream>, a *StreamError for a <stream:error>, and otherwise an
// error wrapping the network or parse error that ended the stream (such as
// io.ErrUnexpectedEOF if the connection was lost, or rawxml.ErrLimit for an
// element larger than Dialer.MaxStanzaSize). Having returned an error it
// returns the same error again.
//
// Only one goroutine may call Next at a time.
func (c *Conn) Next() ([]byte, error) {
	if c.rerr != nil {
		return nil, c.rerr
	}
	if c.afterSuccess {
		c.afterSuccess = false
		if err := c.awaitRestart(); err != nil {
			return nil, c.stop(err)
		}
		if err := c.readHeader(); err != nil {
			return nil, c.stop(err)
		}
	}
	// Wait for the server's next bytes here, near the top of the
	// goroutine's stack, rather than deep inside the XML reader: an idle
	// goroutine with little of its stack in use lets the runtime shrink
	// the stack that parsing grew (see BENCHMARKS.md).
	if err := c.src.fill(); err != nil {
		return nil, c.stop(readError("reading from server", err))
	}
	el, err := c.reader().Next()
	if err == rawxml.ErrRootEnd {
		return nil, c.stop(io.EOF)
	}
	if err != nil {
		return nil, c.stop(readError("reading from server", err))
	}
	raw := el.Raw
	switch {
	case el.NS == nsStream && el.Name.Local == "error":
		return nil, c.stop(parseStreamError(raw))
	case el.NS == nsStream && el.Name.Local == "features":
		if raw, _, err = filterFeatures(raw, c.target.KeepSM); err != nil {
			return nil, c.stop(err)
		}
	case el.NS == nsSASL && el.Name.Local == "failure":
		c.endLogin()
	case el.NS == nsSASL && el.Name.Local == "success":
		c.endLogin()
		c.mu.Lock()
		c.sasl = saslSuccess
		c.wake = make(chan struct{}, 1)
		c.mu.Unlock()
		c.afterSuccess = true
	}
	c.idle()
	return raw, nil
}

// readerPool holds the rawxml.Readers of idle Conns.
var readerPool = sync.Pool{New: func() any { return new(rawxml.Reader) }}

// readerOptions returns the options c's Readers read the server's stream
// with.
func (c *Conn) readerOptions() rawxml.Options {
	return rawxml.Options{DefaultNS: nsClient, MaxDepth: maxDepth, MaxElementSize: c.maxSize}
}

// reader returns the Reader of the current server stream, taking one
// from readerPool to go on after the stream's header if c gave its own
// back while idle.
func (c *Conn) reader() *rawxml.Reader {
	if c.rd == nil {
		c.rd = readerPool.Get().(*rawxml.Reader)
		c.rd.ResetAfterRoot(&c.src, c.readerOptions(), c.root)
	}
	return c.rd
}

// idle gives the read buffer back when nothing is left to read (see
// source.idle), and the Reader with it: between two elements a Reader
// holds nothing a new one cannot be told (ResetAfterRoot).
func (c *Conn) idle() {
	c.src.idle()
	if c.src.br == nil {
		c.putReader()
	}
}

// putReader gives c's Reader back to readerPool.
func (c *Conn) putReader() {
	if c.rd != nil {
		readerPool.Put(c.rd)
		c.rd = nil
	}
}

// stop records err as the terminal result of Next and returns it. Nobody
// reads the socket from now on, so if Close was called it is closed now.
func (c *Conn) stop(err error) error {
	c.rerr = err
	c.endLogin()
	c.src.release()
	c.putReader()
	c.mu.Lock()
	c.readerDone = true
	closing := c.closing
	c.mu.Unlock()
	if closing {
		c.closeSocket()
	}
	return err
}

// Write sends p upstream as it is, in one write (writev for several
// slices over TCP; over TLS, one record of them joined), with the
// Dialer's WriteTimeout. The caller must pass whole, well-formed
// elements. After a failed write the stream is broken and every later
// Write returns the first error; after Close, Write returns an error
// wrapping net.ErrClosed.
//
// A p holding a client's SASL <auth/> first waits for a place at the
// Dialer's LoginGate, if any (Close and Drop end the wait).
//
// Write is safe for concurrent use with Next and is serialised with other
// writes, Restart and Close.
func (c *Conn) Write(p ...[]byte) error {
	c.awaitLogin(p)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.writable("write"); err != nil {
		return err
	}
	return c.write(p...)
}

// writable returns the error for op (a verb for the message) on a Conn
// that can no longer be written to: closed, dropped, or broken by a
// failed write; nil if it can be. The caller holds wmu.
func (c *Conn) writable(op string) error {
	if c.closed || c.isDropped() {
		return fmt.Errorf("xmpp: %s: %w", op, net.ErrClosed)
	}
	return c.werr
}

// isDropped reports whether Drop has been called. Drop sets dropped
// before it closes the socket and long before it sets closed (under wmu,
// once the socket is closed), so a writer must look at dropped too, or in
// that gap it would write to a dead socket. It is an atomic, so that
// every Write pays no lock for it.
func (c *Conn) isDropped() bool { return c.dropped.Load() }

// write writes p to nc with the write timeout. The caller holds wmu, or is
// Dial (which owns c).
func (c *Conn) write(p ...[]byte) error {
	err := c.nc.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	if err == nil {
		switch {
		case len(p) == 1:
			_, err = c.nc.Write(p[0])
		case c.secure:
			// tls.Conn has no writev: each slice would be a record and
			// a write of its own. Join them into one.
			buf := joinPool.Get().(*[]byte)
			b := (*buf)[:0]
			for _, s := range p {
				b = append(b, s...)
			}
			_, err = c.nc.Write(b)
			if cap(b) <= maxPooledJoin {
				*buf = b[:0]
				joinPool.Put(buf)
			}
		default:
			// WriteTo consumes the slice it is given: copy p so the
			// caller's slice is left alone.
			bufs := make(net.Buffers, len(p))
			copy(bufs, p)
			_, err = bufs.WriteTo(c.nc)
		}
	}
	if err != nil {
		c.werr = fmt.Errorf("xmpp: write: %w", err)
		return c.werr
	}
	return nil
}

// Close ends the stream gracefully: it writes </stream:stream> (once),
// then closes the socket when the server has ended its stream too (as seen
// by Next) or after a grace of 2 s, whichever comes first; if no Next is
// reading, or the write failed, it closes the socket at once. A Next
// blocked meanwhile returns io.EOF or a network error.
//
// Close may wait for a Write in progress (at most WriteTimeout). It returns
// the error of writing the closing tag, if any; it is idempotent and safe
// to call from any goroutine. Close after Drop, or concurrent with it,
// does nothing more and returns nil.
func (c *Conn) Close() error {
	c.endLogin()
	c.wmu.Lock()
	if c.closed || c.isDropped() {
		// Dropped: the socket is closed or about to be, and nothing
		// may be written to it, </stream:stream> least of all.
		c.closed = true
		c.wmu.Unlock()
		return nil
	}
	c.closed = true
	broken := c.werr != nil
	var err error
	if !broken {
		err = c.write([]byte(closeTag))
		if err != nil && c.isDropped() {
			// Drop closed the socket under the write: the stream
			// was dropped, which is no error of Close's.
			err = nil
		}
	}
	c.wmu.Unlock()

	c.mu.Lock()
	c.closing = true
	now := broken || err != nil || c.readerDone
	if !now && !c.sockClosed {
		c.timer = time.AfterFunc(closeGrace, c.closeSocket)
	}
	if c.wake != nil {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
	c.mu.Unlock()
	if now {
		c.closeSocket()
	}
	return err
}

// Drop ends the stream abruptly, as a lost connection does: it closes the
// socket at once, without writing </stream:stream> (over TLS, without a
// close_notify alert either: the TCP connection beneath is closed). A
// server with stream management (XEP-0198) then keeps the session for the
// client to resume, which Close would end. Drop is for a relay whose
// client was lost without closing its stream; Close stays the way to end
// a stream the client ended.
//
// A Next blocked meanwhile returns an error wrapping net.ErrClosed (or
// another network error), and so does a Next waiting for Restart. A Write
// or Restart in progress fails at once; later ones return an error
// wrapping net.ErrClosed. Drop does not wait for a Write in progress to
// time out, cancels Park's watch, and is safe to call from any goroutine.
// Drop after Close closes the socket without waiting for the rest of
// Close's grace; Close after Drop (or concurrent with it: Drop wins), and
// Drop again, do nothing, Close returning nil.
func (c *Conn) Drop() {
	c.endLogin()
	c.mu.Lock()
	c.dropped.Store(true)
	if c.wake != nil {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
	c.mu.Unlock()
	// Close the socket before taking wmu: a Write holding it fails now
	// rather than at its WriteTimeout.
	c.shutSocket(true)
	c.wmu.Lock()
	c.closed = true
	c.wmu.Unlock()
}

// closeSocket closes nc, once.
func (c *Conn) closeSocket() { c.shutSocket(false) }

// shutSocket closes nc, once; abrupt closes the TCP connection under a
// tls.Conn instead, so that nothing is written (tls.Conn.Close may write
// an alert, for up to 5 s against a server that does not read).
func (c *Conn) shutSocket(abrupt bool) {
	c.mu.Lock()
	if c.sockClosed {
		c.mu.Unlock()
		return
	}
	c.sockClosed = true
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	stop := c.stopWatch
	c.stopWatch = nil
	c.mu.Unlock()
	if tc, ok := c.nc.(*tls.Conn); ok && abrupt {
		tc.NetConn().Close()
	} else {
		c.nc.Close()
	}
	if stop != nil {
		// The socket is closed after Close or once the reader has
		// ended: a reader parked now has nothing more to tell.
		stop()
	}
}
