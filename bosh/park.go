package bosh

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/boshd/boshd/internal/netpoll"
	"github.com/boshd/boshd/session"
)

// This file parks held requests (docs/design/002): a request still held
// after park_after is taken from net/http (http.Hijacker) and waits as a
// small struct with no goroutine, its client's socket watched for a
// hang-up by the handler's netpoll.Poller. When the session answers, a
// goroutine writes the response and gives the connection back to the
// server through the Listener it came from.

// parkedWriteTimeout bounds writing the response of a parked request.
const parkedWriteTimeout = 30 * time.Second

// wakeup tells a parked request that its answer is ready, by calling
// onFire. (Until it is parked, the request waits on its session.Call.)
type wakeup struct {
	mu     sync.Mutex
	fired  bool
	onFire func() // set once parked
}

// fire is the request's session.Start notify function: it runs after the
// session's lock is released, and is quick.
func (w *wakeup) fire() {
	w.mu.Lock()
	if w.fired {
		w.mu.Unlock()
		return
	}
	w.fired = true
	f := w.onFire
	w.mu.Unlock()
	if f != nil {
		f()
	}
}

// arm makes fire call f, now if it has fired already. f must be quick.
func (w *wakeup) arm(f func()) {
	w.mu.Lock()
	w.onFire = f
	fired := w.fired
	w.mu.Unlock()
	if fired {
		f()
	}
}

// parkTimers holds stopped timers for the wait before parking, which
// every held request makes: reusing them spares the collector a timer
// and its channel per request.
var parkTimers = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}}

// handle hands req to s and returns its response, as Session.Handle does,
// unless the request was parked: then parked is true and the response
// will be written by a goroutine started when it is ready.
func (h *Handler) handle(w *responseWriter, r *http.Request, s *session.Session, req session.Request) (resp *session.Response, sent func(), parked bool, err error) {
	origin, rc := h.parkable(r)
	if rc == nil {
		call := s.Start(req, nil)
		w.leave() // held or answered: the session may be moved
		resp, sent, err = call.Wait(r.Context())
		return resp, sent, false, err
	}
	wake := new(wakeup)
	call := s.Start(req, wake.fire)
	w.leave()
	if !call.Ready() {
		if after := h.cfg.ParkAfter; after > 0 {
			t := parkTimers.Get().(*time.Timer)
			t.Reset(after)
			call.WaitReady(r.Context(), t.C)
			t.Stop() // since Go 1.23, no stale tick can be received after Stop
			parkTimers.Put(t)
		}
		if !call.Ready() && r.Context().Err() == nil && h.park(w, r, s, call, wake, origin.ln) {
			return nil, nil, true, nil
		}
	}
	resp, sent, err = call.Wait(r.Context())
	return resp, sent, false, err
}

// parkable returns where r's connection came from and the socket to watch
// if r may be parked: parking is on, r is HTTP/1.1 with keep-alive, and its
// connection is a socket (plain or TLS) from a Listener. Otherwise rc is
// nil.
func (h *Handler) parkable(r *http.Request) (origin *connOrigin, rc syscall.RawConn) {
	if h.poller == nil || h.g.Stopping() || r.ProtoMajor != 1 || r.ProtoMinor != 1 || r.Close {
		return nil, nil
	}
	origin = originOf(r.Context())
	if origin == nil {
		return nil, nil
	}
	return origin, netpoll.RawConnOf(origin.conn)
}

// parkedRequest is a held request whose connection was taken from
// net/http.
type parkedRequest struct {
	h     *Handler
	s     *session.Session
	call  *session.Call
	conn  net.Conn
	ln    *Listener
	watch *netpoll.Watch // the client's socket, watched for a hang-up; nil if not
	start time.Time

	header     http.Header // set before the connection was taken: CORS
	gzip       bool
	rid        uint64
	in         int  // the request body's length
	closeAfter bool // close the connection after the response
}

