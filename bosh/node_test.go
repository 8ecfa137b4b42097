package bosh

import (
	"testing"

	"github.com/boshd/boshd/config"
)

func TestNodeOf(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ sid, want string }{
		{"", ""},
		{"ZlR3x9Qk0aB1c2D3e4F5g6H7", ""},
		{"n1.ZlR3x9Qk0aB1c2D3e4F5g6H7", "n1"},
		{"node-7.abc", "node-7"},
		{"n1.a.b", "n1"},
		{".abc", ""},
		{"n1.", "n1"},
	} {
		if got := NodeOf(tc.sid); got != tc.want {
			t.Errorf("NodeOf(%q) = %q, want %q", tc.sid, got, tc.want)
		}
	}
}

// TestNodeSIDs checks that a handler with node_id gives sids of its node,
// and serves requests for them.
func TestNodeSIDs(t *testing.T) {
	t.Parallel()
	for _, node := range []string{"", "n1"} {
		t.Run("node_id="+node, func(t *testing.T) {
			t.Parallel()
			env := newEnv(t, func(c *config.Config) { c.NodeID = node })
			sid := env.create(100, 1)
			if NodeOf(sid) != node {
				t.Fatalf("sid %q names node %q, want %q", sid, NodeOf(sid), node)
			}
			resp := receive(t, env.postAsync(emptyBody(sid, 101)))
			if a := attrs(resp); a["type"] == "terminate" {
				t.Fatalf("request for %q answered %s", sid, resp)
			}
		})
	}
}
