package wsbind

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"regexp"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/boshd/boshd/gateway"
	"github.com/boshd/boshd/xmpp"
)

// This file opens a session's upstream stream for the client's <open/>
// and relays what the server sends (RFC 7395 §3.4, §3.6, §3.7).

// Namespaces a session looks at.
const (
	nsClient  = "jabber:client"
	nsStreams = "http://etherx.jabber.org/streams"
	nsSM      = "urn:xmpp:sm:3"
	nsXML     = "http://www.w3.org/XML/1998/namespace"
)

// langPattern is what an xml:lang on <open/> must look like (RFC 5646's
// shape, as BOSH checks it).
var langPattern = regexp.MustCompile(`^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$`)

// openRequest is what the client's <open/> asks for.
type openRequest struct {
	to, from, lang, version string
}

// parseOpen reads the attributes of the client's <open/>, raw being the
// whole element, already checked by rawxml.Document.
func parseOpen(raw []byte) (openRequest, error) {
	var o openRequest
	tok, err := xml.NewDecoder(bytes.NewReader(raw)).Token()
	if err != nil {
		return o, err
	}
	start, ok := tok.(xml.StartElement)
	if !ok {
		return o, errors.New("wsbind: <open/> is not an element")
	}
	for _, a := range start.Attr {
		switch {
		case a.Name.Space == "" && a.Name.Local == "to":
			o.to = a.Value
		case a.Name.Space == "" && a.Name.Local == "from":
			o.from = a.Value
		case a.Name.Space == "" && a.Name.Local == "version":
			o.version = a.Value
		case (a.Name.Space == nsXML || a.Name.Space == "xml") && a.Name.Local == "lang":
			o.lang = a.Value
		}
	}
	return o, nil
}

// open opens the upstream stream for the client's first <open/>: it works
// out where `to` goes as BOSH does (gateway.Target: the configured
// upstreams, nothing dialled for a domain not served), dials it with
// stream management kept, and tells the client the server's stream header
// as an <open/> and its features as the next message. It runs on the
// client's reader, which reads nothing more meanwhile.
func (s *session) open(raw []byte) {
	o, err := parseOpen(raw)
	if err != nil {
		s.endWith(endBadInput, "not-well-formed", "", err)
		return
	}
	if o.version != "" && !strings.HasPrefix(o.version, "1.") {
		s.endWith(endBadInput, "unsupported-version", "only version 1.0 is supported", nil)
		return
	}
	t, err := s.h.g.Target(o.to, "")
	if err != nil {
		cond := gateway.HostUnknown
		var te *gateway.TargetError
		if errors.As(err, &te) {
			cond = te.Condition
		}
		if cond == gateway.HostUnknown && o.to != "" {
			if d, err := jid.Parse(o.to); err == nil && d.Localpart() == "" && d.Resourcepart() == "" {
				s.setDomain(d.Domainpart())
			}
		}
		s.endWith(endRefused, cond, "", err)
		return
	}
	s.setDomain(t.Domain)
	if o.lang != "" && !langPattern.MatchString(o.lang) {
		s.endWith(endBadInput, "bad-format", "xml:lang is not a language tag", nil)
		return
	}
	t.Lang = o.lang
	if o.from != "" {
		if from, err := jid.Parse(o.from); err == nil {
			t.From = from.String()
		}
	}
	t.KeepSM = true // RFC 7395 §3.9: the client may resume this stream
	up, err := s.h.g.Dial(s.h.ctx, t)
	if err != nil {
		var serr *xmpp.StreamError
		if errors.As(err, &serr) {
			e := endingFor(endRefused, serr.Raw, closeNormal, "")
			e.open = true
			s.finish(e, err)
			return
		}
		s.logger().Warn("upstream connection failed", "domain", t.Domain, "addr", t.Addr, "err", err)
		s.endWith(endUpstreamFailed, "remote-connection-failed", "", err)
		return
	}
	s.mu.Lock()
	if s.ended { // shut down while dialling
		s.mu.Unlock()
		up.Close()
		return
	}
	s.up, s.state = up, opened
	s.mu.Unlock()
	if err := s.send(appendOpen(nil, headerOf(up))); err != nil {
		s.end(endClientLost, err)
		return
	}
	if err := s.send(up.Features()); err != nil {
		s.end(endClientLost, err)
		return
	}
	s.logger().Info("websocket stream opened", "domain", t.Domain, "stream", up.StreamID(), "upstream_tls", up.Secure())
	go s.readUpstream(false)
}

