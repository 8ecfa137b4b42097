package gateway

import (
	"context"
	"strings"
	"testing"

	"github.com/boshd/boshd/config"
)

// TestDrain walks a gateway through draining, undoing it and stopping,
// checking after each step what Draining, Stopping and Ready report.
func TestDrain(t *testing.T) {
	t.Parallel()
	ln := silentListener(t)
	g := newGateway(t, func(c *config.Config) {
		c.Upstreams = map[string]string{"example.org": ln.Addr().String()}
	})
	steps := []struct {
		name          string
		do            func() bool // nil: nothing
		changed       bool        // what do returns
		draining      bool
		stopping      bool
		readyContains string // "": ready
	}{
		{name: "new", draining: false},
		{name: "undrain idle", do: g.Undrain, changed: false},
		{name: "drain", do: g.Drain, changed: true, draining: true, readyContains: "draining"},
		{name: "drain again", do: g.Drain, changed: false, draining: true, readyContains: "draining"},
		{name: "undrain", do: g.Undrain, changed: true},
		{name: "drain before stop", do: g.Drain, changed: true, draining: true, readyContains: "draining"},
		{name: "stop", do: func() bool { g.Stop(); return true }, changed: true, draining: true, stopping: true, readyContains: "shutting down"},
		{name: "undrain while stopping", do: g.Undrain, changed: true, stopping: true, readyContains: "shutting down"},
	}
	for _, st := range steps {
		if st.do != nil {
			if got := st.do(); got != st.changed {
				t.Errorf("%s: reported %v, want %v", st.name, got, st.changed)
			}
		}
		if got := g.Draining(); got != st.draining {
			t.Errorf("%s: Draining() = %v, want %v", st.name, got, st.draining)
		}
		if got := g.Stopping(); got != st.stopping {
			t.Errorf("%s: Stopping() = %v, want %v", st.name, got, st.stopping)
		}
		err := g.Ready(context.Background())
		switch {
		case st.readyContains == "" && err != nil:
			t.Errorf("%s: Ready: %v, want nil", st.name, err)
		case st.readyContains != "" && (err == nil || !strings.Contains(err.Error(), st.readyContains)):
			t.Errorf("%s: Ready: %v, want an error with %q", st.name, err, st.readyContains)
		}
	}
}
