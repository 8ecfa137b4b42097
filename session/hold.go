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
			// XEP-0124 §16.4: an unknown stream.
			s.log.Info("request for an unknown stream", "rid", r.RID, "stream", r.Stream)
			s.sendLocked(r, s.failLocked(r.RID, ItemNotFound))
			return
		}
		targets = []*stream{st}
	}
	switch {
	case r.Restart:
		// XEP-0206 §5: stanzas in a restart request are not forwarded.
		// Without a stream named, the restart is for the first one.
		s.ops = append(s.ops, op{st: targets[0], restart: true})
	case len(r.Payload) > 0:
		// XEP-0124 §8: forward at once, while the request is held; a body
		// naming no stream goes to every stream (XEP-0124 §16.4).
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
		s.pauseLocked(r)
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

// releaseLocked answers held requests that must not be held any longer:
// the oldest when there is data for it (XEP-0124 §8), the oldest ones
// beyond Params.Hold (XEP-0124 §8), and all of them in a polling session
// (XEP-0124 §12). With nothing left held, the inactivity clock starts.
func (s *Session) releaseLocked() {
	if s.report != nil && len(s.held) > 0 {
		// XEP-0124 §9.2: answer at once, the newest request carrying the
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
	s.polledLocked(r, resp)
	s.sendLocked(r, resp)
}

// abandonLocked forgets a request whose client went away. A held request
// leaves the held set, with nothing put on it (XEP-0124 §14.3), and an empty
// answer cached for its rid: the answer it would have had, so that a
// client resending the rid over a new connection (XEP-0124 §14.3) carries
// on. A pending one is still processed in its turn (its payload was
// accepted) but will not be held.
func (s *Session) abandonLocked(r *request) {
	r.gone = true
	s.abandoned = s.clock.Now()
	for i, h := range s.held {
		if h == r {
			s.held = append(s.held[:i], s.held[i+1:]...)
			s.reg.stats.held.Add(-1)
			s.cacheLocked(&Response{RID: r.RID, Ack: s.ackFor(r.RID)})
			s.log.Debug("held request abandoned by client", "rid", r.RID)
			s.releaseLocked()
			return
		}
	}
}

// armWaitLocked makes sure the wait timer fires by due.
//
// One timer per session answers every held request that is due
// (XEP-0124 §8), and like the inactivity timer it is lazy: answering a
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
		if s.frozen.Load() {
			return // re-armed by Thaw
		}
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
