package bosh

import "strings"

// NodeOf returns the name of the node whose session the sid names: the
// part before its first ".", as config.Config.NodeID prefixes the
// sessions of a node (docs/design/004-cluster.md). It returns "" for a sid
// without a ".", which a single node gives out.
func NodeOf(sid string) string {
	node, _, ok := strings.Cut(sid, ".")
	if !ok {
		return ""
	}
	return node
}
