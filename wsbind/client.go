package wsbind

import (
	"bufio"
	"errors"
	"net"
	"os"
	"sync"
	"time"

	"github.com/boshd/boshd/internal/netpoll"
	"github.com/boshd/boshd/internal/rawxml"
	"github.com/boshd/boshd/metrics"
)

// This file reads a session's client: its messages, in order, on one
// goroutine at a time, which parks the socket when the client has nothing
// more to say (design 003, "Parking").

// readers holds the buffers client connections are read through: a
// session takes one to read and gives it back before parking, so that an
// idle session holds none.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

// maxKeptMessage is the largest message buffer a session keeps between
// messages; a larger one, grown for a large message, is let go.
const maxKeptMessage = 4096

// clientSource is what a session's reader reads: the bytes net/http had
// read beyond the upgrade request, then the connection.
type clientSource struct {
	prefix []byte
	conn   net.Conn
}

func (c *clientSource) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		if len(c.prefix) == 0 {
			c.prefix = nil
		}
		return n, nil
	}
	return c.conn.Read(p)
}

// readClient reads and handles the client's messages until the client's
// socket is parked or the connection is over. It runs on net/http's
// goroutine after the upgrade, and on a new one each time a parked socket
// wakes.
func (s *session) readClient() {
	for {
		if s.br == nil {
			s.br = readers.Get().(*bufio.Reader)
			s.br.Reset(&s.src)
		}
		if s.h.poller != nil && s.raw != nil {
			// Parked between messages, a reader only runs when the
			// client has sent something: a message begun is bounded.
			s.setReadDeadline(time.Now().Add(incompleteTimeout))
		}
		msg, ok, err := readMessage(s.br, &s.w, int(s.h.cfg.WebSocketMaxMessageSize), s.msg[:0])
		if err != nil {
			s.clientFailed(err)
			s.putReader()
			s.closeConn()
			return
		}
		s.lastReadNs.Store(time.Now().UnixNano())
		if ok {
			if !s.isEnded() {
				s.handle(msg)
			}
			if cap(msg) <= maxKeptMessage {
				s.msg = msg[:0]
			} else {
				s.msg = nil
			}
		}
		if s.br.Buffered() > 0 || !s.park(!ok) {
			continue
		}
		return
	}
}

// clientFailed ends the session for the error that ended reading its
// client, unless it has ended already (then err is the end of waiting
// for the client's close frame).
func (s *session) clientFailed(err error) {
	if s.isEnded() {
		return
	}
	var ce *closeError
	switch {
	case errors.As(err, &ce) && ce.remote:
		// A close frame without <close/> first: as if the connection
		// had been lost, which is what a client leaving a page or
		// losing its network does; its stream stays resumable.
		s.end(endClientLost, err)
	case errors.As(err, &ce) && ce.code == closeMessageTooBig:
		e := endingFor(endBadInput, streamErrorXML("policy-violation", ce.reason), closeMessageTooBig, ce.reason)
		s.mu.Lock()
		e.open = s.state != opened
		s.mu.Unlock()
		s.finish(e, err)
	case errors.As(err, &ce):
		s.finish(endingFor(endBadInput, nil, ce.code, ce.reason), err)
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.finish(endingFor(endBadInput, nil, closePolicyViolation, "message incomplete for too long"), err)
	default:
		s.end(endClientLost, err)
	}
}

// putReader gives the read buffer back, and with it anything buffered.
func (s *session) putReader() {
	if s.br != nil {
		s.br.Reset(nil)
		readers.Put(s.br)
		s.br = nil
	}
}

// setReadDeadline sets the client connection's read deadline to t, or,
// once the session has ended, to the bound on waiting for the client's
// close frame: under mu, so that end's deadline is never undone.
func (s *session) setReadDeadline(t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		t = s.lingerUntil
	}
	s.conn.SetReadDeadline(t)
}

// park hands the client's socket to the poller once nothing read from it
// is left, first waiting park_after for more in the runtime poller, with
// no buffer held, unless the last wakeup brought only control frames (a
// pong: the client is idle). It reports false when the reader should go
// on reading instead: parking is off, something came, or the session has
// ended and its client's close frame is awaited.
func (s *session) park(controlOnly bool) bool {
	if s.h.poller == nil || s.raw == nil || s.isEnded() || !s.drained() {
		return false
	}
	s.putReader()
	s.msg = nil // an idle session holds no message buffer either
	if after := s.h.cfg.ParkAfter; after > 0 && !controlOnly && s.startParkWait(after) {
		err := netpoll.AwaitReadable(s.raw)
		s.endParkWait()
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return false // something came, or an error the next read reports
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return false
	}
	s.conn.SetReadDeadline(time.Time{})
	return s.watchClient()
}

// watchClient hands the client's socket to the poller, counted as parked;
// called with mu held. It reports false if the socket cannot be watched:
// a reader must read it instead.
func (s *session) watchClient() bool {
	if s.raw == nil || s.h.poller == nil {
		return false
	}
	w, err := s.h.poller.Watch(s.raw, netpoll.Readable, s.wake)
	if err != nil {
		return false
	}
	s.watch = w
	s.h.parked.Add(1)
	return true
}

