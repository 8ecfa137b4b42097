package bosh

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/gob"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"

	"github.com/boshd/boshd/internal/handoff"
	"github.com/boshd/boshd/internal/netpoll"
	"github.com/boshd/boshd/session"
	"github.com/boshd/boshd/xmpp"
)

// This file moves BOSH sessions to the new process of a live upgrade
// (docs/design/005-live-upgrade.md, "What moves"). The old process walks
// its sessions (MoveSessions): one that is quiet, with plaintext
// upstreams and every held request parked on a plain connection, is
// frozen (session.Session.Freeze), and a record of it goes to the new
// process with its sockets: the upstreams' and the held requests'
// client connections. The new process restores it (RestoreMoved) and
// answers; only then does the old one forget it, closing its copies of
// the sockets (the TCP connections live on in the new process: the
// server and the client see nothing). The Listener's connections resting
// between requests move the same way, each in a record of its own.
//
// How the records travel is the caller's (cmd/boshd, over
// internal/handoff's move socket): a MoveSender.

// moveVersion is the version of moveRecord's encoding: a process
// restores only records of its own version, and answers the others
// refused (the old process then keeps the session).
const moveVersion = 1

// moveRecord is what a record carries, gob-encoded: a session, or a
// resting connection (Session nil). Its descriptors are, in order, the
// sockets of the session's open upstream streams and the client
// connections of its held requests; a resting connection's alone.
type moveRecord struct {
	Version int
	Session *session.State
	// Conns are the upstream streams' states, in the order of
	// Session.Streams; a closed stream's is zero.
	Conns []xmpp.ConnState
	// Held are the parked requests, in the order of Session.Held.
	Held []movedRequest
}

// movedRequest is what a parked request is besides its session's part
// and its connection: what its answer is written with.
type movedRequest struct {
	RID        uint64
	Header     http.Header
	Gzip       bool
	In         int
	Start      time.Time
	CloseAfter bool
}

// ErrMoveRefused is the error of a MoveSender whose record the new
// process did not take: what it carries stays in this process.
var ErrMoveRefused = errors.New("bosh: the new process did not take it")

// A MoveSender sends one record, data with duplicates of fds (which stay
// the caller's), to the new process, and returns once it answered: nil
// if it took what the record carries; an error matching ErrMoveRefused if
// it did not; any other error if the way to it is broken (nothing more
// is sent).
type MoveSender func(data []byte, fds []int) error

// MoveResult counts what MoveSessions did.
type MoveResult struct {
	// Moved sessions are the new process's now; Failed ones it did not
	// take (a refused record, the way to it broken, or no answer), and
	// Kept ones could not move (a TLS upstream or client connection, or
	// never quiet within the bound): this process serves both to their
	// end.
	Moved, Failed, Kept int
	// Conns are the resting connections moved.
	Conns int
	// Took is how long the hand-over took.
	Took time.Duration
}

// maxKeptLogged is how many kept sessions a hand-over logs, each with why.
const maxKeptLogged = 10

