package main

import (
	"context"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/boshd/boshd/internal/rawxml"
)

// The chat and poll modes.
//
// Chat (--pairs P): sessions 2k-1 and 2k (k ≤ P) send each other
// <message type='chat'/> stanzas to the other's bound full JID, each at
// --rate-per-pair/2 per second, from the moment every session is set up
// until --drain before the end of the load. Each message's body is
//
//	boshload run=RUN seq=N ts=NANOS
//
// RUN is random per boshload run: the server may still be delivering an
// earlier run's messages when this run's sessions bind the same JIDs
// (every run logs in user1, user2...), and those are counted as stale
// and otherwise ignored. N counts the sender's messages from 1; NANOS is
// boshload's monotonic clock when the request carrying the message was
// built. The receiver checks that N is exactly the one after the last it
// got from its partner (exactly once, in order) and records the time the
// first byte of the response carrying the message was read, minus NANOS:
// the push latency end to end, client → connection manager → XMPP server
// → connection manager → client, including HTTP on both sides and the
// receiver's held request.
//
// A session behaves like Strophe.js: at most two requests in flight; an
// empty request is sent when none is in flight; queued messages go out
// at once in one request when fewer than two are in flight (which makes
// the manager answer the held one); otherwise they wait, batched, for the
// next response. A session queues at most maxQueue messages: a message
// due while the queue is full is not generated, and counted as skipped.
//
// Poll (--poll): every session sends empty requests back to back, one at
// a time, from the moment every session is set up until the end of the
// load; with --hold 0 each is answered at once. Round trips are counted
// and timed.

// chatBodyPrefix starts every message body boshload sends; the run's
// id and the message's sequence number follow (see chatMessage).
const chatBodyPrefix = "boshload run="

// maxLatencySamples bounds the latencies one session keeps.
const maxLatencySamples = 1 << 20

// hub is what chatting and polling sessions share.
type hub struct {
	epoch time.Time // the monotonic clock's zero for timestamps

	start   chan struct{} // closed when every session is set up
	startAt time.Time     // set before start is closed
	stopAt  time.Time     // sending stops; set before start is closed

	jidMu sync.Mutex
	jids  map[int]string        // session index → bound full JID
	bound map[int]chan struct{} // closed once jids[i] is set

	sent, skipped     atomic.Int64 // messages sent / not generated (queue full)
	received, inOrder atomic.Int64 // messages received / as the next expected
	// inWindow counts messages received once (repeats not counted) by
	// stopAt: what the stack delivered while it was offered the load,
	// without what it caught up on afterwards.
	inWindow           atomic.Int64
	duplicates, gaps   atomic.Int64 // seq received again / seq > last+1 (some skipped)
	late               atomic.Int64 // seq < last that filled a gap: reordered
	foreign, malformed atomic.Int64 // from someone else / body not ours
	// stale counts messages of another boshload run: sent to the same
	// JIDs by an earlier run whose messages the server was still
	// delivering when this run's sessions bound them.
	stale atomic.Int64
	// run tells this run's messages from an earlier run's.
	run                   string
	roundTrips            atomic.Int64 // poll mode
	lastReceived          atomic.Int64 // epoch nanos of the last message received
	requestsWithMessages  atomic.Int64
	messagesInTheRequests atomic.Int64

	latMu     sync.Mutex
	latencies []time.Duration

	// startNanos is startAt in nanoseconds since epoch, for the
	// receiving goroutines; stored before start is closed.
	startNanos atomic.Int64
	// timeline holds, for each second since start, the messages
	// received in it and the longest push latency among them: when
	// the server was slow, not only how slow (an upgrade's moment).
	timeline []second

	// CPU time of the processes under test (and of boshload, pid 0)
	// from start to the end of the load; cpuDone is closed once the
	// second reading is taken.
	cpuPIDs          []int
	cpuStart, cpuEnd []time.Duration
	cpuErr           error
	cpuDone          chan struct{}
}

// readCPUs reads the CPU time of every pid of h.cpuPIDs.
func (h *hub) readCPUs() []time.Duration {
	out := make([]time.Duration, len(h.cpuPIDs))
	for k, p := range h.cpuPIDs {
		d, err := readCPU(p)
		if err != nil && h.cpuErr == nil {
			h.cpuErr = err
		}
		out[k] = d
	}
	return out
}

