package wsbind

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/boshd/boshd/internal/handoff"
	"github.com/boshd/boshd/xmpp"
)

// This file moves WebSocket sessions to the new process of a live upgrade
// (docs/design/005-live-upgrade.md, "What moves"), as bosh moves BOSH
// sessions. The old process walks its sessions (MoveSessions): one whose
// client connection and upstream are plaintext, whose stream is open, and
// whose two sockets are parked (nothing read and not yet handled, no
// message begun, no write under way) is frozen, and a record of it goes to
// the new process with duplicates of the two sockets. The new process
// restores it (RestoreMoved) and answers; only then does the old one
// forget it, closing its copies of the sockets and writing nothing: the
// client and the server see the same TCP connections.

// ErrMoveRefused is the error of a MoveSender whose record the new
// process did not take: the session stays in this process.
var ErrMoveRefused = errors.New("wsbind: the new process did not take it")

// A MoveSender sends one record, data with duplicates of fds (which stay
// the caller's), to the new process, and returns once it answered: nil if
// it took the session; an error matching ErrMoveRefused if it did not;
// any other error if the way to it is broken (nothing more is sent). It
// is bosh.MoveSender's contract.
type MoveSender func(data []byte, fds []int) error

// MoveResult counts what MoveSessions did.
type MoveResult struct {
	// Moved sessions are the new process's now; Failed ones it did not
	// take (a refused record, the way to it broken), and Kept ones could
	// not move (TLS on either side, not open, or never quiet within the
	// bound): this process serves both to their end.
	Moved, Failed, Kept int
	// Took is how long the hand-over took.
	Took time.Duration
}

// moveVersion is the version of movedSession's encoding: a process
// restores only records of its own version.
const moveVersion = 1

// movePrefix starts every record of a WebSocket session, ahead of its gob
// encoding, so that a receiver tells it from a BOSH record (a gob stream
// from its first byte) and an older process, which knows no such record,
// fails to decode it and refuses it: the session then stays.
const movePrefix = "\x00boshd-websocket-session\n"

// IsMoveRecord reports whether data is a record of a WebSocket session
// (MoveSessions), for RestoreMoved, rather than a BOSH one.
func IsMoveRecord(data []byte) bool { return bytes.HasPrefix(data, []byte(movePrefix)) }

// movedSession is a moved session's record, gob-encoded after movePrefix.
// Its descriptors are the client's connection, then the upstream's.
type movedSession struct {
	Version int
	ID      string // for logs, kept across processes
	IP      string // the client's address, as counted by the gateway's limits
	Domain  string
	// Resumable: the client enabled resumable stream management.
	Resumable bool
	// Announce: the upstream's next element starts a restarted stream.
	Announce            bool
	LastRead, LastWrite time.Time
	Upstream            xmpp.ConnState
}

// Errors of freeze.
var (
	// errBusy: not quiet now (a socket not parked, a message under way,
	// the stream not open yet); try again.
	errBusy = errors.New("wsbind: session busy")
	// errCannotMove: it never can (TLS on either side, no socket to
	// pass).
	errCannotMove = errors.New("wsbind: session cannot move")
	// errEnded: it has ended.
	errEnded = errors.New("wsbind: session ended")
)

// maxKeptLogged is how many kept sessions a hand-over logs, each with why.
const maxKeptLogged = 10

