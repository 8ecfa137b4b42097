package session

import "time"

// processLocked handles a request whose turn has come: its payload goes
// upstream and it is held, or answered if it ends the session.
func (s *Session) processLocked(r *request) {
	if r.Add != nil {
		s.addStreamLocked(r)
		return
	}
	targets := s.openLocked()
	if r.Stream != "" {
		st := s.streamLocked(r.Stream)
		if st == nil {
			// R-MULTI-3: an unknown stream.
			s.log.Info("request for an unknown stream", "rid", r.RID, "stream", r.Stream)
			s.sendLocked(r, s.failLocked(r.RID, ItemNotFound))
			return
		}
		targets = []*stream{st}
	}
	switch {
	case r.Restart:
		// R-XMPP-7: stanzas in a restart request are not forwarded.
		// Without a stream named, the restart is for the first one.
		s.ops = append(s.ops, op{st: targets[0], restart: true})
	case len(r.Payload) > 0:
		// R-HOLD-1: forward at once, while the request is held; a body
		// naming no stream goes to every stream (R-MULTI-3).
		for _, st := range targets {
			s.ops = append(s.ops, op{st: st, data: r.Payload})
		}
	}
	if r.Terminate {
		if r.Stream != "" && len(targets) == 1 && len(s.openLocked()) > 1 {
			s.terminateStreamLocked(r, targets[0])
			return
		}
		s.terminateLocked(r)
		return
	}
	if r.Pause > 0 {
		// R-PAUSE-2, R-PAUSE-3: every held request is answered now,
		// without payload, and the session waits Pause for the client.
		for len(s.held) > 0 {
			s.answerLocked(s.held[0], &Response{})
		}
		resp := &Response{RID: r.RID}
		s.sendLocked(r, resp)
		s.log.Debug("session paused", "pause", r.Pause)
		s.pause = r.Pause
		s.startIdleLocked()
		return
	}
	if r.gone {
		// Its client went away before its turn: answer into the cache
		// only, so a resend of the rid still gets a reply.
		s.cacheLocked(&Response{RID: r.RID})
		return
	}
	s.held = append(s.held, r)
	s.reg.stats.held.Add(1)
	s.releaseLocked()
	// The wait clock runs only for a request still held: most requests
	// of a busy or polling session are answered at once.
	if n := len(s.held); s.Params.Wait > 0 && n > 0 && s.held[n-1] == r {
		r.due = s.clock.Now().Add(s.Params.Wait)
		s.armWaitLocked(r.due)
	}
}

// armWaitLocked makes sure the wait timer fires by due.
//
// One timer per session answers every held request that is due
// (R-HOLD-3), and like the inactivity timer it is lazy: answering a
// request leaves it running, and when it fires early it is re-armed for
// the oldest request then held. Requests are held in rid order with the
// same wait, so the oldest is the first due. A busy session then starts
// a timer about once per wait instead of once per request.
func (s *Session) armWaitLocked(due time.Time) {
	if s.wait != nil && !s.waitAt.After(due) {
		return // it fires in time
	}
	stop(s.wait)
	s.waitGen++
	gen := s.waitGen
	s.waitAt = due
	s.wait = s.clock.AfterFunc(due.Sub(s.clock.Now()), func() { s.waitExpired(gen) })
}

// waitExpired answers the held requests that are due, oldest first, and
// re-arms the wait timer for the next one.
func (s *Session) waitExpired(gen uint64) {
	s.do(func() {
		if gen != s.waitGen {
			return
		}
		s.wait = nil
		now := s.clock.Now()
		expired := false
		for len(s.held) > 0 && !s.held[0].due.After(now) {
			s.answerLocked(s.held[0], s.nextOrEmptyLocked())
			expired = true
		}
		if expired {
			s.releaseLocked()
		}
		if len(s.held) > 0 && !s.held[0].due.IsZero() {
			s.armWaitLocked(s.held[0].due)
		}
	})
}

// releaseLocked answers held requests that must not be held any longer:
// the oldest when there is data for it (R-HOLD-5, R-HOLD-6), the oldest ones
// beyond Params.Hold (R-HOLD-4), and all of them in a polling session
// (R-POLL-1). With nothing left held, the inactivity clock starts.
func (s *Session) releaseLocked() {
	if s.report != nil && len(s.held) > 0 {
		// R-ACK-5: answer at once, the newest request carrying the
		// report.
		for len(s.held) > 1 {
			s.answerLocked(s.held[0], &Response{})
		}
		rep := s.report
		s.report = nil
		if next := s.nextLocked(); next != nil {
			next.Report, next.Time = rep.Report, rep.Time
			rep = next
		}
		s.answerLocked(s.held[0], rep)
	}
	for len(s.held) > 0 {
		next := s.nextLocked()
		if next == nil {
			break
		}
		s.answerLocked(s.held[0], next)
	}
	for len(s.held) > s.Params.Hold || (len(s.held) > 0 && s.Params.Wait == 0) {
		s.answerLocked(s.held[0], &Response{})
	}
	if len(s.held) == 0 && s.final == nil {
		s.startIdleLocked()
	}
}

