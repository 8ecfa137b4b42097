package session

// pauseLocked pauses the session at request r's asking (XEP-0124 §10):
// every held request is answered now, without payload (XEP-0124 §10), r
// itself too, and the session waits r.Pause for the client instead of
// Params.Inactivity, for this idle period only (XEP-0124 §10;
// see startIdleLocked).
func (s *Session) pauseLocked(r *request) {
	for len(s.held) > 0 {
		s.answerLocked(s.held[0], &Response{})
	}
	s.sendLocked(r, &Response{RID: r.RID})
	s.log.Debug("session paused", "pause", r.Pause)
	s.pause = r.Pause
	s.startIdleLocked()
}