func newHub(cfg *config) *hub {
	h := &hub{
		run:     strconv.FormatUint(rand.Uint64(), 36),
		epoch:   time.Now(),
		start:   make(chan struct{}),
		cpuDone: make(chan struct{}),
		jids:    make(map[int]string),
		bound:   make(map[int]chan struct{}),
		// Chatting starts after setup and ends by --duration.
		timeline: make([]second, int(cfg.duration/time.Second)+1),
	}
	for i := 1; i <= 2*cfg.pairs; i++ {
		h.bound[i] = make(chan struct{})
	}
	return h
}

// second is one second of a hub's timeline.
type second struct {
	received atomic.Int64 // messages received in it
	maxNanos atomic.Int64 // the longest push latency among them
}

// mark counts a message received at now, in nanoseconds since the
// epoch, with its push latency.
func (h *hub) mark(now int64, latency time.Duration) {
	k := (now - h.startNanos.Load()) / int64(time.Second)
	if k < 0 || k >= int64(len(h.timeline)) {
		return
	}
	s := &h.timeline[k]
	s.received.Add(1)
	for {
		m := s.maxNanos.Load()
		if int64(latency) <= m || s.maxNanos.CompareAndSwap(m, int64(latency)) {
			return
		}
	}
}

// timelineReport returns the timeline up to its last second with a
// message.
func (h *hub) timelineReport() []timelinePoint {
	last := -1
	for k := range h.timeline {
		if h.timeline[k].received.Load() > 0 {
			last = k
		}
	}
	out := make([]timelinePoint, last+1)
	for k := range out {
		s := &h.timeline[k]
		out[k] = timelinePoint{Second: k, Received: s.received.Load(), MaxMS: float64(s.maxNanos.Load()) / float64(time.Millisecond)}
	}
	return out
}

// now returns the nanoseconds since h.epoch, on the monotonic clock.
func (h *hub) now() int64 { return int64(time.Since(h.epoch)) }

// since returns t in nanoseconds since h's epoch, or 0 if t is zero.
func (h *hub) since(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return int64(t.Sub(h.epoch))
}

// publish records session i's bound JID.
func (h *hub) publish(i int, jid string) {
	h.jidMu.Lock()
	defer h.jidMu.Unlock()
	if ch, ok := h.bound[i]; ok {
		if _, done := h.jids[i]; !done {
			h.jids[i] = jid
			close(ch)
		}
	}
}

// partnerJID waits for session i's partner to be bound.
func (h *hub) partnerJID(ctx context.Context, i int) (string, error) {
	p := partner(i)
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case <-h.bound[p]:
	}
	h.jidMu.Lock()
	defer h.jidMu.Unlock()
	return h.jids[p], nil
}

// partner returns the index of the other session of i's pair.
func partner(i int) int {
	if i%2 == 1 {
		return i + 1
	}
	return i - 1
}

// addLatencies merges one session's latencies.
func (h *hub) addLatencies(d []time.Duration) {
	h.latMu.Lock()
	h.latencies = append(h.latencies, d...)
	h.latMu.Unlock()
}

// chatMessage returns message seq to jid, stamped with now.
func chatMessage(run, to string, seq uint64, now int64) string {
	return string(appendChatMessage(nil, run, escapeAttr(to), seq, now))
}

// appendChatMessage appends message seq to the JID toEscaped (escaped
// for an attribute value), stamped with now, to b.
func appendChatMessage(b []byte, run, toEscaped string, seq uint64, now int64) []byte {
	b = append(b, "<message xmlns='"+nsClient+"' to='"...)
	b = append(b, toEscaped...)
	b = append(b, "' type='chat' id='m"...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, "'><body>"+chatBodyPrefix...)
	b = append(b, run...)
	b = append(b, " seq="...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, " ts="...)
	b = strconv.AppendInt(b, now, 10)
	return append(b, "</body></message>"...)
}

