package session

import (
	"errors"
	"fmt"
	"slices"
	"syscall"

	"github.com/boshd/boshd/xmpp"
)

// This file moves a session to another process in a live upgrade
// (docs/design/005-live-upgrade.md, "What moves"): Freeze takes a quiet
// session's State and its upstream streams' sockets at once, under the
// session's lock, and leaves it frozen: nothing it does from then on
// reaches a client or the server (its timers fire to no effect, its
// streams' watches are cancelled). Once the other process has restored
// it, Moved forgets it here, writing nothing; if that process could
// not, Thaw lets it go on here as if nothing had happened.
//
// While a session is frozen its caller keeps new requests out of it
// (bosh does, by sid): Freeze has no way to refuse them.

// ErrCannotMove is the error of Freeze for a session that cannot move
// at all, busy or not: an upstream over TLS, or one that cannot be handed
// over.
var ErrCannotMove = errors.New("session: cannot move")

// handoffer is an Upstream that can hand its idle connection to another
// process, as *xmpp.Conn does (xmpp.Conn.Handoff).
type handoffer interface {
	Handoff() (xmpp.ConnState, int, error)
	Secure() bool
}

// parkNower is an Upstream whose reader can be told to park at once
// instead of after a spell of silence, as *xmpp.Conn can
// (xmpp.Conn.ParkNow): only a parked stream can be handed over.
type parkNower interface{ ParkNow(now bool) }

// parkNowLocked tells s's open upstreams to park at once (or no longer).
// ParkNow does not block: it takes a lock of its own for an instant.
func (s *Session) parkNowLocked(now bool) {
	for _, x := range s.streams {
		if p, ok := x.up.(parkNower); ok && !x.closed {
			p.ParkNow(now)
		}
	}
}

// dropper is an Upstream that can be let go without a word to the
// server, as *xmpp.Conn does (xmpp.Conn.Drop).
type dropper interface{ Drop() }

// Frozen is a frozen session's State with its upstream streams' state
// and sockets, in the order of State.Streams: a closed stream has a
// zero ConnState and -1.
type Frozen struct {
	State State
	Conns []xmpp.ConnState
	// FDs are duplicates of the upstreams' sockets, the caller's to
	// close once sent (with Close: the connections live on in the
	// other process).
	FDs []int
}

// Movable reports whether the session could ever move: every open
// upstream can be handed over (plaintext), which ErrCannotMove is
// about. It does not say it is quiet now.
func (s *Session) Movable() (ok bool) {
	s.do(func() { ok = s.movableLocked() == nil })
	return ok
}

func (s *Session) movableLocked() error {
	for _, x := range s.streams {
		if x.closed {
			continue
		}
		h, ok := x.up.(handoffer)
		switch {
		case !ok:
			return fmt.Errorf("%w: a %T upstream", ErrCannotMove, x.up)
		case h.Secure():
			return fmt.Errorf("%w: an upstream over TLS", ErrCannotMove)
		}
	}
	return nil
}

// Freeze takes the state of a quiet session and its upstreams' sockets
// for another process, and freezes it until Moved or Thaw.
//
// The first call closes the session to requests (Enter waits) and stops
// its timers' effect; it stays closed, even when Freeze then fails with
// ErrBusy, so that the session can become quiet without a new request
// coming in: call Freeze again a moment later, and Thaw to give up. If
// keep is not nil and reports false for a held request's rid (one that
// cannot move with the session: held where the caller cannot take its
// connection), every held request is answered, empty, as at the end of
// its wait, and Freeze fails with ErrBusy: the answers are being
// written. It fails with ErrCannotMove for a session that never can
// move, and then, as when a request is on its way in or one waits for a
// missing rid, leaves the session open.
func (s *Session) Freeze(keep func(rid uint64) bool) (f Frozen, err error) {
	s.do(func() { f, err = s.freezeLocked(keep) })
	return f, err
}

func (s *Session) freezeLocked(keep func(rid uint64) bool) (f Frozen, err error) {
	switch {
	case s.moved.Load() || s.handing:
		return Frozen{}, fmt.Errorf("%w: being moved", ErrBusy)
	case s.final != nil:
		return Frozen{}, fmt.Errorf("%w: ended", ErrBusy)
	}
	if err := s.movableLocked(); err != nil {
		s.letInLocked()
		return Frozen{}, err
	}
	if !s.frozen.Load() {
		// Set before users is read, as Enter adds to users before it
		// reads frozen: either this sees the request, or the request
		// sees the session closed.
		s.frozen.Store(true)
		if n := s.users.Load(); n > 0 {
			s.frozen.Store(false)
			return Frozen{}, fmt.Errorf("%w: %d requests on their way in", ErrBusy, n)
		}
		s.thawed = make(chan struct{})
		// A stream that heard from the server within park_after
		// would not park before then: have it park at once, so that
		// a session chatting every second still becomes quiet.
		s.parkNowLocked(true)
	}
	if len(s.pending) > 0 {
		// The missing rid may be waiting to come in.
		s.letInLocked()
		return Frozen{}, fmt.Errorf("%w: %d requests wait for a missing rid", ErrBusy, len(s.pending))
	}
	if keep != nil && len(s.held) > 0 && slices.ContainsFunc(s.held, func(r *request) bool { return !keep(r.RID) }) {
		for len(s.held) > 0 {
			s.answerLocked(s.held[0], s.nextOrEmptyLocked())
		}
		if s.final == nil {
			s.startIdleLocked()
		}
		return Frozen{}, fmt.Errorf("%w: held requests answered first", ErrBusy)
	}
	st, err := s.snapshotLocked()
	if err != nil {
		return Frozen{}, err
	}
	f = Frozen{State: st, Conns: make([]xmpp.ConnState, len(s.streams)), FDs: make([]int, len(s.streams))}
	for i, x := range s.streams {
		f.FDs[i] = -1
		if x.closed {
			continue
		}
		cs, fd, err := x.up.(handoffer).Handoff()
		if err != nil {
			// Those handed off already go on here: their readers
			// park again.
			for j := range i {
				if f.FDs[j] >= 0 {
					syscall.Close(f.FDs[j])
					go s.read(s.streams[j], false)
				}
			}
			return Frozen{}, fmt.Errorf("%w: %v", ErrBusy, err)
		}
		f.Conns[i], f.FDs[i] = cs, fd
	}
	s.handing = true
	return f, nil
}

