package wsbind

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/boshd/boshd/internal/netpoll"
	"github.com/boshd/boshd/metrics"
	"github.com/boshd/boshd/xmpp"
)

// Reasons a session ends: the label of
// boshd_websocket_sessions_ended_total.
const (
	endClientClose    = "client_close"    // the client sent <close/>
	endServerClose    = "server_close"    // the server ended its stream
	endStreamError    = "stream_error"    // the server sent a stream error
	endRefused        = "refused"         // <open/> refused: a domain not served, or the server refused the stream
	endUpstreamFailed = "upstream_failed" // the upstream could not be dialled
	endUpstreamLost   = "upstream_lost"   // the upstream connection broke
	endClientLost     = "client_lost"     // the WebSocket ended without <close/>
	endPingTimeout    = "ping_timeout"    // the client was silent for two ping intervals
	endBadInput       = "bad_input"       // the client broke RFC 6455 or RFC 7395
	endShutdown       = "shutdown"        // Handler.Shutdown
	endHostGone       = "host_gone"       // its domain is no longer served (EndUnserved)
)

// Timeouts of a session's client connection.
const (
	// incompleteTimeout bounds reading a message the client has begun,
	// as the HTTP server bounds reading a request (design 003).
	incompleteTimeout = 30 * time.Second
	// closeWait bounds waiting for the client's close frame once boshd
	// has sent its own (RFC 6455 §7.1.1: the server closes the TCP
	// connection once the handshake is over).
	closeWait = 2 * time.Second
	// defaultWriteTimeout bounds a write to the client when pings are
	// off; otherwise the ping interval does.
	defaultWriteTimeout = 30 * time.Second
)

// Where a session stands.
type state uint8

const (
	awaitingOpen state = iota // upgraded; the client's <open/> has not come
	opened                    // the upstream stream is open
)

// A session relays between one client's WebSocket and its upstream XMPP
// stream. Two goroutines may run for it, each only while it has work: the
// client's reader (readClient: from the upgrade until the client's socket
// is parked, and again each time it wakes) and the upstream's reader
// (readUpstream: likewise with the upstream's socket). Client messages go
// upstream on the first, server elements to the client on the second.
type session struct {
	h       *Handler
	id      string   // immutable: the id logs name the session by
	conn    net.Conn // immutable: the client's, hijacked
	raw     syscall.RawConn
	secure  bool   // immutable: conn is TLS
	ip      string // immutable: the client's address, as counted
	release func() // gives the session's slot back; idempotent
	w       writer // writes to conn, one frame at a time
	bucket  int    // the pinger's bucket; guarded by pinger.mu
	// closeOnce closes conn (closeConn).
	closeOnce sync.Once

	// lastRead and lastWrite are the times (UnixNano) of the last frame
	// read from the client and written to it, for the pinger.
	lastReadNs, lastWriteNs atomic.Int64

	// Owned by the goroutine reading the client, one at a time.
	src clientSource
	br  *bufio.Reader // pooled while reading; nil while parked
	msg []byte        // the message buffer: kept between messages if small, let go when parked

	// Owned by the goroutine reading the upstream.
	announce bool // the next element starts a restarted stream: <open/> first

	// mu guards the fields below; it is a leaf, never held during I/O
	// other than setting a deadline.
	mu          sync.Mutex
	state       state
	up          *xmpp.Conn     // set once by open, before its reader starts
	domain      string         // the <open/>'s to, once served
	watch       *netpoll.Watch // the parked client socket's; nil if not parked
	resumable   bool           // the client enabled resumable stream management
	ended       bool
	lingerUntil time.Time // once ended: the read deadline for the client's close frame

	// Moving the session to another process (move.go). door is closed
	// while the session is made quiet: its sockets park at once, pings
	// skip it. handing is set while its sockets' duplicates are on
	// their way: no reader runs or starts, nothing is written, and an
	// end asked for meanwhile waits in pendingEnd until the move
	// fails, or is dropped once it succeeds. parkWaiting: the client's
	// reader waits park_after before parking, which closing the door
	// cuts short.
	door        bool
	handing     bool
	parkWaiting bool
	pendingEnd  *pendingEnd
}

