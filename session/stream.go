package session

import (
	"crypto/rand"
	"encoding/base64"
	"time"
)

// stream is one upstream XMPP stream of a session. A session has one, or
// several with XEP-0124 §16 multiple streams.
type stream struct {
	name   string   // immutable; "" unless multiple streams are on
	up     Upstream // immutable
	resume func()   // immutable; starts a new reader after a Park

	// unreleased is set by st's reader when it queued an element
	// without answering a held request (see batcher); owned by the
	// reader.
	unreleased bool

	// Guarded by Session.mu.
	queue    [][]byte  // elements from the server waiting for a request
	queuedAt time.Time // when the first of them arrived
	// closed is set when the stream has ended; final then tells the
	// client, on a held request or the next one, unless the whole
	// session ended with it.
	closed bool
	final  *Response
}

// newStreamName returns a stream name unique in practice: 64 random bits.
func newStreamName() string {
	var b [8]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// streamLocked returns the open stream called name, or nil.
func (s *Session) streamLocked(name string) *stream {
	for _, st := range s.streams {
		if st.name == name && !st.closed {
			return st
		}
	}
	return nil
}

// openLocked returns the open streams.
func (s *Session) openLocked() []*stream {
	open := make([]*stream, 0, len(s.streams))
	for _, st := range s.streams {
		if !st.closed {
			open = append(open, st)
		}
	}
	return open
}

// nextLocked returns the response carrying one stream's waiting elements
// (or its end), taking streams in turn so that none starves the others,
// or nil if nothing waits. A response never mixes streams (R-MULTI-3).
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

// takeAllLocked empties every stream's queue, for the last response of a
// session.
func (s *Session) takeAllLocked() [][]byte {
	var all [][]byte
	for _, st := range s.streams {
		all = append(all, s.takeStreamQueueLocked(st)...)
	}
	return all
}

// dropStreamLocked forgets a closed stream whose end the client knows.
func (s *Session) dropStreamLocked(st *stream) {
	for i, x := range s.streams {
		if x == st {
			s.streams = append(s.streams[:i], s.streams[i+1:]...)
			if s.turn > i {
				s.turn--
			}
			if s.turn >= len(s.streams) {
				s.turn = 0
			}
			return
		}
	}
}

// streamEndedLocked handles the end of one stream, by the server or a
// failed write. The last open stream ending ends the session; any other
// is told to the client with type='terminate' and its name, and the
// session goes on (R-MULTI-4).
func (s *Session) streamEndedLocked(st *stream, final *Response) {
	if st.closed || s.final != nil {
		return
	}
	s.ops = append(s.ops, op{st: st, close: true})
	if len(s.openLocked()) == 1 {
		s.endLocked(final)
		return
	}
	st.closed = true
	final.Stream = st.name
	st.final = final
	s.log.Info("stream ended", "stream", st.name, "condition", final.Condition)
	s.releaseLocked()
}
