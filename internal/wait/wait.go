package wait

import (
	"fmt"
	"testing"
	"time"
)

// Deadline is how long Until and Receive wait before failing the test.
const Deadline = 10 * time.Second

// For calls cond until it returns true or timeout has passed, and reports
// whether it returned true; cond is called once more after the deadline.
// It does not need a testing.TB, so that
// goroutines other than the test's may use it.
func For(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	pause := 100 * time.Microsecond
	for !cond() {
		if time.Now().After(deadline) {
			// One last look: the condition may have come true while
			// this goroutine was not running.
			return cond()
		}
		time.Sleep(pause)
		pause = min(2*pause, 10*time.Millisecond)
	}
	return true
}

// Until calls cond until it returns true, and fails t if it has not
// within Deadline. what, formatted with args as by fmt.Sprintf, says what
// the test waits for: "2 requests held", say.
func Until(t testing.TB, cond func() bool, what string, args ...any) {
	t.Helper()
	if !For(Deadline, cond) {
		t.Fatalf("waited %v for %s", Deadline, fmt.Sprintf(what, args...))
	}
}

// Receive returns the next value from ch, and fails t if none comes
// within Deadline. what says what the value is.
func Receive[T any](t testing.TB, ch <-chan T, what string, args ...any) T {
	t.Helper()
	timer := time.NewTimer(Deadline)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("waited %v for %s", Deadline, fmt.Sprintf(what, args...))
		panic("unreachable")
	}
}
