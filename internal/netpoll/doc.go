// Package netpoll tells when sockets are hung up by their peer, or become
// readable, for many sockets at once from one goroutine: an epoll instance
// on Linux. It lets a connection wait with no goroutine of its own, which
// is what an idle BOSH session's held request does (docs/design/002).
//
// A Watch is one-shot: its function is called at most once, from the
// poller's goroutine, and must be quick (start a goroutine for real work).
// Stop and the event race; exactly one of them wins.
//
// The sockets stay in Go's runtime poller too; this package only adds
// them to its own epoll set, through syscall.RawConn.Control, so that a
// socket closed meanwhile is never confused with a new one of the same
// number.
package netpoll
