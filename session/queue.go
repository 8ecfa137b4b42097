package session

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

// nextLocked returns the response carrying one stream's waiting elements
// (or its end), taking streams in turn so that none starves the others,
// or nil if nothing waits. A response never mixes streams (XEP-0124 §16.4).
func (s *Session) nextLocked() *Response {
	n := len(s.streams)
	for i := range n {
		st := s.streams[(s.turn+i)%n]
		if len(st.queue) == 0 && st.final == nil {
			continue
		}
		s.turn = (s.turn + i + 1) % n
		if len(st.queue) > 0 && s.reg.OnPush != nil {
			s.queueLocked(event{push: true, waited: s.clock.Now().Sub(st.queuedAt)})
		}
		resp := &Response{Payload: s.takeStreamQueueLocked(st), Stream: st.name}
		if st.final != nil {
			resp.Type, resp.Condition = st.final.Type, st.final.Condition
			resp.Payload = append(resp.Payload, st.final.Payload...)
			s.dropStreamLocked(st)
		}
		return resp
	}
	return nil
}

// nextOrEmptyLocked is nextLocked, with an empty response when nothing
// waits.
func (s *Session) nextOrEmptyLocked() *Response {
	if next := s.nextLocked(); next != nil {
		return next
	}
	return &Response{}
}

// takeAllLocked empties every stream's queue, for the last response of a
// session.
func (s *Session) takeAllLocked() [][]byte {
	var all [][]byte
	for _, st := range s.streams {
		all = append(all, s.takeStreamQueueLocked(st)...)
	}
	return all
}

// takeStreamQueueLocked empties st's queue and returns what it held.
func (s *Session) takeStreamQueueLocked(st *stream) [][]byte {
	q := st.queue
	var n int64
	for _, el := range q {
		n += int64(len(el))
	}
	s.queueBytes -= n
	s.reg.stats.queued.Add(-int64(len(q)))
	s.reg.stats.queuedBytes.Add(-n)
	st.queue = nil
	return q
}
