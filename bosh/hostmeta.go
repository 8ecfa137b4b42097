package bosh

import (
	"net/http"

	"github.com/boshd/boshd/gateway"
)

// Paths of the two forms of XEP-0156 host-meta, where HostMeta is mounted:
// gateway.HostMetaPath and gateway.HostMetaJSONPath.
const (
	HostMetaPath     = gateway.HostMetaPath
	HostMetaJSONPath = gateway.HostMetaJSONPath
)

// HostMeta returns a handler for XEP-0156 discovery that advertises boshURL
// as the BOSH connection method: gateway.HostMeta with that one link. Mount
// it at HostMetaPath and at HostMetaJSONPath.
//
// boshURL is normally absolute (https://chat.example.org/http-bind). A
// path alone (/http-bind) is advertised on the scheme and host each request
// came to, for a server that does not know its public name.
func HostMeta(boshURL string) http.Handler {
	return gateway.HostMeta(gateway.Link{Rel: gateway.RelBOSH, Href: boshURL})
}
