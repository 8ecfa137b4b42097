package session

import (
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Upstream is the server side of a session: one XMPP client stream. Package
// xmpp's *Conn implements it.
type Upstream interface {
	// Next returns the next element from the server, ready to relay. It
	// returns io.EOF when the server closes its stream cleanly and an
	// error matching *xmpp.StreamError for a stream error. Only the
	// session's reader goroutine calls it.
	Next() ([]byte, error)
	// Write sends stanzas to the server, in order.
	Write(p ...[]byte) error
	// Restart opens a new stream on the same connection (XEP-0206 §5).
	Restart() error
	// Close closes the stream and the connection. It unblocks Next.
	Close() error
}

// Params are the values negotiated when a session was created. They do
// not change during the session's life.
type Params struct {
	// Wait is the longest time a request is held.
	Wait time.Duration
	// Hold is the most requests held at once. Zero makes a polling
	// session (XEP-0124 §12), as does a zero Wait.
	Hold int
	// Requests is the most requests the client may have open at once,
	// and the width of the rid window: normally Hold+1.
	Requests int
	// Inactivity is how long the session survives with no request held.
	Inactivity time.Duration
	// MaxQueueBytes bounds the stanzas waiting for a request to carry
	// them. Zero means no bound.
	MaxQueueBytes int64
	// GapWait is how long a request that arrived ahead of a missing rid
	// waits for it, when a held request's client went away shortly before
	// (a page reload, most likely), before the missing rid is given up
	// for lost (see gapExpired). Zero means DefaultGapWait. Otherwise a
	// missing rid is waited for Wait (at least GapWait): a slow request
	// on an overloaded path must keep its place in order.
	GapWait time.Duration
	// ContentType is the content the client asked every response to be
	// labelled with (XEP-0124 §7.1). The session only keeps it.
	ContentType string
	// Domain is the XMPP domain the session was created for. The session
	// only keeps it.
	Domain string
	// Client is the client's address the session's slot was taken for
	// (gateway.Gateway.Acquire), so that a process the session moves to
	// counts it for the same address. The session only keeps it.
	Client string
	// Polling is the shortest interval allowed between two empty
	// requests of a polling session (XEP-0124 §12).
	Polling time.Duration
	// Key is the newkey of the creation request, which turns on key
	// sequencing (XEP-0124 §15). Empty when the client does not use keys.
	Key string
	// Legacy is set when the creation request had no ver: such clients
	// get some conditions as HTTP status codes (XEP-0124 §17.1). The
	// session only keeps it.
	Legacy bool
	// Secure is set when the session was created over HTTPS. The session
	// only keeps it.
	Secure bool
	// MultiStream turns on multiple streams (XEP-0124 §16): streams have
	// names and requests may add streams.
	MultiStream bool
	// Acks turns on acknowledgements (XEP-0124 §9): the client asked for
	// them with ack='1' at creation.
	Acks bool
	// AttachTimeout, if not zero, replaces Inactivity until the session
	// accepts its first request: a session made for a client that was
	// not there to ask (a pre-bound one, bosh.Handler.Prebind) ends if
	// that client does not come within it. What the server sends
	// meanwhile is queued as for any session.
	AttachTimeout time.Duration
	// OnEnd, if not nil, is called once when the session ends, after
	// the session's lock is released, by the goroutine that ended it and
	// before that goroutine's call into the session returns. It must be
	// quick.
	OnEnd func()
}

// Request is one client request, already parsed and validated.
type Request struct {
	// RID is the request ID.
	RID uint64
	// Payload holds the stanzas to forward upstream, each standalone.
	Payload [][]byte
	// Restart asks for a new upstream stream (xmpp:restart='true'); any
	// payload is ignored (XEP-0206 §5).
	Restart bool
	// Terminate ends the session after forwarding Payload.
	Terminate bool
	// Pause asks the session to answer every held request and to survive
	// this long with nothing held (XEP-0124 §10). The caller bounds it by
	// the advertised maxpause.
	Pause time.Duration
	// Ack is the client's ack attribute (XEP-0124 §9.2): it has received
	// every response up to this rid. Zero when absent.
	Ack uint64
	// Key and NewKey are the key sequencing attributes (XEP-0124 §15),
	// empty when absent.
	Key, NewKey string
	// Stream names the stream the request is for (XEP-0124 §16); empty
	// means every stream.
	Stream string
	// Add, if not nil, is a new stream to add to the session (XEP-0124
	// §16.2), already open.
	Add *NewStream
}

// NewStream is an upstream stream opened for a session by a request.
type NewStream struct {
	// Up is the open stream, nil if it could not be opened.
	Up Upstream
	// From is the domain the server serves, for the response's from.
	From string
	// Payload goes in the response: the stream's first
	// <stream:features/>, or the <stream:error/> that refused it.
	Payload [][]byte
	// Failed, when Up is nil, is why the stream could not be opened. The
	// response names a stream that is closed at once, so the session
	// lives on.
	Failed Condition
}

// Response is what the session answers a request with. A Response is
// never modified once handed out, so a cached one can be written again
// byte for byte.
type Response struct {
	// RID is the request ID this response answers.
	RID uint64
	// Payload holds the elements to send the client, each standalone.
	Payload [][]byte
	// Type is "", TypeTerminate or TypeError.
	Type string
	// Condition is set on terminal responses that are not a plain end of
	// the session.
	Condition Condition
	// Ack, if not zero, acknowledges every request up to this rid
	// (XEP-0124 §9.1).
	Ack uint64
	// Report, if not zero, tells the client that the response to this
	// rid seems lost, sent Time milliseconds ago (XEP-0124 §9.3).
	Report uint64
	Time   int
	// Stream names the stream the payload or condition belongs to, when
	// multiple streams are on (XEP-0124 §16).
	Stream string
	// From is the domain of a stream just added.
	From string
}

// Session is one BOSH session. Create sessions with Registry.Create.
type Session struct {
	// ID is the session ID, the sid attribute. Immutable.
	ID string
	// Params are the negotiated session parameters. Immutable.
	Params Params

	log   *slog.Logger // immutable
	clock Clock        // immutable
	reg   *Registry    // immutable

	// mu guards every field below. It is locked only through do and the
	// writer do runs (lock.go, upstream.go), and never held across
	// network I/O nor while a caller's callback runs.
	mu sync.Mutex
	// last is the highest rid processed: every rid up to it has had its
	// payload forwarded and is held or answered.
	last uint64
	// pending holds requests that arrived ahead of a missing rid, in no
	// particular order; at most Params.Requests of them. gap runs while
	// there are any; skipped lists the rids given up for lost since.
	pending []*request
	gap     Timer
	skipped []uint64
	// abandoned is when a held request's client last went away.
	abandoned time.Time
	// held holds the requests being held, oldest (lowest rid) first.
	held []*request
	// streams holds the session's upstream streams, the creation one
	// first, and closed ones until the client has been told; turn is
	// where the round-robin over them stands.
	streams []*stream
	turn    int
	// queueBytes counts the bytes waiting in every stream's queue.
	queueBytes int64
	// cache keeps the latest responses for resent rids, oldest first:
	// Params.Requests of them, or every unacknowledged one with acks.
	cache []cached
	// answered is the highest rid answered.
	answered uint64
	// key is the value the next request's key must hash to, when key
	// sequencing is in use (XEP-0124 §15).
	key string
	// lastSent is closed once the latest answer has been written.
	lastSent <-chan struct{}
	// report, if set, goes on the next response: a response the client
	// acknowledged missing (XEP-0124 §9.2).
	report *Response
	// lastPoll is when the last request of a polling session was answered
	// empty; zero if it was not.
	lastPoll time.Time
	// ops are upstream writes waiting for the writer, in order; writing
	// is true while a goroutine performs them (see write).
	ops     []op
	writing bool
	// events are the callbacks the locked section under way leaves for
	// after the unlock, in order; empty outside a locked section (see
	// do).
	events []event
	// idleSince is when nothing was last left held, zero while a
	// request is held; the session ends idleFor after it. idle is the
	// timer that checks, due at idleAt (see startIdleLocked); idleGen
	// tells a stale timer callback from the current one.
	idleSince time.Time
	idleFor   time.Duration
	idle      Timer
	idleAt    time.Time
	idleGen   uint64
	// wait is the timer that answers held requests once they are due,
	// itself due at waitAt; waitGen tells a stale timer callback from the
	// current one (see armWaitLocked).
	wait    Timer
	waitAt  time.Time
	waitGen uint64
	// pause, if not zero, replaces Params.Inactivity for the next idle
	// period only (XEP-0124 §10).
	pause time.Duration
	// unattached is set from creation until the first request is
	// accepted, when Params.AttachTimeout is not zero: meanwhile it is
	// the idle period.
	unattached bool
	// final is set once the session has ended: the response that tells
	// the client so. told says whether the client has received it.
	final *Response
	told  bool
	// thawed is closed when a frozen session is thawed or moved; nil
	// when it is not frozen. handing is set once Freeze has handed its
	// upstreams over, until Thaw.
	thawed  chan struct{}
	handing bool

	// frozen is set while the session is being moved to another
	// process (Freeze): its timers fire to no effect, and its upstreams
	// are not watched, until Thaw, or Moved forgets it; moved is set by
	// Moved. Both change under mu, and are read without it by Enter.
	// users counts the requests between Enter and Leave: Freeze refuses
	// a session with any (see Enter).
	frozen, moved atomic.Bool
	users         atomic.Int32
}

// request is a Request on its way through the session. Request and done
// are immutable; call belongs to the goroutine using the request's Call
// (see Call); the other fields are guarded by Session.mu.
type request struct {
	Request
	// done receives the answer. Buffered: answering never blocks.
	done chan answer
	// due is when the request has been held for Params.Wait (see
	// armWaitLocked); zero until it is held.
	due time.Time
	// gone is set when the HTTP request went away (XEP-0124 §14.3).
	gone bool
	// notify, if not nil, is called when the request is answered, after
	// the unlock (see Start).
	notify func()
	// call is the request's Call, allocated with it.
	call Call
}

// newRequest returns a request for req, to be answered on its done
// channel.
func (s *Session) newRequest(req Request) *request {
	r := &request{Request: req, done: make(chan answer, 1)}
	r.call = Call{s: s, r: r}
	return r
}

// close closes the upstream of a stream that will not be added.
func (n *NewStream) close() {
	if n != nil && n.Up != nil {
		n.Up.Close()
	}
}

// Ended reports whether the session has ended.
func (s *Session) Ended() (ended bool) {
	s.do(func() { ended = s.final != nil })
	return ended
}

// Stream returns the name of the stream the session was created with, ""
// unless multiple streams are on.
func (s *Session) Stream() (name string) {
	s.do(func() {
		if len(s.streams) > 0 {
			name = s.streams[0].name
		}
	})
	return name
}

// LogID returns the session's name in logs: the node's prefix, if any
// ("n1."), and the first eight characters of the random part of its ID.
// They tell sessions apart in a log, and leave the other 96 random bits of
// the ID unknown to whoever reads the log; the full ID is logged only at
// debug level, when the session is created.
func (s *Session) LogID() string {
	// A node's name holds no ".", and the random part is base64url.
	n := strings.IndexByte(s.ID, '.') + 1 + 8
	if len(s.ID) <= n {
		return s.ID
	}
	return s.ID[:n] + "…"
}

// Last returns the highest rid processed in order.
func (s *Session) Last() (last uint64) {
	s.do(func() { last = s.last })
	return last
}

// Waiting returns how many requests wait for a missing lower rid before
// they can be processed (XEP-0124 §14.2).
func (s *Session) Waiting() (n int) {
	s.do(func() { n = len(s.pending) })
	return n
}
