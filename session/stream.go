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

// terminateStreamLocked closes one of several streams at the client's
// request (XEP-0124 §16.5): its payload was queued before the closing tag, and
// the request is answered type='terminate' with the stream's name once
// older held requests have their answers.
func (s *Session) terminateStreamLocked(r *request, st *stream) {
	for len(s.held) > 0 {
		s.answerLocked(s.held[0], s.nextOrEmptyLocked())
	}
	s.ops = append(s.ops, op{st: st, close: true})
	st.closed = true
	s.takeStreamQueueLocked(st)
	s.dropStreamLocked(st)
	resp := &Response{RID: r.RID, Type: TypeTerminate, Stream: st.name}
	resp.Ack = s.ackFor(r.RID)
	s.cacheLocked(resp)
	s.sendLocked(r, resp)
	s.log.Info("stream terminated by client", "stream", st.name)
	s.startIdleLocked()
}

// streamEndedLocked handles the end of one stream, by the server or a
// failed write. The last open stream ending ends the session; any other
// is told to the client with type='terminate' and its name, and the
// session goes on (XEP-0124 §16.5).
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