// MoveSessions moves every session it can to the new process through
// send, then the Listener ln's resting connections: sessions are taken
// in batches, and those that are busy are tried again
// (handoff.MoveAll), for bound at most, and then kept, as are those that
// cannot move. A busy session stays closed to requests (Freeze) while it
// becomes quiet; one not quiet within max(1 s, 2×park_after) is let in
// again for as long before it is tried again. MoveSessions returns early,
// keeping the rest, when ctx ends or the way to the new process breaks.
// Call it once this process no longer accepts (Listener.StopAccepting)
// and forwards to the new one (SetSuccessor).
func (h *Handler) MoveSessions(ctx context.Context, send MoveSender, ln *Listener, bound time.Duration) MoveResult {
	start := time.Now()
	var res MoveResult
	why := make(map[*session.Session]error) // the last reason a session did not move
	logged := 0
	kept := func(s *session.Session, err error) {
		res.Kept++
		if logged < maxKeptLogged {
			logged++
			h.log.Info("upgrade: session kept: this process serves it to its end", "sid", s.LogID(), "why", err)
		}
	}
	try := func(s *session.Session) handoff.Try {
		switch err := h.moveOne(s, send); {
		case err == nil:
			res.Moved++
		case errors.Is(err, session.ErrBusy):
			why[s] = err
			return handoff.Busy
		case errors.Is(err, errEnded):
			s.Thaw()
		case errors.Is(err, session.ErrCannotMove):
			kept(s, err)
		case errors.Is(err, ErrMoveRefused):
			res.Failed++
			h.log.Warn("upgrade: the new process did not take a session; this process serves it to its end", "sid", s.LogID(), "err", err)
		default:
			res.Failed++
			h.log.Error("upgrade: moving sessions stopped: this process serves those left to their end", "err", err)
			return handoff.Broken
		}
		return handoff.Settled
	}
	gateMax := max(time.Second, 2*h.cfg.ParkAfter)
	left, broken := handoff.MoveAll(ctx, h.sessions.Sessions(), bound, gateMax, try, (*session.Session).Thaw)
	for _, s := range left {
		s.Thaw() // if Freeze left it closed
		if !s.Ended() {
			kept(s, why[s])
		}
	}
	if !broken && ln != nil {
		res.Conns = h.moveResting(send, ln)
	}
	res.Took = time.Since(start)
	h.metrics.UpgradeMoved(res.Moved, res.Failed, res.Kept)
	return res
}

// errEnded is moveOne's error for a session that ended meanwhile.
var errEnded = errors.New("bosh: the session has ended")

