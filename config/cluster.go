package config

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
)

// MinClusterSecret is the shortest secret ReadClusterSecret accepts, in
// bytes: 256 bits, the size of an HMAC-SHA256 key that no search can
// find.
const MinClusterSecret = 32

// maxNodeName is the longest node_id, and the longest name in peers.
const maxNodeName = 32

// ReadClusterSecret reads the secret of cluster_secret_file: the file's
// bytes without trailing white space (a newline an editor or `echo`
// adds), at least MinClusterSecret of them.
func ReadClusterSecret(name string) ([]byte, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	b = bytes.TrimRight(b, " \t\r\n")
	if len(b) < MinClusterSecret {
		return nil, fmt.Errorf("%q holds %d bytes of secret, want at least %d", name, len(b), MinClusterSecret)
	}
	return b, nil
}

// checkNodeName checks a node's name: 1 to 32 ASCII letters, digits and
// "-". The name must not hold a ".", which ends it in a sid.
func checkNodeName(name string) error {
	ok := name != "" && len(name) <= maxNodeName
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-'
	}
	if !ok {
		return fmt.Errorf("must be 1 to %d letters, digits or \"-\", got %q", maxNodeName, name)
	}
	return nil
}

// checkSecretFile checks that cluster_secret_file holds a secret long
// enough.
func checkSecretFile(name string) error {
	_, err := ReadClusterSecret(name)
	return err
}

// checkPeers checks the peers: names like node_id's, none of them
// node_id itself, addresses host:port; and, if there are any, that
// node_id and cluster_secret_file are set.
func checkPeers(c Config) error {
	if len(c.Peers) == 0 {
		return nil
	}
	var errs []error
	if c.NodeID == "" {
		errs = append(errs, errors.New("need node_id: a node forwards only for a sid naming another node"))
	}
	if c.ClusterSecretFile == "" {
		errs = append(errs, errors.New("need cluster_secret_file: forwarded requests are signed"))
	}
	for _, name := range slices.Sorted(maps.Keys(c.Peers)) {
		addr := c.Peers[name]
		if err := checkNodeName(name); err != nil {
			errs = append(errs, fmt.Errorf("name %w", err))
		}
		if name == c.NodeID {
			errs = append(errs, fmt.Errorf("%s: is node_id, this node itself", name))
		}
		if host, ok := splitHostPort(addr, 1); !ok || host == "" {
			errs = append(errs, fmt.Errorf("%s: address must be host:port with a port 1-65535, got %q", name, addr))
		}
	}
	return errors.Join(errs...)
}
