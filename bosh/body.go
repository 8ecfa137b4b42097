package bosh

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/boshd/boshd/internal/rawxml"
	"github.com/boshd/boshd/session"
)

// Namespaces of the BOSH wrapper and its XMPP extension.
const (
	// NS is the namespace of <body/> (XEP-0124).
	NS = "http://jabber.org/protocol/httpbind"
	// NSXBOSH is the namespace of XEP-0206's attributes (xmpp:version,
	// xmpp:restart, xmpp:restartlogic).
	NSXBOSH = "urn:xmpp:xbosh"
	// NSStream is the namespace of <stream:features/> and
	// <stream:error/>.
	NSStream = "http://etherx.jabber.org/streams"

	nsClient = "jabber:client"
	nsTLS    = "urn:ietf:params:xml:ns:xmpp-tls"
)

// body is a parsed request <body/>: the attributes that matter to the
// connection manager and the children to forward.
type body struct {
	rid     uint64
	sid     string
	typ     string // "terminate" or ""
	restart bool   // xmpp:restart='true'
	pause   string // seconds, XEP-0124 §10
	ack     string // XEP-0124 §9
	key     string // XEP-0124 §15
	newkey  string
	stream  string // XEP-0124 §16

	// Session creation attributes (XEP-0124 §7.1, XEP-0206 §3); has*
	// tells a missing attribute from an empty one.
	to, route, from, lang, content, ver, xmppVersion string
	hasWait, hasHold, hasTo                          bool
	wait, hold                                       string

	// payload holds the children, each standalone, xmlns='jabber:client'
	// added to stanzas that carry none (XEP-0206 §2).
	payload [][]byte
}

// requestError is a request refused with a terminal condition.
type requestError struct {
	cond session.Condition
	msg  string
}

func (e *requestError) Error() string { return string(e.cond) + ": " + e.msg }

func badRequest(format string, args ...any) *requestError {
	return refusal(session.BadRequest, format, args...)
}

// maxErrorLen bounds the message of a requestError, which quotes client
// input and goes to the logs.
const maxErrorLen = 200

// refusal returns a requestError with cond and a message from format and
// args, cut to maxErrorLen bytes so that a huge attribute does not flood
// the logs.
func refusal(cond session.Condition, format string, args ...any) *requestError {
	msg := fmt.Sprintf(format, args...)
	if len(msg) > maxErrorLen {
		msg = strings.ToValidUTF8(msg[:maxErrorLen], "") + "…"
	}
	return &requestError{cond: cond, msg: msg}
}

// parseBodyDepth parses a request into b, with elements nested at most
// maxDepth deep, <body/> included. On error b still carries whatever
// attributes were read (the sid, notably), and the error is a
// *requestError with condition bad-request. Nothing in b refers to data.
func parseBodyDepth(b *body, data []byte, maxDepth int) error {
	opts := rawxml.Options{DefaultNS: nsClient, MaxDepth: maxDepth}
	if root, ok := rawxml.EmptyRoot(data, opts); ok {
		// An empty body, without building an XML decoder.
		return b.readRoot(root)
	}
	pr := bodyReaders.Get().(*bodyReader)
	defer pr.put()
	pr.src.Reset(data)
	rd := &pr.rd
	rd.Reset(&pr.src, opts)
	root, err := rd.Root()
	if err != nil {
		return badRequest("%v", err)
	}
	if err := b.readRoot(root); err != nil {
		return err
	}
	for {
		el, err := rd.Next()
		if errors.Is(err, rawxml.ErrRootEnd) {
			break
		}
		if err != nil {
			return badRequest("%v", err)
		}
		if el.NS == nsTLS {
			// XEP-0206 §2: TLS is boshd's business upstream, never the
			// client's.
			return badRequest("STARTTLS is not available over BOSH")
		}
		if el.NS == "" {
			// xmlns='' takes a child out of jabber:client (XEP-0206 §2).
			// A server may answer a stanza in no namespace with a
			// stream error (RFC 6120 §4.9.3), ending the session.
			return badRequest("a child of <body/> is in no namespace (xmlns='')")
		}
		b.payload = append(b.payload, el.Raw)
	}
	return nil
}

// bodyReader is what parseBodyDepth reads a request with, kept in
// bodyReaders between requests: a rawxml.Reader carries about a kilobyte
// of buffers.
type bodyReader struct {
	src bytes.Reader
	rd  rawxml.Reader
}

var bodyReaders = sync.Pool{New: func() any { return new(bodyReader) }}

// put forgets the request and puts r back in bodyReaders.
func (r *bodyReader) put() {
	r.src.Reset(nil)
	r.rd.Reset(&r.src, rawxml.Options{})
	bodyReaders.Put(r)
}

// readRoot reads a request's attributes from its root element. What it
// read stays in b on error: a refused request's sid is still needed.
func (b *body) readRoot(root rawxml.Root) error {
	// XEP-0124 §6
	if root.Name.Local != "body" || root.NS() != NS {
		return badRequest("root element must be <body xmlns='%s'/>", NS)
	}
	get := func(local string) (string, bool) { return root.Get("", local) }
	b.sid, _ = get("sid")
	rid, ok := get("rid")
	if !ok {
		return badRequest("missing rid") // XEP-0124 §6
	}
	var err error
	if b.rid, err = strconv.ParseUint(rid, 10, 64); err != nil || b.rid == 0 || b.rid > session.MaxRID {
		// XEP-0124 §14.1: rids are positive integers below 2^53.
		return badRequest("rid must be an integer from 1 to 2^53-1, got %q", rid)
	}
	b.typ, _ = get("type")
	b.pause, _ = get("pause")
	b.ack, _ = get("ack")
	b.key, _ = get("key")
	b.newkey, _ = get("newkey")
	b.stream, _ = get("stream")
	if restart, _ := root.Get(NSXBOSH, "restart"); restart == "true" || restart == "1" {
		b.restart = true
	}
	b.to, b.hasTo = get("to")
	b.route, _ = get("route")
	b.from, _ = get("from")
	b.lang, _ = root.Get(rawxml.XMLNamespace, "lang")
	b.content, _ = get("content")
	b.ver, _ = get("ver")
	b.wait, b.hasWait = get("wait")
	b.hold, b.hasHold = get("hold")
	b.xmppVersion, _ = root.Get(NSXBOSH, "version")
	return nil
}

// parseAck returns the rid of a request's ack attribute, or zero when it
// is absent or not a rid.
func parseAck(value string) uint64 {
	if value == "" {
		return 0 // most requests: without an error value to allocate
	}
	ack, err := strconv.ParseUint(value, 10, 64)
	if err != nil || ack > session.MaxRID {
		return 0
	}
	return ack
}
