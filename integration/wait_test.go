package integration

import (
	"testing"
	"time"
)

// Waiting on state. A test that needs something to have happened waits
// until it can see it (a metric, a log line, a process count), up to a
// bound, rather than sleeping for a time that is usually enough.
//
// These are the integration package's own until internal/wait (being
// written on another branch) can be imported; they are meant to be
// replaced by it.

// pollInterval is how long waitUntil sleeps between two looks: a poll
// interval, not a wait for an event.
const pollInterval = 10 * time.Millisecond

// waitUntil calls cond until it returns true or timeout passes, and reports
// whether it did. cond is called at least once, and once more after the
// deadline, so a condition that became true while the caller was
// descheduled is not missed.
func waitUntil(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pollInterval)
	}
}

// eventually fails t unless cond holds within timeout; what says what was
// waited for. A caller that wants the last state in the message uses
// waitUntil.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !waitUntil(timeout, cond) {
		t.Fatalf("%s: not within %v", what, timeout)
	}
}