// MoveSessions moves every session it can to the new process through
// send: sessions are taken in batches, and those that are busy are tried
// again (handoff.MoveAll, as bosh does), for bound at most, and then
// kept, as are those that cannot move. A busy session has its door
// closed meanwhile (its sockets park at once, pings skip it); one not
// quiet within max(1 s, 2×park_after) is let go on as long before it is
// tried again. MoveSessions returns early, keeping the rest, when ctx
// ends or the way to the new process breaks. Call it once this process
// no longer accepts.
func (h *Handler) MoveSessions(ctx context.Context, send MoveSender, bound time.Duration) MoveResult {
	start := time.Now()
	var res MoveResult
	h.mu.Lock()
	all := make([]*session, 0, len(h.sessions))
	for s := range h.sessions {
		all = append(all, s)
	}
	h.mu.Unlock()
	why := make(map[*session]error) // the last reason a session did not move
	logged := 0
	kept := func(s *session, err error) {
		res.Kept++
		if logged < maxKeptLogged {
			logged++
			s.logger().Info("upgrade: websocket session kept: this process serves it to its end", "why", err)
		}
	}
	try := func(s *session) handoff.Try {
		switch err := h.moveOne(s, send); {
		case err == nil:
			res.Moved++
		case errors.Is(err, errBusy):
			why[s] = err
			return handoff.Busy
		case errors.Is(err, errEnded):
		case errors.Is(err, errCannotMove):
			kept(s, err)
		case errors.Is(err, ErrMoveRefused):
			res.Failed++
			s.logger().Warn("upgrade: the new process did not take a websocket session; this process serves it to its end", "err", err)
		default:
			res.Failed++
			h.log.Error("upgrade: moving websocket sessions stopped: this process serves those left to their end", "err", err)
			return handoff.Broken
		}
		return handoff.Settled
	}
	gateMax := max(time.Second, 2*h.cfg.ParkAfter)
	left, _ := handoff.MoveAll(ctx, all, bound, gateMax, try, (*session).openDoor)
	for _, s := range left {
		s.openDoor()
		if !s.isEnded() {
			kept(s, why[s])
		}
	}
	res.Took = time.Since(start)
	h.metrics.UpgradeWebSocketMoved(res.Moved, res.Failed, res.Kept)
	return res
}

// moveOne moves s, or returns why not: errBusy (try again), errCannotMove
// or errEnded (kept), or send's error (the session goes on here).
func (h *Handler) moveOne(s *session, send MoveSender) error {
	rec, fds, err := s.freeze()
	if err != nil {
		return err
	}
	defer closeFDs(fds) // ours, sent or not
	var buf bytes.Buffer
	buf.WriteString(movePrefix)
	if err := gob.NewEncoder(&buf).Encode(&rec); err != nil {
		s.unhand(true)
		return fmt.Errorf("%w: encoding: %v", errCannotMove, err)
	}
	if err := send(buf.Bytes(), fds); err != nil {
		s.unhand(true)
		s.openDoor()
		return err
	}
	s.moved()
	return nil
}

// freeze takes a quiet session's record and duplicates of its two
// sockets (the client's, the upstream's), and leaves it handed over: no
// reader runs or starts, nothing is written, until moved or unhand. The
// first call closes the session's door (see session.door), which stays
// closed when freeze then fails with errBusy, so that both sockets park
// at once: call it again a moment later, and openDoor to give up.
func (s *session) freeze() (movedSession, []int, error) {
	s.mu.Lock()
	switch {
	case s.ended:
		s.mu.Unlock()
		return movedSession{}, nil, errEnded
	case s.handing:
		s.mu.Unlock()
		return movedSession{}, nil, fmt.Errorf("%w: being moved", errBusy)
	case s.secure:
		s.mu.Unlock()
		return movedSession{}, nil, fmt.Errorf("%w: a client connection over TLS", errCannotMove)
	case s.raw == nil || s.h.poller == nil:
		s.mu.Unlock()
		return movedSession{}, nil, fmt.Errorf("%w: its client connection is never parked", errCannotMove)
	case s.state != opened:
		s.mu.Unlock()
		return movedSession{}, nil, fmt.Errorf("%w: the stream is not open yet", errBusy)
	case s.up.Secure():
		s.mu.Unlock()
		return movedSession{}, nil, fmt.Errorf("%w: an upstream over TLS", errCannotMove)
	}
	up := s.up
	if !s.door {
		s.door = true
		up.ParkNow(true)
		if s.parkWaiting {
			s.conn.SetReadDeadline(time.Now()) // cuts park's wait short
		}
	}
	if s.watch == nil {
		s.mu.Unlock()
		return movedSession{}, nil, fmt.Errorf("%w: its client connection is not parked", errBusy)
	}
	if !s.watch.Stop() {
		// The watch fired: wake, waiting for mu, starts a reader.
		s.mu.Unlock()
		return movedSession{}, nil, fmt.Errorf("%w: the client sent more", errBusy)
	}
	s.watch = nil
	s.h.parked.Add(-1)
	s.handing = true
	rec := movedSession{Version: moveVersion, ID: s.id, IP: s.ip, Domain: s.domain, Resumable: s.resumable}
	s.mu.Unlock()

	cs, upfd, err := up.Handoff()
	if err != nil {
		s.unhand(false)
		return movedSession{}, nil, fmt.Errorf("%w: %v", errBusy, err)
	}
	// No reader runs: the upstream's watch was cancelled by Handoff, the
	// client's above; what they own is ours to read. A write under way
	// (a ping) ends before freeze returns; none starts after.
	s.w.freeze()
	sc, ok := s.conn.(syscall.Conn)
	if !ok {
		syscall.Close(upfd)
		s.w.thaw()
		s.unhand(true)
		return movedSession{}, nil, fmt.Errorf("%w: a %T has no descriptor", errCannotMove, s.conn)
	}
	cfd, err := handoff.Dup(sc)
	if err != nil {
		syscall.Close(upfd)
		s.w.thaw()
		s.unhand(true)
		return movedSession{}, nil, fmt.Errorf("%w: %v", errCannotMove, err)
	}
	rec.Announce = s.announce
	rec.LastRead, rec.LastWrite = s.lastRead(), s.lastWrite()
	rec.Upstream = cs
	return rec, []int{cfd, upfd}, nil
}

