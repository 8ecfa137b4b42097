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
// Each Session has one mutex guarding all of its state, and one way to
// take it: every entry point runs its locked section through Session.do
// (lock.go), which defers the unlock, so that a panic leaves the session
// unlocked. The lock is never held across network I/O nor while the
// caller's code runs: writes to the upstream stream and callbacks (a
// request's notify, Params.OnEnd, Registry.OnEnd, Registry.OnPush) are
// queued under the lock and done once it is released, the callbacks first,
// in the order they were queued, by the goroutine that queued them before
// its call returns; the writes, in order, by whichever goroutine finds
// writes queued and no writer running. One goroutine per session reads the
// upstream stream and delivers each element to the session. Timers, all
// started through the session's Clock, run their callbacks on their own
// goroutines and take the lock like anyone else.
//
// Each file holds one concern: the types and getters (session.go), the
// lock (lock.go), a request's Call and the order of answers (call.go), the
// rid window and its gaps (rid.go), holding requests and the wait timer
// (hold.go), the stanzas waiting for a request (queue.go), the response
// cache and acks (cache.go), inactivity (inactivity.go), pause (pause.go),
// polling (poll.go), keys (key.go), multiple streams (stream.go), the
// upstream reader and writes (upstream.go), the end of a session
// (terminate.go), and the registry of sessions (registry.go).
package session