// parseChatBody returns the run id, sequence number and timestamp of a
// body boshload wrote.
func parseChatBody(s string) (run string, seq uint64, ts int64, ok bool) {
	rest, found := strings.CutPrefix(strings.TrimSpace(s), chatBodyPrefix)
	if !found {
		return "", 0, 0, false
	}
	run, rest, found = strings.Cut(rest, " seq=")
	if !found || run == "" {
		return "", 0, 0, false
	}
	seqStr, tsStr, found := strings.Cut(rest, " ts=")
	if !found {
		return "", 0, 0, false
	}
	seq, err1 := strconv.ParseUint(seqStr, 10, 64)
	ts, err2 := strconv.ParseInt(tsStr, 10, 64)
	if err1 != nil || err2 != nil || seq == 0 {
		return "", 0, 0, false
	}
	return run, seq, ts, true
}

// bareJID returns jid without its resource.
func bareJID(jid string) string {
	bare, _, _ := strings.Cut(jid, "/")
	return bare
}

// receiver checks one session's incoming messages from its partner.
type receiver struct {
	h    *hub
	from string // the partner's full JID
	last uint64 // the highest seq received
	// holes are the seqs below last not received yet: a late one fills
	// its hole (reordered); one with no hole is a repeat.
	holes     map[uint64]struct{}
	latencies []time.Duration
	// in reads the messages of a BOSH response (take).
	in inspector
}

// chatState is what a chatting BOSH session keeps from one login to the
// next (--relogin). Only the session's goroutine touches it.
type chatState struct {
	to     string    // the partner's full JID
	rc     *receiver // the partner's messages checked so far
	seq    uint64    // the last sequence number sent
	queued int       // messages due and not yet sent
	due    time.Time // when the next message is due; zero before start
}

// take checks the children of one response, which arrived at the
// client at arrived (now if zero), in nanoseconds since the hub's epoch.
func (rc *receiver) take(children []rawxml.Element, arrived int64) {
	now := arrived
	if now == 0 {
		now = rc.h.now()
	}
	for _, e := range children {
		if !isElement(e, nsClient, "message") {
			continue
		}
		from, body, ok, err := rc.in.messageFields(e.Raw)
		if err != nil {
			rc.h.malformed.Add(1)
			continue
		}
		if ok {
			rc.check(from, body, now)
		}
	}
}

// check checks one message from from with body text, which arrived at
// now, in nanoseconds since the hub's epoch.
func (rc *receiver) check(from, text string, now int64) {
	run, seq, ts, ok := parseChatBody(text)
	if !ok {
		rc.h.malformed.Add(1)
		return
	}
	if run != rc.h.run {
		// An earlier run's, still on its way to these JIDs.
		rc.h.stale.Add(1)
		return
	}
	if from != rc.from && bareJID(from) != bareJID(rc.from) {
		rc.h.foreign.Add(1)
		return
	}
	rc.h.received.Add(1)
	switch {
	case seq == rc.last+1:
		rc.h.inOrder.Add(1)
		rc.last = seq
	case seq <= rc.last:
		if _, ok := rc.holes[seq]; !ok {
			rc.h.duplicates.Add(1)
			return // no latency for a repeat
		}
		delete(rc.holes, seq)
		rc.h.late.Add(1)
	default:
		rc.h.gaps.Add(1)
		if rc.holes == nil {
			rc.holes = make(map[uint64]struct{})
		}
		for s := rc.last + 1; s < seq && len(rc.holes) < maxQueue*16; s++ {
			rc.holes[s] = struct{}{}
		}
		rc.last = seq
	}
	if now <= rc.h.since(rc.h.stopAt) {
		rc.h.inWindow.Add(1)
	}
	rc.h.lastReceived.Store(now)
	lat := time.Duration(now - ts)
	rc.h.mark(now, lat)
	if len(rc.latencies) < maxLatencySamples {
		rc.latencies = append(rc.latencies, lat)
	}
}

