package session

// End ends the session with cond: held requests are answered, the
// upstream stream is closed, and a client with nothing held is told on its
// next request.
func (s *Session) End(cond Condition) {
	s.do(func() { s.endLocked(&Response{Type: TypeTerminate, Condition: cond}) })
}

// Fail ends the session because request rid was unacceptable, and
// returns the response that tells the client so: type='terminate' with
// cond. Held requests get other-request.
func (s *Session) Fail(rid uint64, cond Condition) (resp *Response) {
	s.do(func() { resp = s.failLocked(rid, cond) })
	return resp
}

// terminateLocked ends the session at the client's request (XEP-0124 §13).
// The request's payload was queued for upstream before the closing tag
// (XEP-0124 §13); older held requests get empty bodies and the terminate
// request itself type='terminate' (XEP-0124 §13).
func (s *Session) terminateLocked(r *request) {
	for len(s.held) > 0 {
		s.answerLocked(s.held[0], s.nextOrEmptyLocked())
	}
	resp := &Response{RID: r.RID, Type: TypeTerminate}
	s.setFinalLocked(resp)
	s.told = true
	s.cacheLocked(resp)
	s.sendLocked(r, resp)
	s.log.Info("session terminated by client")
	s.closeLocked()
}

// endLocked ends the session for a reason of the server's or boshd's own.
// The client is told with final on its oldest held request, or on its next
// request if none is held (XEP-0124 §13); stanzas still queued go with it.
func (s *Session) endLocked(final *Response) {
	if s.final != nil {
		return
	}
	final.Payload = append(s.takeAllLocked(), final.Payload...)
	s.setFinalLocked(final)
	s.log.Info("session ended", "condition", final.Condition, "type", final.Type)
	if len(s.held) > 0 {
		told := *final
		s.answerLocked(s.held[0], &told)
		s.told = true
	}
	s.answerRestLocked()
	s.closeLocked()
}

// failLocked ends the session because of request rid, which gets the
// returned response carrying cond.
func (s *Session) failLocked(rid uint64, cond Condition) *Response {
	resp := &Response{RID: rid, Type: TypeTerminate, Condition: cond}
	if s.final == nil {
		s.setFinalLocked(resp)
		s.told = true
		s.takeAllLocked()
		s.log.Info("session ended by a request", "condition", cond, "rid", rid)
		s.answerRestLocked()
		s.closeLocked()
	}
	return resp
}

// answerRestLocked tells the requests still held or pending that another
// request ended the session.
func (s *Session) answerRestLocked() {
	for len(s.held) > 0 {
		s.answerLocked(s.held[0], &Response{Type: TypeTerminate, Condition: OtherRequest})
	}
	for _, p := range s.pending {
		s.sendLocked(p, &Response{RID: p.RID, Type: TypeTerminate, Condition: OtherRequest})
		s.closeLaterLocked(p.Add)
	}
	clear(s.pending)
	s.pending = s.pending[:0]
}

// closeLocked closes the upstream streams after the writes queued so far,
// and keeps the ended session as a tombstone for Params.Inactivity.
func (s *Session) closeLocked() {
	if s.gap != nil {
		s.gap.Stop()
		s.gap = nil
	}
	for _, st := range s.streams {
		s.ops = append(s.ops, op{st: st, close: true})
	}
	s.stopIdleLocked()
	s.startIdleLocked()
}

// afterEndLocked answers a request that reached an ended session: the
// cached reply to a resent rid (XEP-0124 §13), the reason the session ended if
// the client was not yet told (XEP-0124 §13), and item-not-found after that.
func (s *Session) afterEndLocked(rid uint64) *Response {
	if c := s.cachedLocked(rid); c != nil {
		return c
	}
	if !s.told && rid > s.last+1 {
		// A request ahead of the next rid (two were open): the next one
		// gets the whole story, this one the condition alone.
		resp := &Response{RID: rid, Type: TypeTerminate, Condition: s.final.Condition}
		s.cacheLocked(resp)
		return resp
	}
	if !s.told {
		s.told = true
		resp := *s.final
		resp.RID = rid
		s.cacheLocked(&resp)
		return &resp
	}
	return &Response{RID: rid, Type: TypeTerminate, Condition: ItemNotFound}
}

// setFinalLocked marks the session ended, final being what tells the
// client, and counts the end by its condition.
func (s *Session) setFinalLocked(final *Response) {
	s.final = final
	s.reg.stats.live.Add(-1)
	// Nothing is held from now on.
	stop(s.wait)
	s.wait = nil
	if s.Params.OnEnd != nil {
		s.queueLocked(event{f: s.Params.OnEnd})
	}
	if s.reg.OnEnd != nil {
		s.queueLocked(event{end: true, cond: final.Condition})
	}
}