// pendingEnd is an end asked for while the session was being handed over.
type pendingEnd struct {
	e     ending
	cause error
}

// newSession returns the session of an upgraded connection.
func newSession(h *Handler, conn net.Conn, buffered []byte, ip string, secure bool, release func()) *session {
	s := &session{
		h: h, id: newID(), conn: conn, raw: netpoll.RawConnOf(conn),
		secure: secure, ip: ip, release: release,
	}
	s.src = clientSource{prefix: buffered, conn: conn}
	s.w = writer{conn: conn, timeout: defaultWriteTimeout}
	if d := h.cfg.WebSocketPingInterval; d > 0 {
		s.w.timeout = d
	}
	now := time.Now().UnixNano()
	s.lastReadNs.Store(now)
	s.lastWriteNs.Store(now)
	return s
}

// newID returns a random session id for logs.
func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// logger returns the logger of the session's lines, which name it by its
// id. It is made for each line rather than kept: a session logs a few
// lines in its life, and a kept logger would cost every idle session a
// few hundred bytes.
func (s *session) logger() *slog.Logger { return s.h.log.With("ws", s.id) }

func (s *session) lastRead() time.Time  { return time.Unix(0, s.lastReadNs.Load()) }
func (s *session) lastWrite() time.Time { return time.Unix(0, s.lastWriteNs.Load()) }

// streamDomain returns the domain of the session's open stream, "" if
// none is open.
func (s *session) streamDomain() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != opened {
		return ""
	}
	return s.domain
}

// isEnded reports whether end has been called.
func (s *session) isEnded() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended
}

// send writes msg to the client as one text message.
func (s *session) send(msg []byte) error {
	err := s.w.writeText(msg)
	s.lastWriteNs.Store(time.Now().UnixNano())
	if err == nil {
		s.h.metrics.WebSocketMessage(metrics.Out, len(msg))
	}
	return err
}

// ping pings the client, for the pinger; not a session being moved.
func (s *session) ping() {
	s.mu.Lock()
	skip := s.ended || s.door
	s.mu.Unlock()
	if skip {
		return
	}
	err := s.w.writePing(nil)
	if errors.Is(err, errFrozen) {
		return // it closed the door meanwhile: nothing written
	}
	s.lastWriteNs.Store(time.Now().UnixNano())
	if err != nil {
		s.end(endClientLost, err)
	}
}

// An ending says how a session ends: what the client is told and how the
// upstream stream is ended.
type ending struct {
	reason string // the metric's label
	// open sends an <open/> first: a stream error raised before the
	// stream was open (RFC 7395 §3.5).
	open bool
	// streamError, if any, is sent before <close/>.
	streamError []byte
	// framing sends <close/> before the close frame.
	framing bool
	// code and why are the close frame's; code 0: none, the client is
	// gone (the TCP connection is closed at once).
	code closeCode
	why  string
	// drop ends the upstream without </stream:stream>, so that a server
	// with stream management keeps the session for the client to resume.
	drop bool
}

// endingFor returns how a session ends for reason, with err the cause
// (a *closeError, a stream error's element, …) where there is one.
func endingFor(reason string, streamError []byte, code closeCode, why string) ending {
	e := ending{reason: reason, streamError: streamError, code: code, why: why}
	switch reason {
	case endClientLost, endPingTimeout:
		e.code, e.drop = 0, true
	case endUpstreamLost:
		e.drop = true
	default:
		e.framing = code == closeNormal || code == closeMessageTooBig || code == closeServiceRestart
	}
	return e
}

// end ends the session for reason (once: later calls do nothing), err
// being what caused it, for the log. It tells the client, ends the
// upstream, gives the session's slot back and forgets the session. Its
// writes to the client are bounded by the write timeout; it does not wait
// for the client's close frame, which the client's reader reads, bounded
// by closeWait, before closing the connection.
func (s *session) end(reason string, err error) {
	s.finish(s.endingOf(reason, err), err)
}

