// Package session holds the state of BOSH sessions: for each one, the
// window of request IDs, the requests being held, the stanzas waiting for a
// request to carry them, the responses kept for resends, the inactivity
// timer, and the upstream XMPP stream it relays to.
//
// The package knows nothing of HTTP or XML. A caller (package bosh) parses
// a <body/> into a Request, hands it to Session.Handle, and writes the
// Response it gets back. Handle blocks while the request is held: until the
// upstream server sends something, a newer request pushes this one out, the
// wait time passes, or the session ends.
//
// # Concurrency
//
// Each Session has one mutex guarding all of its state. It is never held
// across network I/O: writes to the upstream stream are queued under the
// lock and performed, in order, by whichever goroutine finds the queue
// non-empty and no writer running. One goroutine per session reads the
// upstream stream and delivers each element to the session. Timers run
// their callbacks on their own goroutines and take the lock like anyone
// else.
package session
