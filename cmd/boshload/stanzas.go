package main

import "encoding/base64"

// The stanzas and nonzas a session sends to log in and to end, the same
// over both transports: BOSH wraps them in <body/>, WebSocket sends each
// as a message of its own.

// Ids of the login iqs.
const (
	bindID    = "bind1"
	sessionID = "sess1"
)

const (
	// bindRequest binds the resource "boshload" (RFC 6120 §7).
	bindRequest = "<iq type='set' id='" + bindID + "' xmlns='" + nsClient + "'><bind xmlns='" + nsBind +
		"'><resource>boshload</resource></bind></iq>"
	// sessionRequest starts a session (RFC 3921 §3), for a server that
	// still asks for it.
	sessionRequest = "<iq type='set' id='" + sessionID + "' xmlns='" + nsClient + "'><session xmlns='" + nsSession + "'/></iq>"
	// initialPresence is the first stanza of a logged-in session.
	initialPresence = "<presence xmlns='" + nsClient + "'/>"
	// unavailablePresence says goodbye before the session ends.
	unavailablePresence = "<presence type='unavailable' xmlns='" + nsClient + "'/>"
)

// plainAuth returns the SASL PLAIN <auth/> of user with password pass
// (RFC 4616: no authorization identity).
func plainAuth(user, pass string) string {
	token := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
	return "<auth xmlns='" + nsSASL + "' mechanism='PLAIN'>" + token + "</auth>"
}
