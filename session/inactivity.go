package session

import "time"

// startIdleLocked starts the inactivity clock (XEP-0124 §10).
//
// The clock is lazy: stopIdleLocked only marks the session busy, and a
// timer left running from an earlier idle period is kept, and re-armed
// when it fires early. A session answering requests back to back (a busy
// chat, a polling client) then starts a timer once per inactivity period
// rather than once per request.
func (s *Session) startIdleLocked() {
	d := s.Params.Inactivity
	if s.unattached {
		d = s.Params.AttachTimeout
	}
	if s.pause > 0 {
		d, s.pause = s.pause, 0
	}
	if !s.idleSince.IsZero() || d <= 0 {
		return
	}
	s.idleSince = s.clock.Now()
	s.idleFor = d
	if s.idle != nil && !s.idleAt.After(s.idleSince.Add(d)) {
		return // it fires in time, and is re-armed then
	}
	stop(s.idle)
	s.armIdleLocked(d)
}

// armIdleLocked starts the inactivity timer to fire after d.
func (s *Session) armIdleLocked(d time.Duration) {
	s.idleGen++
	gen := s.idleGen
	s.idleAt = s.clock.Now().Add(d)
	s.idle = s.clock.AfterFunc(d, func() { s.idleExpired(gen) })
}

// stopIdleLocked stops the inactivity clock: a request is held, or the
// session's state changes. The timer itself runs on (see startIdleLocked).
func (s *Session) stopIdleLocked() {
	s.idleSince = time.Time{}
}

// idleExpired ends a session that had nothing held for
// Params.Inactivity. Ended sessions linger that long too, as tombstones
// that still answer resent rids and tell the client why the session ended,
// and are then removed.
func (s *Session) idleExpired(gen uint64) {
	var expired bool
	s.do(func() { expired = s.idleExpiredLocked(gen) })
	if expired {
		s.reg.remove(s)
	}
}

// idleExpiredLocked is idleExpired's locked section. It reports whether
// the session, ended now or before, is to be forgotten.
func (s *Session) idleExpiredLocked(gen uint64) bool {
	if gen != s.idleGen {
		return false
	}
	s.idle = nil
	if s.frozen.Load() {
		return false // re-armed by Thaw
	}
	if s.idleSince.IsZero() || len(s.held) > 0 {
		return false // busy since: the next idle period arms a new timer
	}
	if left := s.idleSince.Add(s.idleFor).Sub(s.clock.Now()); left > 0 {
		s.armIdleLocked(left) // idle again since the timer was armed
		return false
	}
	if s.final == nil {
		if s.unattached {
			s.log.Info("session not attached: no request within the attach timeout, ending it", "attach_timeout", s.Params.AttachTimeout)
		} else {
			s.log.Info("session inactive: ending it", "inactivity", s.Params.Inactivity)
		}
		s.endLocked(&Response{Type: TypeTerminate, Condition: ItemNotFound})
		// XEP-0124 §10: the session is gone as if it never was; a client
		// coming back later gets item-not-found.
		s.told = true
	}
	return true
}
