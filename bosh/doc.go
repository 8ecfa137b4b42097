// Package bosh is the HTTP side of boshd: it serves BOSH (XEP-0124) for
// XMPP (XEP-0206) as an http.Handler.
//
// A browser cannot open a TCP XMPP stream, so it POSTs <body/> wrappers
// over HTTP instead. The Handler parses each <body/>, validates its
// attributes, and hands the request to its session (package session),
// which holds it until the upstream XMPP server has something to say or
// the wait time passes. The Handler then writes the response <body/>.
// Stanzas travel in both directions as the bytes their sender wrote (see
// package internal/rawxml); only the wrapper is the Handler's own.
//
// Creating a session dials the upstream server for the requested domain
// (package xmpp), negotiates STARTTLS there, and answers with the session
// parameters and the server's <stream:features/>. Refused requests get a
// <body type='terminate'/> with the condition XEP-0124 §17.2 names.
//
// A Go program can mount a Handler in its own HTTP server:
//
//	cfg := config.Default()
//	cfg.Upstreams = map[string]string{"example.org": "127.0.0.1:5222"}
//	h, err := bosh.NewHandler(cfg, slog.Default())
//	if err != nil { … }
//	mux.Handle("/http-bind", h)
//
// What the Handler shares with other bindings of the same server (XMPP
// over WebSocket) is a gateway.Gateway: the configuration and its
// reloadable part, targets and dialling, session limits, metrics and the
// poller. NewHandler makes one of its own; NewHandlerWith shares one.
//
// Served through a Listener (and its ConnContext), the Handler parks
// requests held longer than park_after: they wait with no goroutine and
// no HTTP buffer, and so does an idle upstream stream (see
// docs/design/002-parked-requests.md).
//
// HostMeta serves XEP-0156 discovery (/.well-known/host-meta and
// host-meta.json), so that clients that know only a JID find the BOSH URL;
// gateway.HostMeta advertises a WebSocket URL too.
package bosh
