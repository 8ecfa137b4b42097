package session

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// ErrShutdown is returned by Registry.Create once Shutdown has begun.
var ErrShutdown = errors.New("session: shutting down")

// Registry holds the live sessions by ID. The zero value is not usable;
// use NewRegistry.
type Registry struct {
	log   *slog.Logger // immutable
	clock Clock        // immutable

	// OnEnd, if set, is called with the condition of every session that
	// ends ("" for a plain terminate), after that session's
	// Params.OnEnd: like it, after the session's lock is released, by
	// the goroutine that ended the session. It must be quick. Set it
	// before the first Create.
	OnEnd func(Condition)
	// OnPush, if set, is called with the time the oldest element of a
	// response waited, from its arrival from the server to the response
	// being handed to its request. Same rules as OnEnd: it runs after the
	// session's lock is released, in order with the session's other
	// callbacks.
	OnPush func(time.Duration)
	// Node, if set, names this node in a cluster: every session ID is
	// Node, a dot and the random part ("n1.ZlR3…"), so that whoever
	// reads a sid can tell which node holds the session
	// (docs/design/004-cluster.md). Set it before the first Create.
	Node string

	stats stats // atomic

	// mu guards sessions and closed. Only map lookups and updates run
	// under it: never a session's lock, nor a caller's function.
	mu       sync.RWMutex
	sessions map[string]*Session
	closed   bool
}

// stats are the registry-wide counters behind Stats.
type stats struct {
	live, held, queued, queuedBytes atomic.Int64
}

// Stats is a snapshot of a registry's sessions.
type Stats struct {
	// Live is the number of sessions not yet ended.
	Live int64
	// Held is the number of requests being held.
	Held int64
	// Queued and QueuedBytes count the elements from servers waiting
	// for a request to carry them.
	Queued, QueuedBytes int64
}

// Stats returns the current counts.
func (r *Registry) Stats() Stats {
	return Stats{
		Live:        r.stats.live.Load(),
		Held:        r.stats.held.Load(),
		Queued:      r.stats.queued.Load(),
		QueuedBytes: r.stats.queuedBytes.Load(),
	}
}

// NewRegistry returns an empty registry whose sessions log to log and
// keep time by clock (SystemClock if nil).
func NewRegistry(log *slog.Logger, clock Clock) *Registry {
	if clock == nil {
		clock = SystemClock{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Registry{log: log, clock: clock, sessions: make(map[string]*Session)}
}

// newID returns a session ID of 144 random bits (XEP-0124 §19.3), after
// node and a dot if node is not empty.
func newID(node string) string {
	var b [18]byte
	rand.Read(b[:])
	id := base64.RawURLEncoding.EncodeToString(b[:])
	if node != "" {
		return node + "." + id
	}
	return id
}

// Create registers a new session relaying to up, whose creation request
// had request ID rid, and starts reading from up. The creation response
// itself is the caller's to write.
func (r *Registry) Create(p Params, up Upstream, rid uint64) (*Session, error) {
	if p.Requests < 1 {
		p.Requests = p.Hold + 1
	}
	first := &stream{up: up}
	if p.MultiStream {
		first.name = newStreamName()
	}
	s := &Session{
		Params:  p,
		streams: []*stream{first},
		clock:   r.clock,
		reg:     r,
		last:    rid,
		key:     p.Key,
		// A session waiting for its first request: see
		// Params.AttachTimeout.
		unattached: p.AttachTimeout > 0,
	}
	// Registered first: the ID and the logger are set under r.mu before
	// any timer of the session can read them. Should starting the
	// inactivity clock panic, the session is taken back out.
	if err := r.add(s); err != nil {
		return nil, err
	}
	started := false
	defer func() {
		if !started {
			r.remove(s)
			r.stats.live.Add(-1)
		}
	}()
	s.do(func() { s.startIdleLocked() })
	started = true
	s.startReading(first)
	s.log.Info("session created", "rid", rid, "wait", p.Wait, "hold", p.Hold)
	s.log.Debug("session id", "full_sid", s.ID)
	return s, nil
}

// add gives s an ID and registers it, unless Shutdown has begun.
func (r *Registry) add(s *Session) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrShutdown
	}
	for {
		s.ID = newID(r.Node)
		if _, taken := r.sessions[s.ID]; !taken {
			break
		}
	}
	s.log = r.log.With("sid", s.LogID())
	r.sessions[s.ID] = s
	r.stats.live.Add(1)
	return nil
}

// Get returns the session with ID id, or nil.
func (r *Registry) Get(id string) *Session {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.sessions[id]
}

// Len returns the number of sessions, ended ones not yet forgotten
// included.
func (r *Registry) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.sessions)
}

// remove forgets s, once it has ended and lingered.
func (r *Registry) remove(s *Session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sessions[s.ID] == s {
		delete(r.sessions, s.ID)
	}
}

// all returns the registered sessions and, if closing, refuses new ones
// from now on.
func (r *Registry) all(closing bool) []*Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = r.closed || closing
	all := make([]*Session, 0, len(r.sessions))
	for _, s := range r.sessions {
		all = append(all, s)
	}
	return all
}

// EndIf ends with cond every live session for which match is true, and
// returns how many it ended. match runs with no lock held.
func (r *Registry) EndIf(match func(*Session) bool, cond Condition) int {
	n := 0
	for _, s := range r.all(false) {
		if match(s) && !s.Ended() {
			s.End(cond)
			n++
		}
	}
	return n
}

// Shutdown refuses new sessions and ends every live one with
// system-shutdown: held requests are answered and upstream streams closed.
func (r *Registry) Shutdown() {
	for _, s := range r.all(true) {
		s.End(SystemShutdown)
	}
}
