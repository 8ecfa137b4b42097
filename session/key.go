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
