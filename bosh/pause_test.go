package bosh

import (
	"testing"
	"time"

	"github.com/boshd/boshd/config"
)

// TestPauseValue checks how a request's pause attribute becomes the time
// a session may stay idle (XEP-0124 §10): ignored when pause is off
// (max_pause 0) or the value is not a number of seconds, and no longer
// than max_pause.
func TestPauseValue(t *testing.T) {
	for _, tc := range []struct {
		name     string
		maxPause time.Duration
		value    string
		want     time.Duration
	}{
		{"within max_pause", 120 * time.Second, "60", 60 * time.Second},
		{"at max_pause", 120 * time.Second, "120", 120 * time.Second},
		{"above max_pause is clamped", 120 * time.Second, "3600", 120 * time.Second},
		{"pause off", 0, "60", 0},
		{"absent", 120 * time.Second, "", 0},
		{"not a number", 120 * time.Second, "1m", 0},
		{"negative", 120 * time.Second, "-5", 0},
		{"beyond 32 bits", 120 * time.Second, "4294967296", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &Handler{cfg: config.Config{MaxPause: tc.maxPause}}
			if got := h.pause(tc.value); got != tc.want {
				t.Errorf("pause=%q with max_pause %v: got %v, want %v", tc.value, tc.maxPause, got, tc.want)
			}
		})
	}
}
