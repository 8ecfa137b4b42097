package session

import (
	"slices"
	"time"
)

// MaxRID is the highest request ID a client may use, 2^53-1 (XEP-0124
// §14.1), so that rids survive JavaScript numbers.
const MaxRID = 1<<53 - 1

// acceptLocked takes a request into the session. It returns either the
// request, to be waited on, or an immediate response.
func (s *Session) acceptLocked(req Request) (*request, *Response) {
	if s.final != nil {
		return nil, s.afterEndLocked(req.RID)
	}
	switch {
	case req.RID <= s.last:
		return s.repeatLocked(req)
	case req.RID > s.last+uint64(s.Params.Requests):
		// XEP-0124 §14.2: beyond the window.
		s.log.Info("rid beyond window", "rid", req.RID, "last", s.last, "requests", s.Params.Requests)
		return nil, s.failLocked(req.RID, ItemNotFound)
	}
	if req.Pause == 0 && !req.Terminate && len(s.held)+len(s.pending) >= s.Params.Requests {
		// XEP-0124 §11: more requests open than advertised; one extra is
		// allowed for a pause or a terminate.
		s.log.Info("too many requests open", "rid", req.RID, "requests", s.Params.Requests)
		return nil, s.failLocked(req.RID, PolicyViolation)
	}
	r := s.newRequest(req)
	for i, p := range s.pending {
		if p.RID == req.RID {
			// The same rid again while it waits for a gap: the older
			// copy's client gave up on it (XEP-0124 §14.3).
			s.sendLocked(p, &Response{RID: p.RID, Type: TypeError})
			s.closeLaterLocked(p.Add)
			s.pending[i] = r
			return r, nil
		}
	}
	s.pending = append(s.pending, r)
	s.unattached = false // Params.AttachTimeout: the client has come
	s.stopIdleLocked()
	s.advanceLocked()
	return r, nil
}

// advanceLocked processes pending requests in rid order for as long as the
// next rid is there (XEP-0124 §14.2).
func (s *Session) advanceLocked() {
	for {
		next := -1
		for i, p := range s.pending {
			if p.RID == s.last+1 {
				next = i
				break
			}
		}
		if next < 0 {
			s.armGapLocked()
			return
		}
		r := s.pending[next]
		s.pending = append(s.pending[:next], s.pending[next+1:]...)
		s.last = r.RID
		if !s.checkKeyLocked(r.Request) {
			s.log.Info("key sequence broken", "rid", r.RID)
			s.sendLocked(r, s.failLocked(r.RID, ItemNotFound))
			return
		}
		if s.pollingTooOftenLocked(r.Request) {
			s.log.Info("polling too often", "rid", r.RID, "polling", s.Params.Polling)
			s.sendLocked(r, s.failLocked(r.RID, PolicyViolation))
			return
		}
		s.ackedLocked(r.Request)
		s.processLocked(r)
	}
}

// repeatLocked answers a request whose rid was already processed: from
// the cache (XEP-0124 §14.3), by taking the place of a held copy (XEP-0124 §14.3), or
// with item-not-found when its response is gone (XEP-0124 §14.3).
func (s *Session) repeatLocked(req Request) (*request, *Response) {
	if i := slices.Index(s.skipped, req.RID); i >= 0 {
		// A rid given up for lost arrived after all: forward what it
		// carries, and answer it empty.
		s.skipped = slices.Delete(s.skipped, i, i+1)
		s.log.Info("rid given up for lost arrived late", "rid", req.RID)
		if len(req.Payload) > 0 && !req.Restart && req.Add == nil {
			for _, st := range s.openLocked() {
				if req.Stream == "" || st.name == req.Stream {
					s.ops = append(s.ops, op{st: st, data: req.Payload})
				}
			}
		}
		resp := &Response{RID: req.RID}
		s.cacheLocked(resp)
		return nil, resp
	}
	if c := s.cachedLocked(req.RID); c != nil {
		s.log.Debug("resent rid answered from cache", "rid", req.RID)
		return nil, c
	}
	for i, h := range s.held {
		if h.RID == req.RID {
			r := s.newRequest(h.Request)
			r.due = h.due
			s.sendLocked(h, &Response{RID: h.RID, Type: TypeError})
			s.held[i] = r
			s.log.Debug("resent rid replaces held copy", "rid", req.RID)
			return r, nil
		}
	}
	s.log.Info("resent rid no longer cached", "rid", req.RID, "last", s.last)
	return nil, s.failLocked(req.RID, ItemNotFound)
}

// DefaultGapWait is how long a request waits for a missing lower rid by
// default.
const DefaultGapWait = 2 * time.Second

// armGapLocked runs the gap timer while requests wait for a missing rid,
// and stops it when none do.
func (s *Session) armGapLocked() {
	switch {
	case len(s.pending) == 0 && s.gap != nil:
		s.gap.Stop()
		s.gap = nil
	case len(s.pending) > 0 && s.gap == nil && s.final == nil:
		wait := s.Params.GapWait
		if wait <= 0 {
			wait = DefaultGapWait
		}
		// Only right after a client went away is a missing rid likely
		// dead; otherwise it may just be slow.
		if s.abandoned.IsZero() || s.clock.Now().Sub(s.abandoned) > s.Params.Wait+wait {
			wait = max(wait, s.Params.Wait)
		}
		s.gap = s.clock.AfterFunc(wait, s.gapExpired)
	}
}

// gapExpired gives up the rids missing below the lowest pending request,
// and processes the requests that waited for them. A rid can go missing
// for good when a page reload kills a request that Strophe.js had already
// counted (its keepalive stores the next rid before sending): waiting for
// it would hang the session. Should a skipped rid arrive after all, its
// payload is still forwarded (see repeatLocked).
func (s *Session) gapExpired() {
	s.do(func() {
		s.gap = nil
		if len(s.pending) == 0 || s.final != nil {
			return
		}
		lowest := s.pending[0].RID
		for _, p := range s.pending {
			lowest = min(lowest, p.RID)
		}
		for rid := s.last + 1; rid < lowest; rid++ {
			s.skipped = append(s.skipped, rid)
		}
		if n := len(s.skipped) - s.Params.Requests; n > 0 {
			s.skipped = append(s.skipped[:0], s.skipped[n:]...)
		}
		s.log.Info("rids given up for lost", "from", s.last+1, "to", lowest-1)
		s.last = lowest - 1
		s.advanceLocked()
	})
}
