// Package wsbind is boshd's XMPP over WebSocket binding (RFC 7395), beside
// BOSH (package bosh), sharing its gateway: docs/design/003-websocket.md.
//
// A Handler, made by NewHandler from a gateway.Gateway, is an http.Handler
// to mount at websocket_path. Each upgrade it accepts (GET, HTTP/1.1, the
// xmpp subprotocol, an allowed Origin, within the session limits, all
// checked before anything is dialled) becomes a session relaying between
// the client's WebSocket and one upstream XMPP client stream:
//
//   - handler.go: the Handler, its registry of sessions, Stats and
//     Shutdown (close code 1012, the upstream dropped for a client with
//     resumable stream management, closed cleanly for the others).
//   - upgrade.go: the checks of an upgrade request and their HTTP
//     refusals, then the 101 by gobwas/ws's HTTPUpgrader.
//   - frame.go: client frames to messages (RFC 6455 §5: masking,
//     fragments reassembled under websocket_max_message_size, control
//     frames answered, UTF-8) and messages to server frames through a
//     pooled buffer; RFC 7395's <open/> and boshd's exact <close/>.
//   - session.go: one session and every way it ends (ending, finish).
//   - client.go: reading the client on one goroutine at a time, judging
//     each message (judge: one standalone element, <open/>, <close/>,
//     the restart after SASL), and parking the idle client socket in the
//     gateway's netpoll.Poller, TLS included, so that an idle session
//     holds no goroutine and no read buffer.
//   - upstream.go: <open/> dialled as BOSH dials a session (Target, Dial,
//     with stream management kept), the server's elements relayed each
//     as one message, stream errors and the ends of the server's stream.
//   - ping.go: WebSocket pings from one goroutine visiting buckets of
//     sessions, no timer per session; a client silent for two
//     websocket_ping_interval is taken as lost.
//   - move.go: a live upgrade (docs/design/005-live-upgrade.md) moving a
//     session to the new process: MoveSessions, in the old process, takes
//     each session whose client connection and upstream are plaintext,
//     with its stream open and both sockets parked, freezes it and sends
//     its record and its two sockets through a MoveSender; RestoreMoved,
//     in the new one, takes it closed, and Restored.Commit puts it in
//     service (Abort gives it back). The TCP connections are the same on
//     both sides: the client and the server see nothing. A session that
//     cannot move (TLS either side, never quiet) stays, served to its
//     end or told 1012 at upgrade_drain_timeout.
//
// Only package github.com/gobwas/ws of that module is used: its frame
// header, CheckHeader, Cipher and HTTPUpgrader, which keep no state and
// no goroutine of their own.
package wsbind
