package session

import "time"

// pollingTooOftenLocked reports whether req is an empty request of a
// polling session following an empty answer sooner than Params.Polling
// (XEP-0124 §12, §11).
func (s *Session) pollingTooOftenLocked(req Request) bool {
	if s.Params.Wait != 0 && s.Params.Hold != 0 {
		return false
	}
	empty := len(req.Payload) == 0 && !req.Restart && !req.Terminate && req.Pause == 0
	return empty && !s.lastPoll.IsZero() && s.clock.Now().Sub(s.lastPoll) < s.Params.Polling
}

// polledLocked notes, in a polling session, whether request r was an
// empty poll answered empty by resp, for pollingTooOftenLocked.
func (s *Session) polledLocked(r *request, resp *Response) {
	if s.Params.Wait != 0 && s.Params.Hold != 0 {
		return
	}
	s.lastPoll = time.Time{}
	if len(r.Payload) == 0 && !r.Restart && len(resp.Payload) == 0 && resp.Type == "" {
		s.lastPoll = s.clock.Now()
	}
}
