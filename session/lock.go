package session

import "time"

// This file holds the one way into a session's state. An entry point
// calls do with its locked section; do locks s.mu and defers the unlock,
// so that a panic in the section leaves the session unlocked, and once
// s.mu is released it runs what the section left for after the unlock:
// first the callbacks (a request's notify, Params.OnEnd, Registry.OnEnd,
// Registry.OnPush), in the order they were queued, then the upstream
// writes (see write).

// event is a callback a locked section leaves for after the unlock:
// callbacks are the caller's code, which must not run under s.mu.
type event struct {
	// f, if not nil, is called: a request's notify, or Params.OnEnd.
	f func()
	// end calls Registry.OnEnd with cond.
	end  bool
	cond Condition
	// push calls Registry.OnPush with waited.
	push   bool
	waited time.Duration
}

// inlineEvents is how many events a locked section may leave without
// release allocating: a notify, an OnPush and an end are the most one
// usually leaves.
const inlineEvents = 4

// do runs f with s.mu held. Every entry point of a session locks it this
// way: the unlock is deferred, so a panic in f leaves the session
// unlocked, and then, with s.mu released, the callbacks f queued run in
// order and the upstream writes it queued are performed, before do
// returns (panic included). f must not lock s.mu again.
func (s *Session) do(f func()) {
	s.mu.Lock()
	defer s.unlock()
	f()
}

// unlock releases s.mu, locked by do, and does what the locked section
// left: callbacks, then upstream writes unless another goroutine is
// performing them. The writes are performed even if a callback panics.
func (s *Session) unlock() {
	var buf [inlineEvents]event
	events, write := s.take(buf[:0])
	if write {
		defer s.write()
	}
	s.run(events)
}

// queueLocked leaves e for after the unlock.
func (s *Session) queueLocked(e event) {
	s.events = append(s.events, e)
}

// take appends the callbacks queued under s.mu to dst, releases s.mu, and
// returns them, for the caller to run; write reports whether upstream
// writes wait with no goroutine performing them.
func (s *Session) take(dst []event) (events []event, write bool) {
	if len(s.events) > 0 {
		dst = append(dst, s.events...)
		clear(s.events)
		s.events = s.events[:0]
	}
	write = len(s.ops) > 0 && !s.writing
	s.mu.Unlock()
	return dst, write
}

// run calls the callbacks of events in order. Should one panic, those
// after it still run, and then the panic goes on.
func (s *Session) run(events []event) {
	i := 0
	defer func() {
		if i < len(events) {
			s.run(events[i+1:])
		}
	}()
	for ; i < len(events); i++ {
		e := &events[i]
		switch {
		case e.f != nil:
			e.f()
		case e.end && s.reg.OnEnd != nil:
			s.reg.OnEnd(e.cond)
		case e.push && s.reg.OnPush != nil:
			s.reg.OnPush(e.waited)
		}
	}
}

// closeLaterLocked leaves closing n's upstream, a stream that will not be
// added, for after the unlock: closing writes to the server.
func (s *Session) closeLaterLocked(n *NewStream) {
	if n != nil && n.Up != nil {
		s.queueLocked(event{f: n.close})
	}
}
