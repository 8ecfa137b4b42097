// Package xmpp opens and relays the upstream XMPP client streams of a BOSH
// connection manager.
//
// A BOSH session (XEP-0124/0206) is one XMPP client stream that a browser
// reaches through HTTP long-polling. boshd opens that stream to the real XMPP
// server itself, over TCP, and relays what the browser and the server say to
// each other. This package is the TCP side: a Dialer connects to the server,
// sends the stream header, secures the connection with STARTTLS, and hands
// back a Conn once the server has listed the features of the secured stream.
// From then on the Conn only moves bytes:
//
//   - Conn.Next returns each element the server sends (stanzas, SASL
//     replies, stream features) as its original bytes, made standalone: an
//     unprefixed stanza gets xmlns='jabber:client' and a <stream:features>
//     or <stream:error> declares the stream prefix, so the bytes can be put
//     inside a BOSH <body/> as they are. Nothing is decoded and re-encoded.
//   - Conn.Write sends the browser's stanzas upstream as they are.
//   - Conn.Restart sends the new stream header that XMPP requires after a
//     successful SASL authentication; Next waits for it after relaying the
//     server's <success/>.
//   - Conn.Close ends the stream with </stream:stream>.
//
// Some features the server offers cannot work through a connection manager,
// because they are bound to the TCP or TLS connection that boshd owns and
// the browser never sees: STARTTLS itself, SASL channel binding (the -PLUS
// mechanisms and XEP-0440), stream management (XEP-0198) and stream
// compression (XEP-0138). The Conn removes them from every feature list it
// relays, so the browser never tries them. A binding whose client stream
// maps one to one onto the upstream one (XMPP over WebSocket) sets
// Target.KeepSM to relay stream management, and uses Conn.Drop when the
// client is lost, so that the server keeps the session for resumption.
//
// A stream error from the server comes back as a *StreamError that carries
// the element's bytes for relaying; the end of the server's stream is
// io.EOF.
//
// The package is built for many idle sessions: a Conn starts no goroutine
// of its own, and on Linux it gives its read buffer and XML reader back to
// shared pools whenever nothing is left to read (over TLS, also nothing
// inside tls.Conn), waiting for the socket to become readable before
// taking them again.
package xmpp
