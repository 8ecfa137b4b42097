package session

import (
	"errors"
	"io"

	"boshd/xmpp"
)

// op is one queued upstream write.
type op struct {
	data    [][]byte // stanzas to write
	restart bool     // open a new stream
	close   bool     // close the stream
}

// runWrites performs queued upstream writes in order unless another
// goroutine is already doing so. Call it after releasing s.mu whenever ops
// may have been queued.
func (s *Session) runWrites() {
	s.mu.Lock()
	if s.writing {
		s.mu.Unlock()
		return
	}
	s.writing = true
	for len(s.ops) > 0 {
		ops := s.ops
		s.ops = nil
		s.mu.Unlock()
		err := s.perform(ops)
		s.mu.Lock()
		if err != nil {
			s.log.Info("upstream write failed", "err", err)
			s.endLocked(&Response{Type: TypeTerminate, Condition: RemoteConnectionFailed})
			s.ops = nil
			s.writing = false
			s.mu.Unlock()
			s.up.Close()
			return
		}
	}
	s.writing = false
	s.mu.Unlock()
}

func (s *Session) perform(ops []op) error {
	for _, o := range ops {
		var err error
		switch {
		case o.close:
			return s.up.Close()
		case o.restart:
			err = s.up.Restart()
		default:
			err = s.up.Write(o.data...)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// read relays elements from the upstream stream to the session until the
// stream ends. It is the session's one reader goroutine.
func (s *Session) read() {
	for {
		el, err := s.up.Next()
		if err != nil {
			s.upstreamEnded(err)
			return
		}
		s.deliver(el)
	}
}

// upstreamEnded ends the session when the server ends the stream: a
// stream error becomes remote-stream-error carrying the error element
// (R-XMPP-10, R-ERR-1), a clean close a plain terminate, anything else
// remote-connection-failed (R-TERM-5).
func (s *Session) upstreamEnded(err error) {
	s.mu.Lock()
	if s.final != nil {
		// We closed the stream ourselves.
		s.mu.Unlock()
		s.up.Close()
		return
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
	s.endLocked(final)
	s.mu.Unlock()
	s.runWrites()
	s.up.Close()
}