// unhand lets a session freeze handed over go on here: its client socket
// is parked again, its upstream's reader started again if Handoff
// succeeded (upHanded), its writer thawed, and an end asked for meanwhile
// carried out. Its door stays as it was.
func (s *session) unhand(upHanded bool) {
	s.w.thaw()
	s.mu.Lock()
	if !s.handing {
		s.mu.Unlock()
		return
	}
	s.handing = false
	pending := s.pendingEnd
	s.pendingEnd = nil
	read := !s.watchClient()
	s.mu.Unlock()
	if read {
		go s.readClient()
	}
	if upHanded {
		go s.readUpstream(false)
	}
	if pending != nil {
		s.finish(pending.e, pending.cause)
	}
}

// openDoor opens the door freeze closed: the session's sockets park
// after park_after again, and pings reach it.
func (s *session) openDoor() {
	s.mu.Lock()
	if !s.door {
		s.mu.Unlock()
		return
	}
	s.door = false
	up := s.up
	s.mu.Unlock()
	if up != nil {
		up.ParkNow(false)
	}
}

// moved forgets a session the new process has taken, writing nothing:
// its copies of the sockets are closed (Close, never Shutdown: the
// connections live on there), its slot given back, and it leaves the
// handler with no end counted.
func (s *session) moved() {
	s.mu.Lock()
	s.ended = true
	s.handing = false
	s.pendingEnd = nil
	up := s.up
	s.mu.Unlock()
	up.Drop()
	s.closeConn()
	s.release()
	s.h.remove(s)
	s.logger().Info("websocket session moved to the new process")
}

