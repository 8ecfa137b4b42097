// Package xmpptest is a fake XMPP client-to-server listener for tests: a
// Server on a loopback port hands each connection it accepts to a Script,
// which plays the server's side through a Peer (read the client's header
// and elements, send bytes, STARTTLS), and records what clients send, so
// that a test can wait until the server has received something.
//
// Relay is the Script most tests of a connection manager need: a stream
// header and the given features, then everything the client sends
// recorded, and stanzas sent when the test pushes them (Server.Push).
// Scripts of their own serve tests of the client side of a stream.
//
// The Server is closed when the test ends: its listener, every
// connection, and the Scripts, which must return once their connection
// is closed.
package xmpptest