// park takes r's connection from net/http and leaves the request waiting
// for its answer with no goroutine: its client's socket watched by the
// poller, its wakeup armed to start the goroutine that writes the answer.
// It reports false if the connection could not be taken: the caller then
// waits as usual.
func (h *Handler) park(w *responseWriter, r *http.Request, s *session.Session, call *session.Call, wake *wakeup, ln *Listener) bool {
	if !h.parked.enter(1) {
		return false // shutting down
	}
	header := w.Header().Clone()
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		h.parked.leave()
		return false
	}
	p := &parkedRequest{
		h: h, s: s, call: call, conn: conn, ln: ln,
		start: time.Now(), header: header, gzip: w.gzip, rid: w.rid, in: w.in,
	}
	w.parked = true
	h.parkedNow.Add(1)
	if n := brw.Reader.Buffered(); n > 0 {
		// The client sent more on this connection (HTTP pipelining),
		// so it has not gone: nothing to watch. What it sent is served
		// after the response, except over TLS, where the connection
		// cannot go back to net/http as TLS with bytes in front of it.
		if _, isTLS := conn.(*tls.Conn); isTLS {
			p.closeAfter = true
		} else {
			pending, _ := brw.Reader.Peek(n)
			p.conn = &prefixConn{Conn: conn, prefix: bytes.Clone(pending)}
		}
	} else if rc := netpoll.RawConnOf(conn); rc != nil {
		// XEP-0124 §14.3: a client that goes away is noticed at once. If the
		// socket cannot be watched, it is noticed on writing.
		p.watch, err = h.poller.Watch(rc, netpoll.HangUp, p.hungUp)
		if err != nil {
			h.log.Debug("parked request not watched", "err", err)
		}
	}
	h.parked.add(p)
	wake.arm(p.answered)
	return true
}

// answered is called, by the goroutine that answered the request, when
// the answer is ready.
func (p *parkedRequest) answered() { go p.finish() }

// hungUp is called, on the poller's goroutine, when the client closed its
// connection.
func (p *parkedRequest) hungUp() { go p.gone() }

// finish writes the answer and gives the connection back, unless the
// client went away first.
func (p *parkedRequest) finish() {
	if p.watch != nil && !p.watch.Stop() {
		return // gone, which hungUp started, does the rest
	}
	defer p.done()
	defer p.recoverPanic()
	resp, sent, _ := p.call.Wait(context.Background())
	ok := p.respond(resp)
	sent()
	if !ok {
		return
	}
	if p.nextSoon() {
		p.ln.giveBack(p.conn)
		return
	}
	p.ln.rest(p.conn, p.h.poller)
}

// nextWait is how long the goroutine that wrote a parked request's answer
// waits for the client's next request on the connection before resting
// it in the poller: BOSH clients send the next request at once, and
// waiting here on the runtime poller costs less than a round trip through
// the epoll set.
const nextWait = 100 * time.Millisecond

// nextSoon reports whether the client sent more on the connection within
// nextWait.
func (p *parkedRequest) nextSoon() bool {
	rc := netpoll.RawConnOf(p.conn)
	if rc == nil {
		return false
	}
	p.conn.SetReadDeadline(time.Now().Add(nextWait))
	defer p.conn.SetReadDeadline(time.Time{})
	return netpoll.AwaitReadable(rc) == nil
}

// gone forgets the request of a client that closed its connection
// (XEP-0124 §14.3); the response, if any, stays cached.
func (p *parkedRequest) gone() {
	defer p.done()
	defer p.recoverPanic()
	p.call.Abandon()
	p.conn.Close()
	p.h.metrics.Request("gone", time.Since(p.start).Seconds())
}

// done counts the request out of the handler's parked ones.
func (p *parkedRequest) done() {
	p.h.parked.remove(p)
	p.h.parkedNow.Add(-1)
	p.h.parked.leave()
}

