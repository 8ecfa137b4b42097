package session

import (
	"errors"
	"io"
	"slices"

	"github.com/boshd/boshd/xmpp"
)

// op is one queued upstream write.
type op struct {
	st      *stream  // the stream written to
	data    [][]byte // stanzas to write
	restart bool     // open a new stream
	close   bool     // close the stream
}

// write performs the queued upstream writes in order, with s.mu
// released, unless another goroutine is doing so: that one performs them
// too. It is the last part of unlocking a session (see do). If a write
// panics, writing is cleared and s.mu released all the same, so that a
// recovered panic leaves the session usable.
func (s *Session) write() {
	s.mu.Lock()
	defer s.unlock()
	if s.writing {
		return
	}
	s.writing = true
	defer func() { s.writing = false }()
	for len(s.ops) > 0 {
		ops := s.ops
		s.ops = nil
		failed, err := s.performUnlocked(ops)
		if err != nil {
			s.writeFailedLocked(ops[failed].st, ops[failed+1:], err)
		}
	}
}

// performUnlocked is perform with s.mu released, after the callbacks
// queued so far have run, and s.mu held again on return, panic included
// (a callback's too): should a callback panic, ops are still performed
// before the panic goes on.
func (s *Session) performUnlocked(ops []op) (failed int, err error) {
	var buf [inlineEvents]event
	events, _ := s.take(buf[:0])
	defer s.mu.Lock()
	// The writes were accepted: they are performed even if a callback
	// panics.
	defer func() { failed, err = s.perform(ops) }()
	s.run(events)
	return 0, nil
}

// perform does ops in order, until one fails: it returns that one's
// index and its error.
func (s *Session) perform(ops []op) (failed int, err error) {
	for i, o := range ops {
		switch {
		case o.close:
			o.st.up.Close()
		case o.restart:
			err = o.st.up.Restart()
		default:
			err = o.st.up.Write(o.data...)
		}
		if err != nil {
			return i, err
		}
	}
	return 0, nil
}

// writeFailedLocked ends stream st, whose write failed with err; rest are
// the writes of the same batch after the failed one. Those for other
// streams are put back ahead of what was queued since, so that a broken
// stream costs the others nothing while the session goes on. If st was
// the last stream, the session ends, and only the closes are left.
func (s *Session) writeFailedLocked(st *stream, rest []op, err error) {
	s.log.Info("upstream write failed", "stream", st.name, "err", err)
	toBroken := func(o op) bool { return o.st == st && !o.close }
	kept := slices.DeleteFunc(slices.Clone(rest), toBroken)
	s.ops = slices.DeleteFunc(append(kept, s.ops...), toBroken)
	// streamEndedLocked queues st's close, done by the writer with s.mu
	// released like every other Upstream call.
	s.streamEndedLocked(st, &Response{Type: TypeTerminate, Condition: RemoteConnectionFailed})
	if s.final != nil {
		s.ops = s.ops[:0]
		for _, other := range s.streams {
			s.ops = append(s.ops, op{st: other, close: true})
		}
	}
}

// parker is an Upstream that can wait for the server without a goroutine,
// as *xmpp.Conn does (xmpp.Conn.Park).
type parker interface {
	// Park reports true if it took over waiting for the server: resume
	// is then called when there is more to read, and Next must not be
	// called before.
	Park(resume func()) bool
}

// batcher is an Upstream that can tell when the server has already sent
// more than Next returned, as *xmpp.Conn does: the reader then queues what
// it read without answering a held request, and answers once it has read
// everything the server sent, so that a burst goes out in one response
// rather than one stanza in the first response and the rest in the next.
type batcher interface {
	// Buffered reports whether bytes of a next element have been read.
	Buffered() bool
	// OnWait sets f to be called by Next before it waits for the
	// server.
	OnWait(f func())
}

// startReading starts st's reader.
func (s *Session) startReading(st *stream) {
	st.resume = func() { go s.read(st, true) }
	if b, ok := st.up.(batcher); ok {
		b.OnWait(func() { s.releaseBatch(st) })
	}
	go s.read(st, false)
}

// read relays elements from stream st to the session until the stream
// ends. It is st's one reader goroutine; when the upstream can wait for
// the server without it (parker), it ends while the stream is idle, from
// the start too (a session whose server has not spoken yet holds no
// goroutine), and a new one starts when the server sends more. resumed
// says the upstream has just woken from a Park: something is there to
// read, and parking again before reading it would only wake at once.
func (s *Session) read(st *stream, resumed bool) {
	p, canPark := st.up.(parker)
	b, canBatch := st.up.(batcher)
	for {
		more := canBatch && b.Buffered()
		if !resumed && !more && canPark && p.Park(st.resume) {
			return
		}
		resumed = false
		el, err := st.up.Next()
		if err != nil {
			s.upstreamEnded(st, err)
			return
		}
		more = canBatch && b.Buffered()
		st.unreleased = more
		s.deliver(st, el, !more)
	}
}

// releaseBatch answers held requests with what the reader of st queued
// without answering, when Next is about to wait for the server.
func (s *Session) releaseBatch(st *stream) {
	if !st.unreleased {
		return
	}
	st.unreleased = false
	s.do(func() {
		if s.final == nil && !st.closed {
			s.releaseLocked()
		}
	})
}

// upstreamEnded ends the session when the server ends the stream: a
// stream error becomes remote-stream-error carrying the error element
// (XEP-0206 §6; XEP-0124 §17.2), a clean close a plain terminate, anything else
// remote-connection-failed (XEP-0124 §13).
func (s *Session) upstreamEnded(st *stream, err error) {
	s.do(func() {
		if s.final != nil || st.closed {
			return // we closed the stream ourselves
		}
		final := &Response{Type: TypeTerminate}
		var serr *xmpp.StreamError
		switch {
		case errors.As(err, &serr):
			s.log.Info("upstream stream error", "condition", serr.Condition)
			final.Condition = RemoteStreamError
			final.Payload = [][]byte{serr.Raw}
		case errors.Is(err, io.EOF):
			s.log.Info("upstream closed the stream")
		default:
			s.log.Info("upstream connection lost", "err", err)
			final.Condition = RemoteConnectionFailed
		}
		s.streamEndedLocked(st, final)
	})
	st.up.Close()
}