// Thaw lets a session Freeze closed go on here: the other process did
// not take it, or Freeze was given up. Its upstreams handed over are
// watched again, its timers re-armed where they stood, and requests let
// in.
func (s *Session) Thaw() {
	s.do(func() {
		if !s.frozen.Load() || s.moved.Load() {
			return
		}
		if s.handing {
			s.handing = false
			for _, x := range s.streams {
				switch {
				case x.closed:
				case x.resume == nil:
					s.startReading(x) // restored closed: never read here
				default:
					go s.read(x, false)
				}
			}
		}
		s.letInLocked()
	})
}

// letInLocked lets requests into a session Freeze closed, and re-arms its
// timers.
func (s *Session) letInLocked() {
	if !s.frozen.Load() {
		return
	}
	s.frozen.Store(false)
	s.parkNowLocked(false)
	close(s.thawed)
	s.thawed = nil
	if s.final != nil {
		return
	}
	if !s.idleSince.IsZero() && s.idle == nil {
		s.armIdleLocked(max(s.idleSince.Add(s.idleFor).Sub(s.clock.Now()), 0))
	}
	if len(s.held) > 0 && !s.held[0].due.IsZero() {
		s.armWaitLocked(s.held[0].due)
	}
}

// Moved forgets a frozen session another process has taken: it leaves
// the registry, its timers stop, its held requests are left unanswered
// (their clients' connections moved too), and its upstreams are dropped,
// writing nothing (the connections live on in the other process).
// Params.OnEnd is called, as for a session that ends, but not
// Registry.OnEnd: the session has not ended.
func (s *Session) Moved() { s.forget("session moved to the new process") }

// Unrestore forgets a session RestoreClosed restored, the old process
// having kept it after all: as Moved, writing nothing.
func (s *Session) Unrestore() { s.forget("session left to the old process") }

// forget is Moved and Unrestore, logging msg.
func (s *Session) forget(msg string) {
	var ups []Upstream
	ok := false
	s.do(func() {
		if !s.handing || s.moved.Load() || s.final != nil {
			return
		}
		ok = true
		s.moved.Store(true)
		close(s.thawed)
		s.thawed = nil
		stop(s.wait)
		stop(s.idle)
		stop(s.gap)
		s.wait, s.idle, s.gap = nil, nil, nil
		s.waitGen++
		s.idleGen++
		// Ended for whatever still reaches it: told already, so that
		// nothing more is answered.
		s.final = &Response{Type: TypeTerminate, Condition: ItemNotFound}
		s.told = true
		s.reg.stats.live.Add(-1)
		s.reg.stats.held.Add(-int64(len(s.held)))
		clear(s.held)
		s.held = s.held[:0]
		var queued int64
		for _, x := range s.streams {
			queued += int64(len(x.queue))
			if !x.closed {
				ups = append(ups, x.up)
			}
		}
		s.reg.stats.queued.Add(-queued)
		s.reg.stats.queuedBytes.Add(-s.queueBytes)
		s.queueBytes = 0
		if s.Params.OnEnd != nil {
			s.queueLocked(event{f: s.Params.OnEnd})
		}
	})
	for _, up := range ups {
		if d, ok := up.(dropper); ok {
			d.Drop()
		}
	}
	if !ok {
		return
	}
	s.reg.remove(s)
	s.log.Info(msg)
}

// Enter marks a request on its way into the session (Start, Handle,
// Fail, …) until Leave, and reports true; or false if the session is
// frozen: the request must not go in, but wait for the channel returned
// to be closed and try again, unless MovedAway then reports that the
// session is another process's. A session with a request between Enter
// and Leave is not frozen (Freeze: ErrBusy).
func (s *Session) Enter() (ok bool, wait <-chan struct{}) {
	s.users.Add(1)
	if !s.frozen.Load() {
		return true, nil
	}
	s.users.Add(-1)
	var ch chan struct{}
	s.do(func() { ch = s.thawed })
	if ch == nil {
		ch = make(chan struct{})
		close(ch) // thawed or moved since: try again
	}
	return false, ch
}

// Leave follows Enter once the request is in the session: held (and
// parked, for a caller that parks), or answered.
func (s *Session) Leave() { s.users.Add(-1) }

// MovedAway reports whether the session has moved to another process
// (Moved).
func (s *Session) MovedAway() bool { return s.moved.Load() }

// Notify makes the call's request call f once it is answered, as Start's
// notify does, at once if it has been already: for a request Restore
// made. f must be quick.
func (c *Call) Notify(f func()) {
	if c.r == nil {
		f()
		return
	}
	now := false
	c.s.do(func() {
		if len(c.r.done) > 0 {
			now = true
			return
		}
		c.r.notify = f
	})
	if now {
		f()
	}
}

// Sessions returns the registered sessions, ended ones not yet forgotten
// included, in no order.
func (r *Registry) Sessions() []*Session { return r.all(false) }