// endingOf works out the ending of a session for reason and err.
func (s *session) endingOf(reason string, err error) ending {
	switch reason {
	case endClientLost, endPingTimeout:
		return endingFor(reason, nil, 0, "")
	case endUpstreamLost:
		return endingFor(reason, nil, closeInternalError, "upstream connection lost")
	case endServerClose, endClientClose:
		return endingFor(reason, nil, closeNormal, "")
	case endShutdown:
		s.mu.Lock()
		resumable, open := s.resumable, s.state == opened
		s.mu.Unlock()
		if resumable {
			// The client resumes elsewhere: no stream error, which it
			// would take as the end of its session.
			e := endingFor(reason, nil, closeServiceRestart, "service restart")
			e.framing, e.drop = false, true
			return e
		}
		e := endingFor(reason, streamErrorXML("system-shutdown", ""), closeServiceRestart, "service restart")
		e.open = !open
		return e
	}
	return endingFor(reason, nil, closeNormal, "")
}

// endWith ends the session with a stream error of condition raised by
// boshd (not-well-formed, host-unknown, …): the error, <close/> (after an
// <open/> if the stream was not open) and close code 1000, and the
// upstream closed cleanly.
func (s *session) endWith(reason, condition, text string, err error) {
	e := endingFor(reason, streamErrorXML(condition, text), closeNormal, "")
	s.mu.Lock()
	e.open = s.state != opened
	s.mu.Unlock()
	s.finish(e, err)
}

// finish carries out e, once.
func (s *session) finish(e ending, cause error) {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	if s.handing {
		// Its sockets are on their way to another process: ended here
		// if it stays, forgotten if it goes (unhand, moved).
		if s.pendingEnd == nil {
			s.pendingEnd = &pendingEnd{e: e, cause: cause}
		}
		s.mu.Unlock()
		return
	}
	s.ended = true
	up, domain := s.up, s.domain
	restartReader := false
	if s.watch != nil && s.watch.Stop() {
		s.watch = nil
		s.h.parked.Add(-1)
		restartReader = e.code != 0
	}
	s.lingerUntil = time.Now().Add(closeWait)
	if e.code != 0 {
		s.conn.SetReadDeadline(s.lingerUntil)
	}
	s.mu.Unlock()

	if e.reason == endClientClose && up != nil {
		// RFC 7395 §3.6: </stream:stream> upstream, then <close/>.
		up.Close()
	}
	if e.code != 0 {
		var err error
		if e.open {
			err = s.send(appendOpen(nil, streamHeader{from: domain, version: "1.0"}))
		}
		if err == nil && e.streamError != nil {
			err = s.send(e.streamError)
		}
		if err == nil && e.framing {
			err = s.send([]byte(closeMessage))
		}
		if err == nil {
			err = s.w.writeClose(e.code, e.why)
		}
		if err != nil {
			e.code = 0 // the client is gone: nothing to wait for
		}
	}
	if e.code == 0 {
		s.closeConn()
	} else if restartReader {
		// The client's close frame is read by a reader like any frame.
		go s.readClient()
	}
	if up != nil {
		if e.drop {
			up.Drop()
		} else {
			up.Close()
		}
	}
	s.release()
	s.h.remove(s)
	s.h.metrics.WebSocketSessionEnded(e.reason)
	attrs := []any{"reason", e.reason}
	if e.code != 0 {
		attrs = append(attrs, "close_code", int(e.code))
	}
	if cause != nil {
		attrs = append(attrs, "err", cause)
	}
	s.logger().Info("websocket session ended", attrs...)
}

// closeConn closes the client's connection, once, and tells the handler,
// whose Shutdown waits for every client connection to be closed.
func (s *session) closeConn() {
	s.closeOnce.Do(func() {
		s.conn.Close()
		s.h.conns.Done()
	})
}

// cut closes both connections at once, for a Shutdown out of time.
func (s *session) cut() {
	s.closeConn()
	s.mu.Lock()
	up := s.up
	s.mu.Unlock()
	if up != nil {
		up.Drop()
	}
	s.end(endShutdown, nil)
}
