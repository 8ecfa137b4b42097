package config

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateCluster(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	secret := write("secret", strings.Repeat("s", 32)+"\n")
	short := write("short", strings.Repeat("s", 31)+"\n\n")
	blank := write("blank", strings.Repeat(" ", 40))
	peers := map[string]string{"n2": "10.0.0.2:5280", "n3": "[2001:db8::3]:5280"}
	for _, tc := range []struct {
		name   string
		modify func(*Config)
		want   []string // substrings of the error; none if valid
	}{
		{"single node", func(c *Config) {}, nil},
		{"node_id alone", func(c *Config) { c.NodeID = "n1" }, nil},
		{"node_id longest", func(c *Config) { c.NodeID = strings.Repeat("a", 32) }, nil},
		{"node_id letters digits dash", func(c *Config) { c.NodeID = "Node-07" }, nil},
		{"node_id too long", func(c *Config) { c.NodeID = strings.Repeat("a", 33) }, []string{"config: node_id: ", "1 to 32"}},
		{"node_id with dot", func(c *Config) { c.NodeID = "n.1" }, []string{"config: node_id: ", `"n.1"`}},
		{"node_id with underscore", func(c *Config) { c.NodeID = "n_1" }, []string{"config: node_id: ", `"n_1"`}},
		{"node_id non-ASCII", func(c *Config) { c.NodeID = "nœud" }, []string{"config: node_id: "}},

		{"cluster", func(c *Config) { c.NodeID, c.Peers, c.ClusterSecretFile = "n1", peers, secret }, nil},
		{"secret without peers", func(c *Config) { c.NodeID, c.ClusterSecretFile = "n1", secret }, nil},
		{"peers without node_id", func(c *Config) { c.Peers, c.ClusterSecretFile = peers, secret }, []string{"config: peers: need node_id"}},
		{"peers without secret", func(c *Config) { c.NodeID, c.Peers = "n1", peers }, []string{"config: peers: need cluster_secret_file"}},
		{"peers naming this node", func(c *Config) {
			c.NodeID, c.ClusterSecretFile = "n2", secret
			c.Peers = peers
		}, []string{"config: peers: n2: is node_id"}},
		{"peer name invalid", func(c *Config) {
			c.NodeID, c.ClusterSecretFile = "n1", secret
			c.Peers = map[string]string{"n.2": "10.0.0.2:5280"}
		}, []string{"config: peers: name must be", `"n.2"`}},
		{"peer without port", func(c *Config) {
			c.NodeID, c.ClusterSecretFile = "n1", secret
			c.Peers = map[string]string{"n2": "10.0.0.2"}
		}, []string{"config: peers: n2: address", `"10.0.0.2"`}},
		{"peer without host", func(c *Config) {
			c.NodeID, c.ClusterSecretFile = "n1", secret
			c.Peers = map[string]string{"n2": ":5280"}
		}, []string{"config: peers: n2: address"}},
		{"peer empty address", func(c *Config) {
			c.NodeID, c.ClusterSecretFile = "n1", secret
			c.Peers = map[string]string{"n2": ""}
		}, []string{"config: peers: n2: address"}},

		{"secret too short", func(c *Config) { c.NodeID, c.ClusterSecretFile = "n1", short }, []string{"config: cluster_secret_file: ", "31 bytes", "at least 32"}},
		{"secret all blank", func(c *Config) { c.ClusterSecretFile = blank }, []string{"config: cluster_secret_file: ", "0 bytes"}},
		{"secret missing", func(c *Config) { c.ClusterSecretFile = secret + ".missing" }, []string{"config: cluster_secret_file: ", "no such file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := Default()
			tc.modify(&c)
			err := c.Validate()
			if tc.want == nil {
				if err != nil {
					t.Errorf("Validate() = %v, want nil", err)
				}
				return
			}
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v, want an error containing %q", err, w)
				}
			}
		})
	}
}

func TestReadClusterSecret(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		name, content string
		want          string // the secret; "" for an error
	}{
		{"exact", strings.Repeat("k", 32), strings.Repeat("k", 32)},
		{"newline trimmed", strings.Repeat("k", 40) + "\r\n", strings.Repeat("k", 40)},
		{"leading space kept", " " + strings.Repeat("k", 31) + "\n", " " + strings.Repeat("k", 31)},
		{"binary", string(bytes.Repeat([]byte{0, 0xff}, 16)), string(bytes.Repeat([]byte{0, 0xff}, 16))},
		{"short once trimmed", strings.Repeat("k", 31) + "\t ", ""},
		{"empty", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := ReadClusterSecret(path)
			switch {
			case tc.want == "" && err == nil:
				t.Errorf("ReadClusterSecret() = %q, want an error", got)
			case tc.want != "" && (err != nil || string(got) != tc.want):
				t.Errorf("ReadClusterSecret() = %q, %v, want %q", got, err, tc.want)
			}
		})
	}
}