// answerLocked sends resp to the oldest held request r and caches it.
func (s *Session) answerLocked(r *request, resp *Response) {
	if len(s.held) == 0 || s.held[0] != r {
		panic("session: answering a request out of rid order")
	}
	s.held[0] = nil
	s.held = s.held[1:]
	s.reg.stats.held.Add(-1)
	resp.RID = r.RID
	resp.Ack = s.ackFor(r.RID)
	if resp.Type != TypeError {
		s.cacheLocked(resp)
	}
	if s.Params.Wait == 0 || s.Params.Hold == 0 {
		s.lastPoll = time.Time{}
		if len(r.Payload) == 0 && !r.Restart && len(resp.Payload) == 0 && resp.Type == "" {
			s.lastPoll = s.clock.Now()
		}
	}
	s.sendLocked(r, resp)
}

// deliver queues an element from the server on stream st and, if release
// is true, answers the oldest held request with it and whatever else
// waits, if a request is held.
func (s *Session) deliver(st *stream, el []byte, release bool) {
	s.do(func() {
		if s.final != nil || st.closed {
			return
		}
		if len(st.queue) == 0 {
			st.queuedAt = s.clock.Now()
		}
		st.queue = append(st.queue, el)
		s.queueBytes += int64(len(el))
		s.reg.stats.queued.Add(1)
		s.reg.stats.queuedBytes.Add(int64(len(el)))
		if max := s.Params.MaxQueueBytes; max > 0 && s.queueBytes > max {
			s.log.Warn("queue limit reached: client is not collecting stanzas", "bytes", s.queueBytes, "limit", max)
			s.endLocked(&Response{Type: TypeTerminate, Condition: UndefinedCondition})
			return
		}
		if release {
			s.releaseLocked()
		}
	})
}

// nextOrEmptyLocked is nextLocked, with an empty response when nothing
// waits.
func (s *Session) nextOrEmptyLocked() *Response {
	if next := s.nextLocked(); next != nil {
		return next
	}
	return &Response{}
}

// addStreamLocked adds the stream a request opened (XEP-0124 §16.2) and
// answers the request at once with the stream's name, its server's domain
// and its features, or why it could not be opened; older held requests are
// answered first, in rid order.
func (s *Session) addStreamLocked(r *request) {
	for len(s.held) > 0 {
		s.answerLocked(s.held[0], s.nextOrEmptyLocked())
	}
	resp := &Response{RID: r.RID, Stream: newStreamName(), From: r.Add.From, Payload: r.Add.Payload}
	if r.Add.Up == nil {
		resp.Type, resp.Condition = TypeTerminate, r.Add.Failed
		s.log.Info("stream not added", "stream", resp.Stream, "condition", r.Add.Failed)
	} else {
		st := &stream{name: resp.Stream, up: r.Add.Up}
		s.streams = append(s.streams, st)
		s.startReading(st)
		s.log.Info("stream added", "stream", st.name, "from", r.Add.From)
	}
	resp.Ack = s.ackFor(r.RID)
	s.cacheLocked(resp)
	s.sendLocked(r, resp)
	s.startIdleLocked()
}

// startIdleLocked starts the inactivity clock (R-INACT-1, R-INACT-2).
//
// The clock is lazy: stopIdleLocked only marks the session busy, and a
// timer left running from an earlier idle period is kept, and re-armed
// when it fires early. A session answering requests back to back (a busy
// chat, a polling client) then starts a timer once per inactivity period
// rather than once per request.
func (s *Session) startIdleLocked() {
	d := s.Params.Inactivity
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
	if s.idleSince.IsZero() || len(s.held) > 0 {
		return false // busy since: the next idle period arms a new timer
	}
	if left := s.idleSince.Add(s.idleFor).Sub(s.clock.Now()); left > 0 {
		s.armIdleLocked(left) // idle again since the timer was armed
		return false
	}
	if s.final == nil {
		s.log.Info("session inactive: ending it", "inactivity", s.Params.Inactivity)
		s.endLocked(&Response{Type: TypeTerminate, Condition: ItemNotFound})
		// R-INACT-1: the session is gone as if it never was; a client
		// coming back later gets item-not-found.
		s.told = true
	}
	return true
}