// setDomain records the domain the client's stream is for.
func (s *session) setDomain(d string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.domain = d
}

// headerOf returns the fields of up's current stream header.
func headerOf(up *xmpp.Conn) streamHeader {
	return streamHeader{from: up.From(), id: up.StreamID(), version: up.Version(), lang: up.Lang()}
}

// readUpstream relays the server's elements to the client, each as one
// message, until the upstream is parked or the stream is over. resumed
// says the parked upstream has just woken: something is there to read,
// and parking again before reading it would wake at once. A server too
// fast for its client waits: there is no queue, the write to the client
// holds the reader, and TCP holds the server back.
func (s *session) readUpstream(resumed bool) {
	up := s.up // set before the first reader started; never changed
	for {
		if !resumed && !up.Buffered() && up.Park(s.resumeUpstream) {
			return
		}
		resumed = false
		el, err := up.Next()
		if err != nil {
			s.upstreamEnded(err)
			return
		}
		start := time.Now()
		if s.announce {
			// RFC 7395 §3.7: the restarted stream's <open/> comes
			// before its features.
			s.announce = false
			if err := s.send(appendOpen(nil, headerOf(up))); err != nil {
				s.end(endClientLost, err)
				return
			}
		}
		s.announce = up.AwaitingRestart()
		s.watchSM(el)
		if err := s.send(el); err != nil {
			s.end(endClientLost, err)
			return
		}
		s.h.metrics.WebSocketPush(time.Since(start).Seconds())
	}
}

// resumeUpstream is the parked upstream's resume function.
func (s *session) resumeUpstream() { go s.readUpstream(true) }

// upstreamEnded ends the session for the error that ended the server's
// stream (design 003, "Framing"): a stream error reaches the client as
// it came, then <close/>; the server's </stream:stream> becomes <close/>;
// a lost connection closes the WebSocket with 1011 and no stream error,
// so that a client with stream management resumes.
func (s *session) upstreamEnded(err error) {
	if s.isEnded() {
		return // boshd ended the stream itself
	}
	var serr *xmpp.StreamError
	switch {
	case errors.As(err, &serr):
		s.finish(endingFor(endStreamError, serr.Raw, closeNormal, ""), err)
	case errors.Is(err, io.EOF):
		s.end(endServerClose, nil)
	case errors.Is(err, net.ErrClosed) && s.isEnded():
	default:
		s.end(endUpstreamLost, err)
	}
}

// watchSM notes whether the client has resumable stream management
// (XEP-0198): the server's <enabled resume='true'/> or <resumed/>.
func (s *session) watchSM(el []byte) {
	if !bytes.HasPrefix(el, []byte("<enabled")) && !bytes.HasPrefix(el, []byte("<resumed")) {
		return
	}
	tok, err := xml.NewDecoder(bytes.NewReader(el)).Token()
	if err != nil {
		return
	}
	start, ok := tok.(xml.StartElement)
	if !ok || start.Name.Space != nsSM {
		return
	}
	resumable := start.Name.Local == "resumed"
	if start.Name.Local == "enabled" {
		for _, a := range start.Attr {
			if a.Name.Space == "" && a.Name.Local == "resume" {
				resumable = a.Value == "true" || a.Value == "1"
			}
		}
	}
	if resumable {
		s.mu.Lock()
		s.resumable = true
		s.mu.Unlock()
	}
}

// streamErrorXML returns a <stream:error/> of condition (RFC 6120 §4.9),
// with text if not empty, standing alone.
func streamErrorXML(condition, text string) []byte {
	b := []byte(`<stream:error xmlns:stream="` + nsStreams + `"><` + condition + ` xmlns="urn:ietf:params:xml:ns:xmpp-streams"/>`)
	if text != "" {
		b = append(b, `<text xmlns="urn:ietf:params:xml:ns:xmpp-streams">`...)
		b = appendText(b, text)
		b = append(b, `</text>`...)
	}
	return append(b, `</stream:error>`...)
}

// appendText appends s escaped as XML character data.
func appendText(dst []byte, s string) []byte {
	var buf bytes.Buffer
	xml.EscapeText(&buf, []byte(s))
	return append(dst, buf.Bytes()...)
}