// chat runs a chatting session until loadCtx ends; then it terminates
// the session as idle does.
//
// A session logged in again (--relogin) calls chat once more: what it
// checked of its partner's messages, its own numbering and the messages
// due are kept in c.chatState, so that it chats on where it stopped.
func (c *client) chat(loadCtx, runCtx context.Context, h *hub, terminate bool) (terminated bool, err error) {
	st := c.chatState
	if st == nil {
		h.publish(c.index, c.jid)
		to, err := h.partnerJID(loadCtx, c.index)
		if err != nil {
			return false, nil // the run ended first
		}
		st = &chatState{to: to, rc: &receiver{h: h, from: to}}
		c.chatState = st
	}
	to, rc := st.to, st.rc
	defer func() {
		h.addLatencies(rc.latencies)
		rc.latencies = nil
	}()

	type result struct {
		rid uint64
		r   *response
		err error
	}
	done := make(chan result, 2)
	reqCtx, cancel := context.WithCancel(runCtx)
	defer cancel()
	inFlight := 0
	// Responses are processed in rid order, as XEP-0124 asks of a
	// client: with two requests in flight the later one's answer can
	// come back first. early holds such an answer.
	nextAnswer := c.rid
	early := make(map[uint64]*response, 2)
	// Two posters, one per request in flight, live as long as the
	// session chats: a goroutine per request would grow a new stack
	// through net/http's client every time, a tenth of the generator's
	// CPU per stanza. send never has more than two requests out, so
	// posts never blocks; done has room for both answers, so a poster
	// never blocks either, and both end when posts is closed.
	type post struct {
		rid  uint64
		body string
	}
	posts := make(chan post, 2)
	defer close(posts)
	for range 2 {
		go func() {
			for p := range posts {
				r, err := c.post(reqCtx, phaseIdle, p.body)
				done <- result{p.rid, r, err}
			}
		}()
	}
	send := func(payload string) {
		rid := c.nextRID()
		inFlight++
		c.onHeld()
		posts <- post{rid, sessionBody(rid, c.sid, payload)}
	}
	perSession := c.cfg.ratePerPair / 2
	interval := time.Duration(float64(time.Second) / perSession)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	startCh := h.start
	if !st.due.IsZero() {
		// Logged in again: the messages go on from where they were.
		startCh = nil
		if st.due.Before(h.stopAt) {
			timer.Reset(time.Until(st.due))
		}
	}

	payload := initialPresence
	for {
		switch {
		case inFlight == 0:
			send(payload + c.takeMessages(h, to, &st.seq, &st.queued))
			payload = ""
		case inFlight == 1 && st.queued > 0:
			send(c.takeMessages(h, to, &st.seq, &st.queued))
		}
		select {
		case res := <-done:
			inFlight--
			c.onReleased()
			if res.err != nil {
				cancel()
				for ; inFlight > 0; inFlight-- {
					<-done
					c.onReleased()
				}
				if runCtx.Err() != nil {
					return false, nil // the run was stopped, and the request with it
				}
				return false, res.err
			}
			c.onStanzas(len(res.r.Children))
			early[res.rid] = res.r
			for r, ok := early[nextAnswer]; ok; r, ok = early[nextAnswer] {
				delete(early, nextAnswer)
				nextAnswer++
				rc.take(r.Children, rc.h.since(r.arrived))
			}
		case <-startCh:
			startCh = nil
			// A random phase spreads the sessions' sends.
			st.due = h.startAt.Add(time.Duration(rand.Int64N(int64(interval) + 1)))
			timer.Reset(time.Until(st.due))
		case <-timer.C:
			now := time.Now()
			for !st.due.After(now) && st.due.Before(h.stopAt) {
				if st.queued < maxQueue {
					st.queued++
				} else {
					h.skipped.Add(1)
				}
				st.due = st.due.Add(interval)
			}
			if st.due.Before(h.stopAt) {
				timer.Reset(time.Until(st.due))
			}
		case <-loadCtx.Done():
			if terminate && runCtx.Err() == nil {
				err = c.terminate(runCtx)
			}
			cancel()
			for ; inFlight > 0; inFlight-- {
				<-done
				c.onReleased()
			}
			return terminate && err == nil, err
		}
	}
}

// takeMessages returns the queued messages, numbered and stamped now,
// and empties the queue.
func (c *client) takeMessages(h *hub, to string, seq *uint64, queued *int) string {
	if *queued == 0 {
		return ""
	}
	var b strings.Builder
	now := h.now()
	for range *queued {
		*seq++
		b.WriteString(chatMessage(h.run, to, *seq, now))
	}
	h.sent.Add(int64(*queued))
	h.requestsWithMessages.Add(1)
	h.messagesInTheRequests.Add(int64(*queued))
	*queued = 0
	return b.String()
}