// startParkWait sets the read deadline of park's wait, after, and
// reports true; or false, with no deadline set, if the session is to park
// at once: its door is closed for a move (freeze cuts a wait under way
// short the same way, by the deadline).
func (s *session) startParkWait(after time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.door {
		return false
	}
	if s.ended {
		s.conn.SetReadDeadline(s.lingerUntil)
	} else {
		s.conn.SetReadDeadline(time.Now().Add(after))
	}
	s.parkWaiting = true
	return true
}

// endParkWait clears the deadline startParkWait set.
func (s *session) endParkWait() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.parkWaiting = false
	if s.ended {
		s.conn.SetReadDeadline(s.lingerUntil)
	} else {
		s.conn.SetReadDeadline(time.Time{})
	}
}

// wake is the parked socket's watch function, on the poller's goroutine.
func (s *session) wake() {
	s.mu.Lock()
	s.watch = nil
	s.mu.Unlock()
	s.h.parked.Add(-1)
	go s.readClient()
}

// aLongTimeAgo is a deadline that has passed: a read with it returns at
// once.
var aLongTimeAgo = time.Unix(1, 0)

// drained reports whether nothing read from the client is left
// unconsumed: nothing in the read buffer and, over TLS, nothing tls.Conn
// has read and not returned. For that it reads from the connection with a
// deadline already past, which returns what tls.Conn holds without
// waiting, or a timeout tls.Conn does not keep (as xmpp's source does).
func (s *session) drained() bool {
	if s.br != nil && s.br.Buffered() > 0 || len(s.src.prefix) > 0 {
		return false
	}
	if !s.secure || s.br == nil {
		return true
	}
	s.setReadDeadline(aLongTimeAgo)
	_, err := s.br.Peek(1)
	s.setReadDeadline(time.Time{})
	return s.br.Buffered() == 0 && errors.Is(err, os.ErrDeadlineExceeded)
}

// handle handles one message from the client (RFC 7395 §3.3-§3.7).
func (s *session) handle(msg []byte) {
	s.h.metrics.WebSocketMessage(metrics.In, len(msg))
	s.mu.Lock()
	st, up := s.state, s.up
	s.mu.Unlock()
	v := judge(msg, st, s.h.cfg.MaxElementDepth)
	switch v.action {
	case actOpen:
		s.open(v.raw)
	case actRestart:
		// RFC 7395 §3.7: a new <open/> after SASL success restarts the
		// stream; at any other time it is out of place.
		if err := up.Restart(); err != nil {
			s.endWith(endBadInput, "bad-format", "<open/> is only allowed first and after SASL success", err)
		}
	case actClose:
		s.end(endClientClose, nil)
	case actRefuse:
		s.endWith(endBadInput, v.condition, v.text, v.err)
	default:
		if err := up.Write(v.raw); err != nil {
			s.end(endUpstreamLost, err)
		}
	}
}

// What a client message asks for.
const (
	actRelay   = iota // write raw upstream
	actOpen           // open the stream (raw is the <open/>)
	actRestart        // restart the stream after SASL
	actClose          // <close/>
	actRefuse         // end the session with a stream error
)

// A verdict is what judge makes of a client message.
type verdict struct {
	action int
	// raw is the element, from its "<" to its last ">", with no XML
	// declaration: what is written upstream for actRelay.
	raw []byte
	// condition and text are the stream error of actRefuse; err its
	// cause, for the log.
	condition, text string
	err             error
}

// judge works out what a client's message asks for in state st: each
// message must be one element standing alone (RFC 7395 §3.3.3) with
// nothing XMPP forbids (RFC 6120 §11.1), nested at most maxDepth deep;
// the framing elements are <open/> and <close/> in their namespace; the
// first must be <open/>.
func judge(msg []byte, st state, maxDepth int) verdict {
	el, err := rawxml.Document(msg, rawxml.Options{DefaultNS: nsClient, MaxDepth: maxDepth})
	if err != nil {
		return verdict{action: actRefuse, condition: documentCondition(err), err: err}
	}
	local := el.Name.Local
	switch {
	case el.NS == nsFraming && local == "open":
		if st == awaitingOpen {
			return verdict{action: actOpen, raw: el.Raw}
		}
		return verdict{action: actRestart, raw: el.Raw}
	case el.NS == nsFraming && local == "close":
		return verdict{action: actClose, raw: el.Raw}
	case local == "open" || local == "close" || (el.NS == nsStreams && local == "stream"):
		return verdict{action: actRefuse, condition: "invalid-namespace", text: "framing elements are in " + nsFraming}
	case st == awaitingOpen:
		return verdict{action: actRefuse, condition: "bad-format", text: "the first message must be <open/>"}
	}
	return verdict{action: actRelay, raw: el.Raw}
}

// documentCondition returns the stream error condition for a message
// rawxml.Document refused.
func documentCondition(err error) string {
	switch {
	case errors.Is(err, rawxml.ErrRestricted):
		return "restricted-xml"
	case errors.Is(err, rawxml.ErrLimit):
		return "policy-violation"
	}
	return "not-well-formed"
}