// moveOne moves s, or returns why not: session.ErrBusy (try again),
// session.ErrCannotMove or errEnded (kept), or send's error (the
// session thawed and kept).
func (h *Handler) moveOne(s *session.Session, send MoveSender) (err error) {
	if s.Ended() {
		return errEnded
	}
	// Held requests that are not parked (held in net/http, or come
	// through the new process over the handoff socket) are answered
	// first: their clients' next requests wait for the move.
	f, err := s.Freeze(func(rid uint64) bool { return h.parked.get(s, rid) != nil })
	if err != nil {
		return err
	}
	var fds []int
	for _, fd := range f.FDs {
		if fd >= 0 {
			fds = append(fds, fd)
		}
	}
	defer func() { closeFDs(fds) }() // ours, sent or not
	// The held requests: each parked on a plain connection, its
	// hang-up watch stopped (the session is frozen: nothing answers
	// it meanwhile).
	held := make([]*parkedRequest, 0, len(f.State.Held))
	defer func() {
		if err != nil {
			for _, p := range held {
				p.rewatch()
			}
			s.Thaw()
		}
	}()
	rec := moveRecord{Version: moveVersion, Session: &f.State, Conns: f.Conns}
	for _, hs := range f.State.Held {
		p := h.parked.get(s, hs.RID)
		switch {
		case p == nil:
			return fmt.Errorf("%w: request %d held, not parked", session.ErrBusy, hs.RID)
		case plainConn(p.conn) == nil:
			return fmt.Errorf("%w: request %d held on a TLS connection", session.ErrCannotMove, hs.RID)
		case p.watch == nil:
			return fmt.Errorf("%w: request %d not watched", session.ErrCannotMove, hs.RID)
		case !p.watch.Stop():
			return fmt.Errorf("%w: request %d's client went away", session.ErrBusy, hs.RID)
		}
		held = append(held, p)
		fd, err := dupSocket(plainConn(p.conn))
		if err != nil {
			return fmt.Errorf("%w: request %d: %v", session.ErrCannotMove, hs.RID, err)
		}
		fds = append(fds, fd)
		rec.Held = append(rec.Held, movedRequest{RID: p.rid, Header: p.header, Gzip: p.gzip, In: p.in, Start: p.start, CloseAfter: p.closeAfter})
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(&rec); err != nil {
		return fmt.Errorf("%w: encoding: %v", session.ErrCannotMove, err)
	}
	if err := send(buf.Bytes(), fds); err != nil {
		return err
	}
	// The new process has it. A request waiting to enter it (Enter)
	// goes there from now on, turned back if it came from there.
	h.moved.Store(s.ID, struct{}{})
	s.Moved()
	for _, p := range held {
		h.parked.remove(p)
		p.conn.Close() // close, not shutdown: the connection lives on there
		p.done()
	}
	return nil
}

// moveResting moves ln's resting connections on plain sockets, and
// returns how many moved; one the new process does not take rests here
// again.
func (h *Handler) moveResting(send MoveSender, ln *Listener) int {
	n := 0
	conns := ln.takeResting()
	for i, c := range conns {
		fd, err := dupSocket(plainConn(c))
		if err == nil {
			var buf bytes.Buffer
			if err = gob.NewEncoder(&buf).Encode(&moveRecord{Version: moveVersion}); err == nil {
				err = send(buf.Bytes(), []int{fd})
			}
			syscall.Close(fd)
		}
		if err != nil {
			for _, c := range conns[i:] {
				ln.rest(c, h.poller)
			}
			if !errors.Is(err, ErrMoveRefused) {
				h.log.Warn("upgrade: resting connections not moved", "left", len(conns)-i, "err", err)
			}
			return n
		}
		c.Close()
		n++
	}
	return n
}

// RestoreMoved takes what a record from the old process of a live
// upgrade carries (MoveSessions): a session, registered under its own sid
// with its upstreams going on from their sockets and its held requests
// parked on their client connections, to be answered from here; or a
// resting connection, served through ln. fds are the record's
// descriptors, used or closed whatever happens. An error means nothing
// was taken: the old process keeps it.
//
// What it took does nothing until Commit: the old process may still keep
// it (it did not get the answer), and nothing must be read or written
// here meanwhile. A session is registered, but closed to requests (they
// wait), its upstreams not read.
func (h *Handler) RestoreMoved(data []byte, fds []int, ln *Listener) (r *Restored, err error) {
	defer func() {
		if err != nil {
			closeFDs(fds)
		}
	}()
	var rec moveRecord
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode(&rec); err != nil {
		return nil, fmt.Errorf("bosh: a moved record: %w", err)
	}
	if rec.Version != moveVersion {
		return nil, fmt.Errorf("bosh: a moved record of version %d, want %d", rec.Version, moveVersion)
	}
	if rec.Session == nil {
		if len(fds) != 1 {
			return nil, fmt.Errorf("bosh: a moved connection with %d descriptors", len(fds))
		}
		c, err := fileConn(fds[0])
		fds = nil // fileConn closed it
		if err != nil {
			return nil, err
		}
		return &Restored{h: h, ln: ln, conn: ln.adopt(c)}, nil
	}
	return h.restoreSession(&rec, fds, ln)
}

// Restored is what RestoreMoved took, waiting for the old process to let
// it go.
type Restored struct {
	h      *Handler
	ln     *Listener
	conn   net.Conn // a resting connection; nil for a session
	s      *session.Session
	parked []*parkedRequest
}

// Commit puts what was restored in service: the old process has let it
// go (it sent the next record, or said it is done, or is gone).
func (r *Restored) Commit() {
	if r.conn != nil {
		r.ln.rest(r.conn, r.h.poller)
		return
	}
	r.s.Thaw()
	r.h.metrics.UpgradeReceived()
}

// Abort gives back what was restored: the old process keeps it. Nothing
// is written; the sockets are closed (the connections live on in the old
// process).
func (r *Restored) Abort() {
	if r.conn != nil {
		r.conn.Close()
		return
	}
	for _, p := range r.parked {
		if p.watch != nil && !p.watch.Stop() {
			continue // its client went away: gone does the rest
		}
		r.h.parked.remove(p)
		p.conn.Close()
		p.done()
	}
	r.s.Unrestore()
}

// restoreSession is RestoreMoved for a session.
func (h *Handler) restoreSession(rec *moveRecord, fds []int, ln *Listener) (*Restored, error) {
	st := rec.Session
	open := 0
	for _, x := range st.Streams {
		if !x.Closed {
			open++
		}
	}
	switch {
	case len(rec.Conns) != len(st.Streams) || len(rec.Held) != len(st.Held):
		return nil, fmt.Errorf("bosh: a moved session of %d streams and %d held requests, described by %d and %d", len(st.Streams), len(st.Held), len(rec.Conns), len(rec.Held))
	case len(fds) != open+len(st.Held):
		return nil, fmt.Errorf("bosh: a moved session of %d open streams and %d held requests, with %d descriptors", open, len(st.Held), len(fds))
	case h.g.Stopping() || !h.parked.enter(len(st.Held)):
		return nil, errors.New("bosh: shutting down")
	}
	// From here on every descriptor is turned into what owns it, and
	// that is let go on failure; each held request entered in h.parked
	// leaves when written or let go.
	var ups []session.Upstream
	var conns []*xmpp.Conn
	var clients []net.Conn
	ok := false
	defer func() {
		if ok {
			return
		}
		for range st.Held {
			h.parked.leave()
		}
		for _, c := range conns {
			c.Drop() // nothing written: the old process goes on with it
		}
		for _, c := range clients {
			c.Close()
		}
	}()
	next := 0
	var errs []error
	for i, x := range st.Streams {
		if x.Closed {
			ups = append(ups, nil)
			continue
		}
		fd := fds[next]
		next++
		f := os.NewFile(uintptr(fd), "upstream")
		c, err := h.g.Resume(rec.Conns[i], f)
		f.Close()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		conns = append(conns, c)
		ups = append(ups, c)
	}
	for range st.Held {
		c, err := fileConn(fds[next])
		next++
		if err != nil {
			errs = append(errs, err)
			continue
		}
		clients = append(clients, ln.adopt(c))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	release := h.g.Adopt(st.Params.Client)
	s, calls, err := h.sessions.RestoreClosed(*st, ups, release)
	if err != nil {
		release()
		return nil, err
	}
	ok = true
	r := &Restored{h: h, ln: ln, s: s}
	for i, call := range calls {
		m := rec.Held[i]
		p := &parkedRequest{
			h: h, s: s, call: call, conn: clients[i], ln: ln,
			start: m.Start, header: m.Header, gzip: m.Gzip, rid: m.RID, in: m.In, closeAfter: m.CloseAfter,
		}
		if p.header == nil {
			p.header = make(http.Header)
		}
		h.parkedNow.Add(1)
		if rc := netpoll.RawConnOf(p.conn); rc != nil && h.poller != nil {
			if p.watch, err = h.poller.Watch(rc, netpoll.HangUp, p.hungUp); err != nil {
				h.log.Debug("moved request not watched", "err", err)
				p.watch = nil
			}
		}
		h.parked.add(p)
		r.parked = append(r.parked, p)
		wake := new(wakeup)
		wake.arm(p.answered)
		call.Notify(wake.fire)
	}
	return r, nil
}

// rewatch watches a parked request's client for a hang-up again, after
// a move that did not happen.
func (p *parkedRequest) rewatch() {
	rc := netpoll.RawConnOf(p.conn)
	if rc == nil || p.h.poller == nil {
		p.watch = nil
		return
	}
	w, err := p.h.poller.Watch(rc, netpoll.HangUp, p.hungUp)
	if err != nil {
		p.h.log.Debug("parked request not watched again", "err", err)
		w = nil
	}
	p.watch = w
}

// plainConn returns the TCP connection under c, counted or not, or nil
// if c is not one that can move: TLS (crypto/tls cannot export its
// keys), or with bytes read ahead of what net/http has seen (prefixConn).
func plainConn(c net.Conn) *net.TCPConn {
	if cc, ok := c.(*countedConn); ok {
		c = cc.Conn
	}
	switch c := c.(type) {
	case *net.TCPConn:
		return c
	case *tls.Conn, *prefixConn:
		return nil
	}
	return nil
}

// dupSocket returns a duplicate of c's descriptor, close-on-exec, never
// through os.File.Fd (which would put the socket in blocking mode).
func dupSocket(c *net.TCPConn) (int, error) {
	if c == nil {
		return -1, errors.New("not a plain TCP connection")
	}
	return handoff.Dup(c)
}

// fileConn returns the connection of descriptor fd, which it closes.
func fileConn(fd int) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "client")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("bosh: a moved connection: %w", err)
	}
	return c, nil
}

// closeFDs closes raw descriptors.
func closeFDs(fds []int) {
	for _, fd := range fds {
		if fd >= 0 {
			syscall.Close(fd)
		}
	}
}