// respond writes resp to the client, with the headers writeBody gives it.
// It reports whether the connection may serve more requests.
func (p *parkedRequest) respond(resp *session.Response) bool {
	wr := &wireResponse{header: p.header}
	rw := &responseWriter{ResponseWriter: wr, gzip: p.gzip}
	setOutcome(rw, responseOutcome(resp))
	writeResponse(rw, p.h.status(p.s, resp), p.s.Params.ContentType, resp)
	closing := p.closeAfter || p.ln.closed() || p.ln.stopped.Load()
	p.conn.SetDeadline(time.Now().Add(parkedWriteTimeout))
	_, err := p.conn.Write(wr.wire(closing))
	outcome := rw.outcome
	if outcome == "" {
		outcome = "ok"
	}
	if err != nil {
		outcome = "gone"
	}
	p.h.metrics.Request(outcome, time.Since(p.start).Seconds())
	p.h.metrics.Bytes(p.in, rw.size)
	if err != nil || closing {
		p.conn.Close()
		return false
	}
	p.conn.SetDeadline(time.Time{})
	return true
}

// recoverPanic turns a panic of a parked request into an
// internal-server-error for its client, as Handler.recoverPanic does for
// requests in net/http.
func (p *parkedRequest) recoverPanic() {
	v := recover()
	if v == nil {
		return
	}
	p.h.log.Error("panic serving a parked request", "panic", v, "stack", string(debug.Stack()))
	resp := p.s.Fail(p.rid, session.InternalServerError)
	p.closeAfter = true
	p.respond(resp)
}

// wireResponse is an http.ResponseWriter that keeps a response to write
// on a connection taken from net/http.
type wireResponse struct {
	header http.Header
	status int
	body   []byte
}

func (w *wireResponse) Header() http.Header { return w.header }

func (w *wireResponse) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *wireResponse) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.body = append(w.body, p...)
	return len(p), nil
}

// wire returns the response as HTTP/1.1 puts it on the wire, with the Date
// header net/http would add, and Connection: close if closing.
func (w *wireResponse) wire(closing bool) []byte {
	status := w.status
	if status == 0 {
		status = http.StatusOK
	}
	if w.header.Get("Date") == "" {
		w.header.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	}
	if closing {
		w.header.Set("Connection", "close")
	}
	var b bytes.Buffer
	b.Grow(256 + len(w.body))
	b.WriteString("HTTP/1.1 ")
	b.WriteString(strconv.Itoa(status))
	b.WriteByte(' ')
	b.WriteString(http.StatusText(status))
	b.WriteString("\r\n")
	w.header.Write(&b)
	b.WriteString("\r\n")
	b.Write(w.body)
	return b.Bytes()
}

// prefixConn is a connection with bytes already read from it in front.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// parkedSet is a Handler's parked requests not yet written: by session
// and rid, for moving them with their sessions (move.go), and counted, so
// that Shutdown waits for their answers.
type parkedSet struct {
	mu     sync.Mutex
	m      map[parkKey]*parkedRequest // guarded by mu
	closed bool                       // guarded by mu: Shutdown waits for writers; none enters
	// writers counts the requests entered and not yet left. Its Add is
	// called under mu and only while the set is open, never after the
	// Wait of closeWait began (sync.WaitGroup's rule, which the race
	// detector enforces: a request parked by a handler still running
	// as the server shut down once broke it).
	writers sync.WaitGroup
}

type parkKey struct {
	s   *session.Session
	rid uint64
}

// enter counts n more requests about to be parked, unless Shutdown has
// begun waiting for them: it reports whether it did. Each request entered
// leaves once written or let go.
func (ps *parkedSet) enter(n int) bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.closed {
		return false
	}
	ps.writers.Add(n)
	return true
}

// leave counts out a request entered.
func (ps *parkedSet) leave() { ps.writers.Done() }

// closeWait lets no more requests enter and waits until those that did
// have left.
func (ps *parkedSet) closeWait() {
	ps.mu.Lock()
	ps.closed = true
	ps.mu.Unlock()
	ps.writers.Wait()
}

func (ps *parkedSet) add(p *parkedRequest) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.m == nil {
		ps.m = make(map[parkKey]*parkedRequest)
	}
	ps.m[parkKey{p.s, p.rid}] = p
}

func (ps *parkedSet) remove(p *parkedRequest) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.m[parkKey{p.s, p.rid}] == p {
		delete(ps.m, parkKey{p.s, p.rid})
	}
}

func (ps *parkedSet) get(s *session.Session, rid uint64) *parkedRequest {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.m[parkKey{s, rid}]
}
