package session

import (
	"crypto/sha1"
	"encoding/hex"
	"strings"
)

// checkKeyLocked verifies req against the key sequence (XEP-0124 §15) and
// moves the sequence on. Sessions created without newkey do not use keys,
// and their requests' key and newkey are ignored (R-KEY-4).
func (s *Session) checkKeyLocked(req Request) bool {
	if s.key == "" {
		return true
	}
	// R-KEY-1: hex(SHA-1(key)) must be the previous key in the chain.
	sum := sha1.Sum([]byte(req.Key))
	if req.Key == "" || !strings.EqualFold(hex.EncodeToString(sum[:]), s.key) {
		return false // R-KEY-2
	}
	s.key = req.Key
	if req.NewKey != "" {
		s.key = req.NewKey // R-KEY-3
	}
	return true
}

// pollingTooOftenLocked reports whether req is an empty request of a
// polling session following an empty answer sooner than Params.Polling
// (R-POLL-2, R-OVER-2).
func (s *Session) pollingTooOftenLocked(req Request) bool {
	if s.Params.Wait != 0 && s.Params.Hold != 0 {
		return false
	}
	empty := len(req.Payload) == 0 && !req.Restart && !req.Terminate && req.Pause == 0
	return empty && !s.lastPoll.IsZero() && s.clock.Now().Sub(s.lastPoll) < s.Params.Polling
}