// poll sends empty requests back to back from h.start until loadCtx
// ends, one at a time, counting round trips; then it terminates the
// session as idle does.
func (c *client) poll(loadCtx, runCtx context.Context, h *hub, terminate bool) (terminated bool, err error) {
	select {
	case <-loadCtx.Done():
		return false, nil
	case <-h.start:
	}
	var lat []time.Duration
	defer func() { h.addLatencies(lat) }()
	for loadCtx.Err() == nil {
		start := time.Now()
		r, err := c.post(runCtx, phaseIdle, sessionBody(c.nextRID(), c.sid, ""))
		if err != nil {
			return false, err
		}
		if loadCtx.Err() != nil {
			break // answered after the end of the load: not counted
		}
		h.roundTrips.Add(1)
		c.onStanzas(len(r.Children))
		if len(lat) < maxLatencySamples {
			lat = append(lat, time.Since(start))
		}
	}
	if !terminate || runCtx.Err() != nil {
		return false, nil
	}
	err = c.terminate(runCtx)
	return err == nil, err
}

// report fills in the chat or poll part of res once every session has
// ended.
func (h *hub) report(cfg *config, res *results) {
	select {
	case <-h.start:
	default:
		return // the load ended before every session was set up
	}
	h.latMu.Lock()
	lat := h.latencies
	h.latMu.Unlock()
	<-h.cpuDone
	var cpu []cpuReport
	if h.cpuErr == nil {
		for k, p := range h.cpuPIDs {
			cpu = append(cpu, cpuReport{PID: p, Seconds: (h.cpuEnd[k] - h.cpuStart[k]).Seconds()})
		}
	} else {
		res.Errors = append(res.Errors, "cpu: "+h.cpuErr.Error())
	}
	perUnit := func(n int64) {
		for k := range cpu {
			if n > 0 {
				cpu[k].PerUnitUS = cpu[k].Seconds * 1e6 / float64(n)
			}
		}
	}
	res.CPU = cpu
	if cfg.poll {
		secs := h.stopAt.Sub(h.startAt).Seconds()
		p := &pollReport{Seconds: secs, RoundTrips: h.roundTrips.Load(), RoundTripLat: latencySummary(lat)}
		if secs > 0 {
			p.Rate = float64(p.RoundTrips) / secs
		}
		res.Poll = p
		perUnit(p.RoundTrips)
		return
	}
	c := &chatReport{
		Pairs:          cfg.pairs,
		RatePerPair:    cfg.ratePerPair,
		OfferedRate:    float64(cfg.pairs) * cfg.ratePerPair,
		SendSeconds:    h.stopAt.Sub(h.startAt).Seconds(),
		Sent:           h.sent.Load(),
		Skipped:        h.skipped.Load(),
		Received:       h.received.Load(),
		InOrder:        h.inOrder.Load(),
		Duplicates:     h.duplicates.Load(),
		Gaps:           h.gaps.Load(),
		Late:           h.late.Load(),
		Foreign:        h.foreign.Load(),
		Stale:          h.stale.Load(),
		Malformed:      h.malformed.Load(),
		Latency:        latencySummary(lat),
		LatencySamples: len(lat),
		StartUnixMS:    h.startAt.UnixMilli(),
		Timeline:       h.timelineReport(),
	}
	c.Missing = c.Sent - (c.Received - c.Duplicates)
	if c.SendSeconds > 0 {
		c.SentRate = float64(c.Sent) / c.SendSeconds
		c.ReceivedRate = float64(c.Received-c.Duplicates) / c.SendSeconds
		c.WindowRate = float64(h.inWindow.Load()) / c.SendSeconds
	}
	if n := h.requestsWithMessages.Load(); n > 0 {
		c.PerRequest = float64(h.messagesInTheRequests.Load()) / float64(n)
	}
	// A message still on its way when the load ends is missing but not
	// lost: only a gap (a later one arrived first) or a repeat breaks
	// exactly-once delivery. AllDelivered says nothing was left on the way.
	c.ExactlyOnceOK = c.Sent > 0 && c.Duplicates == 0 && c.Foreign == 0 && c.Gaps == c.Late
	c.InOrderOK = c.ExactlyOnceOK && c.Gaps == 0 && c.Late == 0
	c.AllDelivered = c.Missing == 0
	res.Chat = c
	perUnit(c.Received - c.Duplicates)
}