// RestoreMoved takes the session a record from the old process of a live
// upgrade carries (MoveSessions, IsMoveRecord): its client connection and
// its upstream going on from their sockets, fds (client, upstream), which
// are used or closed whatever happens. adopt, if not nil, counts the
// client connection as the listener counts those it accepts (and returns
// the connection to use). An error means nothing was taken: the old
// process keeps the session.
//
// The session does nothing until Commit: the old process may still keep
// it, and nothing must be read or written here meanwhile.
func (h *Handler) RestoreMoved(data []byte, fds []int, adopt func(net.Conn) net.Conn) (r *Restored, err error) {
	defer func() {
		if err != nil {
			closeFDs(fds)
		}
	}()
	if !IsMoveRecord(data) {
		return nil, errors.New("wsbind: not a moved websocket session")
	}
	var rec movedSession
	if err := gob.NewDecoder(bytes.NewReader(data[len(movePrefix):])).Decode(&rec); err != nil {
		return nil, fmt.Errorf("wsbind: a moved session: %w", err)
	}
	switch {
	case rec.Version != moveVersion:
		return nil, fmt.Errorf("wsbind: a moved session of version %d, want %d", rec.Version, moveVersion)
	case len(fds) != 2:
		return nil, fmt.Errorf("wsbind: a moved session with %d descriptors, want 2", len(fds))
	case h.isStopping() || h.g.Stopping():
		return nil, errors.New("wsbind: shutting down")
	}
	f := os.NewFile(uintptr(fds[0]), "client")
	nc, err := net.FileConn(f)
	f.Close()
	fds[0] = -1
	if err != nil {
		return nil, fmt.Errorf("wsbind: a moved session's client: %w", err)
	}
	if _, ok := nc.(*net.TCPConn); !ok {
		nc.Close()
		return nil, fmt.Errorf("wsbind: a moved session's client: a %T, not a TCP connection", nc)
	}
	f = os.NewFile(uintptr(fds[1]), "upstream")
	up, err := h.g.Resume(rec.Upstream, f)
	f.Close()
	fds[1] = -1
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("wsbind: a moved session's upstream: %w", err)
	}
	if adopt != nil {
		nc = adopt(nc)
	}
	release := h.g.Adopt(rec.IP)
	s := newSession(h, nc, nil, rec.IP, false, release)
	s.id = rec.ID
	s.state, s.up, s.domain, s.resumable = opened, up, rec.Domain, rec.Resumable
	s.announce = rec.Announce
	s.lastReadNs.Store(rec.LastRead.UnixNano())
	s.lastWriteNs.Store(rec.LastWrite.UnixNano())
	return &Restored{s: s}, nil
}

// Restored is a session RestoreMoved took, waiting for the old process
// to let it go.
type Restored struct {
	s *session
}

// Commit puts the session in service: the old process has let it go. Its
// client socket is parked, its upstream read, and pings reach it.
func (r *Restored) Commit() {
	s, h := r.s, r.s.h
	if !h.add(s) {
		s.endUnadded()
		return
	}
	h.metrics.UpgradeWebSocketReceived()
	s.mu.Lock()
	read := !s.watchClient()
	s.mu.Unlock()
	if read {
		go s.readClient()
	}
	go s.readUpstream(false)
	s.logger().Info("websocket session moved here from the old process", "ip", s.ip, "domain", s.domain)
}

// endUnadded ends a restored session that its handler, shut down since,
// did not take: as Shutdown ends the others (close code 1012 and, unless
// the client can resume, <system-shutdown/> and <close/> first; the
// upstream dropped for a client that can resume, closed otherwise), but
// at once, not waiting for the client's close frame, and never counted in
// h.conns, which Shutdown may be waiting on already (no Add may follow
// a WaitGroup's Wait from zero).
func (s *session) endUnadded() {
	e := s.endingOf(endShutdown, nil)
	s.mu.Lock()
	s.ended = true
	s.mu.Unlock()
	var err error
	if e.streamError != nil {
		err = s.send(e.streamError)
	}
	if err == nil && e.framing {
		err = s.send([]byte(closeMessage))
	}
	if err == nil {
		s.w.writeClose(e.code, e.why)
	}
	s.conn.Close()
	if e.drop {
		s.up.Drop()
	} else {
		s.up.Close()
	}
	s.release()
	s.h.metrics.WebSocketSessionEnded(e.reason)
	s.logger().Info("websocket session ended", "reason", e.reason, "close_code", int(e.code))
}

// Abort gives the session back: the old process keeps it. Nothing is
// written; the sockets are closed (the connections live on there) and
// the slot given back.
func (r *Restored) Abort() {
	r.s.up.Drop()
	r.s.conn.Close()
	r.s.release()
}

// closeFDs closes raw descriptors; -1 is none.
func closeFDs(fds []int) {
	for _, fd := range fds {
		if fd >= 0 {
			syscall.Close(fd)
		}
	}
}
