package bosh

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// This file is the hop of a request forwarded from one node of a cluster
// to another (docs/design/004-cluster.md, "Forwarding"): the headers the
// forwarding node adds, signed with the cluster's shared secret, and
// their check by the node that receives them.

// The headers of a forwarded request. Every header whose name starts with
// hopPrefix belongs to the hop: a request with any of them is served only
// if they all check out.
const (
	hopPrefix = "Boshd-Forward"
	// hopFrom names the forwarding node (its node_id).
	hopFrom = "Boshd-Forwarded"
	// hopFor is the client's IP address as the forwarding node
	// resolved it (behind its trusted proxies).
	hopFor = "Boshd-Forwarded-For"
	// hopProto is "https" if the client's request reached the
	// forwarding node over TLS, else "http" (XEP-0124 §19.1).
	hopProto = "Boshd-Forwarded-Proto"
	// hopTime is when the request was forwarded, in Unix seconds.
	hopTime = "Boshd-Forward-Time"
	// hopAuth is the signature: hex(HMAC-SHA256(secret, hopMessage)).
	hopAuth = "Boshd-Forward-Auth"
)

// hopSkew is how far a forwarded request's time may be from the
// receiving node's clock, either way. A signature captured on the network
// is good for this long, for the same body only.
const hopSkew = 30 * time.Second

// hopLabel starts every signed message, so that a signature made for
// something else with the same secret never passes for a hop's.
const hopLabel = "boshd-forward-1"

// A hop is what a node learns from a forwarded request whose signature
// checks out.
type hop struct {
	from   string // the forwarding node
	client string // the client's IP address
	xff    string // the X-Forwarded-For the forwarding node saw, joined
	tls    bool   // the client's request came over TLS
}

// hopKey is the context key of a forwarded request's hop.
type hopKey struct{}

// hopOf returns the hop of a forwarded request r, or nil for a request
// from a client.
func hopOf(r *http.Request) *hop {
	h, _ := r.Context().Value(hopKey{}).(*hop)
	return h
}

// withHop returns r carrying h, for hopOf.
func withHop(r *http.Request, h *hop) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), hopKey{}, h))
}

// hopMAC returns the MAC of a hop: the label and each field on a line
// of its own (no header value holds a newline), then the SHA-256 of the
// body, with mac, keyed with the cluster's secret.
func hopMAC(mac hash.Hash, h *hop, unix int64, body []byte) []byte {
	sum := sha256.Sum256(body)
	proto := "http"
	if h.tls {
		proto = "https"
	}
	mac.Reset()
	for _, field := range []string{hopLabel, h.from, strconv.FormatInt(unix, 10), h.client, proto, h.xff} {
		mac.Write([]byte(field))
		mac.Write([]byte{'\n'})
	}
	mac.Write(sum[:])
	return mac.Sum(nil)
}

// signHop sets the headers of h, at the time now, on a request forwarding
// body, signed with secret. The X-Forwarded-For header is h.xff, as the
// client's request had it.
func signHop(header http.Header, secret []byte, h *hop, now time.Time, body []byte) {
	unix := now.Unix()
	header.Set(hopFrom, h.from)
	header.Set(hopFor, h.client)
	proto := "http"
	if h.tls {
		proto = "https"
	}
	header.Set(hopProto, proto)
	header.Set(hopTime, strconv.FormatInt(unix, 10))
	if h.xff != "" {
		header.Set("X-Forwarded-For", h.xff)
	}
	header.Set(hopAuth, hex.EncodeToString(hopMAC(hmac.New(sha256.New, secret), h, unix, body)))
}

// isHop reports whether header has any header of a hop.
func isHop(header http.Header) bool {
	for name := range header {
		if strings.HasPrefix(name, hopPrefix) {
			return true
		}
	}
	return false
}

// checkHop checks the hop headers of a request with body at the time now
// against secret, and returns the hop they describe, or why they are
// refused. secret nil refuses every hop.
func checkHop(header http.Header, secret []byte, now time.Time, body []byte) (*hop, error) {
	if secret == nil {
		return nil, errors.New("no cluster_secret_file to check it with")
	}
	one := func(name string) (string, error) {
		v := header.Values(name)
		if len(v) != 1 || v[0] == "" {
			return "", fmt.Errorf("%s: want one value, got %d", name, len(v))
		}
		return v[0], nil
	}
	var h hop
	var errs []error
	from, err := one(hopFrom)
	errs = append(errs, err)
	client, err := one(hopFor)
	errs = append(errs, err)
	proto, err := one(hopProto)
	errs = append(errs, err)
	stamp, err := one(hopTime)
	errs = append(errs, err)
	auth, err := one(hopAuth)
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	h.from, h.client = from, client
	switch proto {
	case "http":
	case "https":
		h.tls = true
	default:
		return nil, fmt.Errorf("%s: want http or https, got %q", hopProto, proto)
	}
	unix, err := strconv.ParseInt(stamp, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%s: not a number: %q", hopTime, stamp)
	}
	got, err := hex.DecodeString(auth)
	if err != nil || len(got) != sha256.Size {
		return nil, fmt.Errorf("%s: not a hex HMAC-SHA256", hopAuth)
	}
	h.xff = strings.Join(header.Values("X-Forwarded-For"), ", ")
	// The signature first: whether a time is skewed is told only to a
	// node that knows the secret.
	if !hmac.Equal(got, hopMAC(hmac.New(sha256.New, secret), &h, unix, body)) {
		return nil, errors.New("bad signature")
	}
	if d := now.Sub(time.Unix(unix, 0)); d > hopSkew || d < -hopSkew {
		return nil, fmt.Errorf("forwarded %v from now, more than %v", d.Round(time.Second), hopSkew)
	}
	a, err := netip.ParseAddr(client)
	if err != nil {
		return nil, fmt.Errorf("%s: not an IP address: %q", hopFor, client)
	}
	h.client = a.Unmap().String()
	return &h, nil
}
