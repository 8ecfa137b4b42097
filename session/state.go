package session

import (
	"errors"
	"fmt"
	"time"
)

// This file is a session's state as one process hands it to another in a
// live upgrade (docs/design/005-live-upgrade.md, "What moves"): a State
// taken from a quiet session by Snapshot, and a session rebuilt from it
// by Registry.Restore on the upstream streams' new connections. The
// sockets themselves (upstream streams, parked requests' connections)
// travel beside it; moving them is not built yet.

// StateVersion is the version of State's encoding: a process restores
// only a State of its own version.
const StateVersion = 1

// State is what a quiet session is, besides its sockets: every field of
// Session that a new process needs, as plain values. Times are absolute
// (wall clock), so that timers run on where they stood. Encode it with
// encoding/gob: Params.OnEnd, a function, is not carried (the new
// process sets its own).
type State struct {
	Version int
	ID      string
	Params  Params

	Last      uint64
	Skipped   []uint64
	Abandoned time.Time
	Held      []HeldState
	Streams   []StreamState
	Turn      int
	Cache     []CachedState
	Answered  uint64
	Key       string
	Report    *Response
	LastPoll  time.Time
	IdleSince time.Time
	IdleFor   time.Duration
	Pause     time.Duration
	// Unattached: a pre-bound session not attached yet.
	Unattached bool
}

// HeldState is a request being held: its client's connection moves
// beside the State (parked), and the new process answers it.
type HeldState struct {
	RID    uint64
	Stream string
	// Due is when it is answered empty if nothing comes (Params.Wait
	// after it was held).
	Due time.Time
}

// StreamState is one upstream stream's part of a session: its queue of
// elements from the server, and how it ended if it has.
type StreamState struct {
	Name     string
	Queue    [][]byte
	QueuedAt time.Time
	Closed   bool
	Final    *Response
}

// CachedState is a response kept for a resent rid, and when it was sent.
type CachedState struct {
	Resp Response
	At   time.Time
}

// ErrBusy is the error of Snapshot for a session that is not quiet: a
// request waiting for a missing rid, an upstream write queued or under
// way, an answer not yet written, or the session ended. Try again a
// moment later.
var ErrBusy = errors.New("session: not quiet")

// Snapshot returns the state of a quiet session, for another process to
// restore. It takes the session's lock and changes nothing: the session
// goes on here until the caller ends it (once the new process has it).
func (s *Session) Snapshot() (State, error) {
	var st State
	var err error
	s.do(func() { st, err = s.snapshotLocked() })
	return st, err
}

func (s *Session) snapshotLocked() (State, error) {
	switch {
	case s.final != nil:
		return State{}, fmt.Errorf("%w: ended", ErrBusy)
	case len(s.pending) > 0:
		return State{}, fmt.Errorf("%w: %d requests wait for a missing rid", ErrBusy, len(s.pending))
	case len(s.ops) > 0 || s.writing:
		return State{}, fmt.Errorf("%w: upstream writes under way", ErrBusy)
	case !closedOrNil(s.lastSent):
		return State{}, fmt.Errorf("%w: an answer is being written", ErrBusy)
	}
	st := State{
		Version:    StateVersion,
		ID:         s.ID,
		Params:     s.Params,
		Last:       s.last,
		Skipped:    append([]uint64(nil), s.skipped...),
		Abandoned:  s.abandoned,
		Turn:       s.turn,
		Answered:   s.answered,
		Key:        s.key,
		Report:     copyResponse(s.report),
		LastPoll:   s.lastPoll,
		IdleSince:  s.idleSince,
		IdleFor:    s.idleFor,
		Pause:      s.pause,
		Unattached: s.unattached,
	}
	st.Params.OnEnd = nil
	for _, r := range s.held {
		if r.gone {
			continue // its client left: nothing to move
		}
		st.Held = append(st.Held, HeldState{RID: r.RID, Stream: r.Stream, Due: r.due})
	}
	for _, x := range s.streams {
		q := make([][]byte, len(x.queue))
		for i, el := range x.queue {
			q[i] = append([]byte(nil), el...)
		}
		st.Streams = append(st.Streams, StreamState{Name: x.name, Queue: q, QueuedAt: x.queuedAt, Closed: x.closed, Final: copyResponse(x.final)})
	}
	for _, c := range s.cache {
		st.Cache = append(st.Cache, CachedState{Resp: *copyResponse(c.resp), At: c.at})
	}
	return st, nil
}

