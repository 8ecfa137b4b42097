package session

import "time"

// cached is a response kept for resends, with when it was sent.
type cached struct {
	resp *Response
	at   time.Time
}

// maxUnacked bounds the responses kept for a client that uses acks but
// never acknowledges anything.
const maxUnacked = 64

// cacheLocked keeps resp for resends of its rid (XEP-0124 §14.3): the latest
// Params.Requests responses, or with acks every unacknowledged one up to
// maxUnacked.
func (s *Session) cacheLocked(resp *Response) {
	keep := max(s.Params.Requests, 1)
	if s.Params.Acks {
		keep = maxUnacked
	}
	if len(s.cache) >= keep {
		n := copy(s.cache, s.cache[len(s.cache)-keep+1:])
		clear(s.cache[n:])
		s.cache = s.cache[:n]
	}
	s.cache = append(s.cache, cached{resp, s.clock.Now()})
	s.answered = max(s.answered, resp.RID)
}

// cachedLocked returns the cached response to rid, or nil.
func (s *Session) cachedLocked(rid uint64) *Response {
	for _, c := range s.cache {
		if c.resp.RID == rid {
			return c.resp
		}
	}
	return nil
}

// ackedLocked takes in the client's acknowledgement carried by req
// (XEP-0124 §9.2): responses it has are dropped from the cache, and if it lacks
// one that was sent, the next response reports it (XEP-0124 §9.2).
func (s *Session) ackedLocked(req Request) {
	if !s.Params.Acks {
		return
	}
	has := req.Ack
	if has == 0 {
		// No ack attribute: the client has every response so far.
		has = req.RID - 1
	}
	keep := s.cache[:0]
	for _, c := range s.cache {
		if c.resp.RID > has {
			keep = append(keep, c)
		}
	}
	clear(s.cache[len(keep):])
	s.cache = keep
	if req.Ack != 0 && req.Ack < s.answered && len(s.cache) > 0 && s.cache[0].resp.RID == req.Ack+1 {
		sent := s.clock.Now().Sub(s.cache[0].at)
		s.report = &Response{Report: req.Ack + 1, Time: int(min(sent/time.Millisecond, maxReportTime))}
	}
}

// maxReportTime is the largest time attribute of a report, an
// xs:unsignedShort.
const maxReportTime = 65535

// ackFor returns the ack attribute of the response to rid (XEP-0124 §9.1):
// the highest rid received with none missing below it, or zero
// to leave it out when that is rid itself (XEP-0124 §9.1).
func (s *Session) ackFor(rid uint64) uint64 {
	if !s.Params.Acks || s.last == rid {
		return 0
	}
	return s.last
}
