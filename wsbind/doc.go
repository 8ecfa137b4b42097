// Package wsbind is boshd's XMPP over WebSocket binding (RFC 7395), beside
// BOSH: docs/design/003-websocket.md.
//
// When complete it will own a Handler (an http.Handler made from the
// gateway both bindings share), the HTTP upgrade, client messages to and
// from WebSocket frames, one session's relay between the client's
// WebSocket and its upstream XMPP stream, the parking of idle client
// sockets in the gateway's netpoll.Poller, pings, and the registry of
// sessions with its graceful shutdown (close 1012).
//
// What exists now is the client-facing WebSocket layer, unexported until
// the session layer uses it:
//
//   - upgrade.go: the checks of an upgrade request in the design's order
//     (GET, HTTP/1.1, a WebSocket version 13 handshake, the xmpp
//     subprotocol, the Origin, an admission hook) with their HTTP
//     refusals, then the 101 answer by gobwas/ws's HTTPUpgrader, which
//     hijacks the connection from net/http.
//   - frame.go: reading one complete client text message (RFC 6455 §5:
//     masking, fragments reassembled under a size limit checked from
//     each frame header before its payload is read, control frames
//     answered, UTF-8 checked), each violation a *closeError naming the
//     close code; writing a text message, a ping or a close frame through
//     a pooled bufio.Writer given back after each write, so that an idle
//     connection holds no buffer; and the framing elements of RFC 7395
//     §3.3 (<open/> and boshd's exact <close/>).
//
// Only package github.com/gobwas/ws of that module is used: its frame
// header, CheckHeader, Cipher and HTTPUpgrader, which keep no state and
// no goroutine of their own.
package wsbind