// closedOrNil reports whether c is nil or closed.
func closedOrNil(c <-chan struct{}) bool {
	if c == nil {
		return true
	}
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// copyResponse returns a copy of r that shares nothing with it; nil for
// nil.
func copyResponse(r *Response) *Response {
	if r == nil {
		return nil
	}
	c := *r
	c.Payload = make([][]byte, len(r.Payload))
	for i, el := range r.Payload {
		c.Payload[i] = append([]byte(nil), el...)
	}
	if r.Payload == nil {
		c.Payload = nil
	}
	return &c
}

// Restore rebuilds the session st describes, under its own ID, on ups:
// the upstream streams of st.Streams, in order (nil for a closed one),
// their readers started as Create starts them. onEnd is the new
// Params.OnEnd. It returns the session and a Call for each held request,
// in st.Held's order, for the caller to answer on its client's
// connection. It fails if st is of another version, does not match ups,
// or its ID is taken here.
func (r *Registry) Restore(st State, ups []Upstream, onEnd func()) (*Session, []*Call, error) {
	return r.restore(st, ups, onEnd, false)
}

// RestoreClosed is Restore of a session that is not to do anything yet:
// it is registered, but closed to requests as Freeze closes a session,
// its timers to no effect and its upstreams not read, until Thaw opens
// it (the old process has let it go), or Moved drops it (it has not),
// writing nothing.
func (r *Registry) RestoreClosed(st State, ups []Upstream, onEnd func()) (*Session, []*Call, error) {
	return r.restore(st, ups, onEnd, true)
}

func (r *Registry) restore(st State, ups []Upstream, onEnd func(), closed bool) (*Session, []*Call, error) {
	switch {
	case st.Version != StateVersion:
		return nil, nil, fmt.Errorf("session: state of version %d, want %d", st.Version, StateVersion)
	case len(st.Streams) == 0 || len(ups) != len(st.Streams):
		return nil, nil, fmt.Errorf("session: state of %d streams, given %d upstreams", len(st.Streams), len(ups))
	case st.ID == "":
		return nil, nil, errors.New("session: state without an ID")
	}
	for i, x := range st.Streams {
		if !x.Closed && ups[i] == nil {
			return nil, nil, fmt.Errorf("session: no upstream for open stream %d", i)
		}
	}
	p := st.Params
	p.OnEnd = onEnd
	s := &Session{
		ID:         st.ID,
		Params:     p,
		clock:      r.clock,
		reg:        r,
		last:       st.Last,
		skipped:    append([]uint64(nil), st.Skipped...),
		abandoned:  st.Abandoned,
		turn:       st.Turn,
		answered:   st.Answered,
		key:        st.Key,
		report:     copyResponse(st.Report),
		lastPoll:   st.LastPoll,
		idleSince:  st.IdleSince,
		idleFor:    st.IdleFor,
		pause:      st.Pause,
		unattached: st.Unattached,
	}
	var queued, queuedBytes int64
	for i, x := range st.Streams {
		q := make([][]byte, len(x.Queue))
		for j, el := range x.Queue {
			q[j] = append([]byte(nil), el...)
			queued++
			queuedBytes += int64(len(el))
		}
		s.streams = append(s.streams, &stream{name: x.Name, up: ups[i], queue: q, queuedAt: x.QueuedAt, closed: x.Closed, final: copyResponse(x.Final)})
	}
	s.queueBytes = queuedBytes
	for _, c := range st.Cache {
		s.cache = append(s.cache, cached{resp: copyResponse(&c.Resp), at: c.At})
	}
	for _, h := range st.Held {
		req := s.newRequest(Request{RID: h.RID, Stream: h.Stream})
		req.due = h.Due
		s.held = append(s.held, req)
	}
	if closed {
		s.frozen.Store(true)
		s.handing = true
		s.thawed = make(chan struct{})
	}
	if err := r.addAs(s); err != nil {
		return nil, nil, err
	}
	r.stats.held.Add(int64(len(s.held)))
	r.stats.queued.Add(queued)
	r.stats.queuedBytes.Add(queuedBytes)
	calls := make([]*Call, len(s.held))
	for i, req := range s.held {
		calls[i] = &req.call
	}
	s.do(func() {
		// The timers where they stood: the inactivity clock of an idle
		// session, the wait of the oldest held request.
		if !s.idleSince.IsZero() {
			s.armIdleLocked(max(s.idleSince.Add(s.idleFor).Sub(s.clock.Now()), 0))
		}
		if len(s.held) > 0 && !s.held[0].due.IsZero() {
			s.armWaitLocked(s.held[0].due)
		}
	})
	if !closed {
		for _, x := range s.streams {
			if !x.closed {
				s.startReading(x)
			}
		}
	}
	s.log.Info("session restored", "held", len(s.held), "queued", queued, "closed", closed)
	return s, calls, nil
}

// addAs registers s under its own ID, unless Shutdown has begun or the ID
// is taken.
func (r *Registry) addAs(s *Session) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrShutdown
	}
	if _, taken := r.sessions[s.ID]; taken {
		return fmt.Errorf("session: ID %s taken", s.LogID())
	}
	s.log = r.log.With("sid", s.LogID())
	r.sessions[s.ID] = s
	r.stats.live.Add(1)
	return nil
}
