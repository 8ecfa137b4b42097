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
	// ends ("" for a plain terminate), under that session's lock: it must
	// be quick and must not call into the session. Set it before the
	// first Create.
	OnEnd func(Condition)
	// OnPush, if set, is called with the time the oldest element of a
	// response waited, from its arrival from the server to the response
	// being handed to its request. Same rules as OnEnd.
	OnPush func(time.Duration)

	stats stats

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

// newID returns a session ID of 144 random bits (R-RESP-1).
func newID() string {
	var b [18]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
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
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrShutdown
	}
	for {
		s.ID = newID()
		if _, taken := r.sessions[s.ID]; !taken {
			break
		}
	}
	s.log = r.log.With("sid", s.LogID())
	r.sessions[s.ID] = s
	r.stats.live.Add(1)
	r.mu.Unlock()

	s.mu.Lock()
	s.startIdleLocked()
	s.mu.Unlock()
	s.startReading(first)
	s.log.Info("session created", "rid", rid, "wait", p.Wait, "hold", p.Hold)
	s.log.Debug("session id", "full_sid", s.ID)
	return s, nil
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

func (r *Registry) remove(s *Session) {
	r.mu.Lock()
	if r.sessions[s.ID] == s {
		delete(r.sessions, s.ID)
	}
	r.mu.Unlock()
}

// EndIf ends with cond every live session for which match is true, and
// returns how many it ended.
func (r *Registry) EndIf(match func(*Session) bool, cond Condition) int {
	r.mu.RLock()
	var hit []*Session
	for _, s := range r.sessions {
		if match(s) {
			hit = append(hit, s)
		}
	}
	r.mu.RUnlock()
	n := 0
	for _, s := range hit {
		if !s.Ended() {
			s.End(cond)
			n++
		}
	}
	return n
}

// Shutdown refuses new sessions and ends every live one with
// system-shutdown: held requests are answered and upstream streams closed.
func (r *Registry) Shutdown() {
	r.mu.Lock()
	r.closed = true
	all := make([]*Session, 0, len(r.sessions))
	for _, s := range r.sessions {
		all = append(all, s)
	}
	r.mu.Unlock()
	for _, s := range all {
		s.End(SystemShutdown)
	}
}
