package integration

import (
	"testing"
	"time"

	"github.com/boshd/boshd/internal/wait"
)

// eventually fails t unless cond holds within timeout; what says what was
// waited for. It is internal/wait's Until with a timeout of the caller's:
// the integration tests wait on real servers and browsers, some for
// longer than wait.Deadline. A caller that wants the last state in the
// message uses wait.For.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !wait.For(timeout, cond) {
		t.Fatalf("%s: not within %v", what, timeout)
	}
}
