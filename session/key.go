package session

import (
	"crypto/sha1"
	"encoding/hex"
	"strings"
)

// checkKeyLocked verifies req against the key sequence (XEP-0124 §15) and
// moves the sequence on. Sessions created without newkey do not use keys,
// and their requests' key and newkey are ignored (XEP-0124 §15).
func (s *Session) checkKeyLocked(req Request) bool {
	if s.key == "" {
		return true
	}
	// XEP-0124 §15.4: hex(SHA-1(key)) must be the previous key in the chain.
	sum := sha1.Sum([]byte(req.Key))
	if req.Key == "" || !strings.EqualFold(hex.EncodeToString(sum[:]), s.key) {
		return false // XEP-0124 §15.4
	}
	s.key = req.Key
	if req.NewKey != "" {
		s.key = req.NewKey // XEP-0124 §15.5
	}
	return true
}
