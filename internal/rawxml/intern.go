package rawxml

// Three switches, not one: internBOSH and internNS are small enough for the
// compiler to inline them into their callers (scanName, on the path of
// every BOSH request, and childNS, of every child), and one switch over
// all these strings is not. Merged, it made BenchmarkEmptyRoot some 20%
// slower. That they look alike is the price.

// internName returns b as a string, without allocating for the names
// XMPP uses most, and those of RFC 7395's framing elements.
func internName(b []byte) string {
	switch string(b) {
	case "message":
		return "message"
	case "presence":
		return "presence"
	case "iq":
		return "iq"
	case "body":
		return "body"
	case "stream":
		return "stream"
	case "features":
		return "features"
	case "error":
		return "error"
	case "success":
		return "success"
	case "failure":
		return "failure"
	case "challenge":
		return "challenge"
	case "response":
		return "response"
	case "auth":
		return "auth"
	case "proceed":
		return "proceed"
	case "starttls":
		return "starttls"
	case "a":
		return "a"
	case "r":
		return "r"
	case "enable":
		return "enable"
	case "enabled":
		return "enabled"
	case "resume":
		return "resume"
	case "resumed":
		return "resumed"
	case "failed":
		return "failed"
	case "open":
		return "open"
	case "close":
		return "close"
	}
	return string(b)
}

// internNS returns b as a string, without allocating for the namespaces
// XMPP stanzas declare most, and that of RFC 7395's framing elements.
func internNS(b []byte) string {
	switch string(b) {
	case "jabber:client":
		return "jabber:client"
	case "jabber:server":
		return "jabber:server"
	case "http://etherx.jabber.org/streams":
		return "http://etherx.jabber.org/streams"
	case "urn:ietf:params:xml:ns:xmpp-sasl":
		return "urn:ietf:params:xml:ns:xmpp-sasl"
	case "urn:ietf:params:xml:ns:xmpp-tls":
		return "urn:ietf:params:xml:ns:xmpp-tls"
	case "urn:ietf:params:xml:ns:xmpp-bind":
		return "urn:ietf:params:xml:ns:xmpp-bind"
	case "urn:ietf:params:xml:ns:xmpp-session":
		return "urn:ietf:params:xml:ns:xmpp-session"
	case "urn:ietf:params:xml:ns:xmpp-streams":
		return "urn:ietf:params:xml:ns:xmpp-streams"
	case "urn:xmpp:sm:3":
		return "urn:xmpp:sm:3"
	case "jabber:iq:roster":
		return "jabber:iq:roster"
	case "urn:ietf:params:xml:ns:xmpp-framing":
		return "urn:ietf:params:xml:ns:xmpp-framing"
	}
	return string(b)
}

// internBOSH returns b as a string, without allocating for the names BOSH
// requests use.
func internBOSH(b []byte) string {
	switch string(b) {
	case "body":
		return "body"
	case "rid":
		return "rid"
	case "sid":
		return "sid"
	case "xmlns":
		return "xmlns"
	case "ack":
		return "ack"
	case "key":
		return "key"
	case "xmpp":
		return "xmpp"
	case "xml":
		return "xml"
	case "lang":
		return "lang"
	case "type":
		return "type"
	}
	return string(b)
}
