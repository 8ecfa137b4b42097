package main

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// finishTimeout bounds the WebSocket closing handshake after the
// server's <close/>.
const finishTimeout = 2 * time.Second

// idle sends initial presence (when logged in) and reads the connection
// until loadCtx ends, counting what the server sends; then it ends the
// stream with <close/> if terminate is set (see serve). The session's
// goroutine blocks on the read: no other goroutine and no timer per idle
// session.
func (c *wsClient) idle(loadCtx, runCtx context.Context, terminate bool) (terminated bool, err error) {
	if c.authenticated {
		if err := c.ws.writeText([]byte(initialPresence)); err != nil {
			return false, networkFailure(phaseIdle, err)
		}
	}
	return c.serve(loadCtx, runCtx, terminate, nil, nil)
}

// chat sends initial presence, then numbered messages to the partner's
// bound JID at --rate-per-pair/2 per second from h.start to h.stopAt,
// each a message of its own, sent when due (a goroutine of its own,
// send), while this goroutine reads and checks the partner's (see
// chat.go). It ends as idle does.
func (c *wsClient) chat(loadCtx, runCtx context.Context, h *hub, terminate bool) (terminated bool, err error) {
	h.publish(c.index, c.jid)
	to, err := h.partnerJID(loadCtx, c.index)
	if err != nil {
		return false, nil // the run ended first
	}
	if err := c.ws.writeText([]byte(initialPresence)); err != nil {
		return false, networkFailure(phaseIdle, err)
	}
	rc := &receiver{h: h, from: to}
	defer func() { h.addLatencies(rc.latencies) }()
	return c.serve(loadCtx, runCtx, terminate, rc, func(ctx context.Context) error { return c.send(ctx, h, to) })
}

// serve reads the connection until the stream ends, handing each
// <message/> to rc (when chatting) and counting every message. When
// sender is set, it runs on a goroutine of its own until loadCtx ends or
// the reading stops.
//
// When loadCtx ends, end runs (context.AfterFunc): after sender has
// returned, it writes unavailable presence (when logged in) and
// <close/>; serve reads on until the server's <close/>, which makes the
// session terminated, and ends the WebSocket connection. Without
// terminate, end closes the connection instead, and serve returns no
// failure. runCtx's end closes the connection whatever the state.
func (c *wsClient) serve(loadCtx, runCtx context.Context, terminate bool, rc *receiver, sender func(context.Context) error) (terminated bool, err error) {
	// closingAt is when our <close/> was written (Unix nanoseconds), 0
	// before: set by end, read here.
	var closingAt atomic.Int64
	var sendFailure error // set by the sender goroutine before senderDone closes
	senderDone := make(chan struct{})
	sendCtx, stopSender := context.WithCancel(loadCtx)
	if sender != nil {
		go func() {
			defer close(senderDone)
			if err := sender(sendCtx); err != nil {
				sendFailure = err
				c.ws.conn.Close() // the reading stops too
			}
		}()
	} else {
		close(senderDone)
	}
	readerDone := make(chan struct{})
	var ending sync.WaitGroup
	ending.Add(1)
	stopEnd := context.AfterFunc(loadCtx, func() {
		defer ending.Done()
		c.end(runCtx, terminate, senderDone, readerDone, &closingAt)
	})
	stopRun := context.AfterFunc(runCtx, func() { c.ws.conn.Close() })
	c.onHeld()
	defer func() {
		c.onReleased()
		stopRun()
		stopSender()
		<-senderDone
		close(readerDone)
		if stopEnd() {
			ending.Done() // end never ran
		}
		ending.Wait() // end may hold an end slot until readerDone
	}()

	for {
		msg, arrived, err := c.ws.readMessage()
		if err != nil {
			return false, c.readEnd(loadCtx, runCtx, terminate, closingAt.Load(), senderDone, &sendFailure, err)
		}
		phase := phaseIdle
		if closingAt.Load() != 0 {
			phase = phaseTerminate
		}
		el, err := parseMessage(msg)
		if err != nil {
			c.ws.conn.Close()
			return false, protocolFailure(phase, "malformed message", err)
		}
		switch {
		case isElement(el, nsFraming, "close") && phase == phaseTerminate:
			c.endLatency = time.Duration(arrived.UnixNano() - closingAt.Load())
			c.ws.finish(finishTimeout)
			return true, nil
		case isElement(el, nsFraming, "close"), isElement(el, nsStream, "error"):
			if isElement(el, nsFraming, "close") {
				// Answer the server's <close/> (RFC 7395 §3.6).
				c.ws.writeText([]byte(closeMessage))
			}
			return false, c.streamEnd(phase, el)
		case el.NS == nsFraming:
			// An <open/> out of place: nothing boshload uses.
		default:
			c.onStanzas(1)
			if rc == nil || !isElement(el, nsClient, "message") {
				continue
			}
			from, body, ok, err := c.in.messageFields(el.Raw)
			if err != nil {
				rc.h.malformed.Add(1)
				continue
			}
			if ok {
				rc.check(from, body, rc.h.since(arrived))
			}
		}
	}
}

// readEnd returns what a read error err means: nothing when the load
// ended without terminate (end closed the connection), the sender's
// failure if it had one, else a failure of the phase the session was in.
func (c *wsClient) readEnd(loadCtx, runCtx context.Context, terminate bool, closingAt int64, senderDone <-chan struct{}, sendFailure *error, err error) error {
	c.ws.conn.Close()
	// runCtx's end closes the connection too, maybe before loadCtx, its
	// child, is seen to end.
	ended := loadCtx.Err() != nil || runCtx.Err() != nil
	switch {
	case ended && !terminate:
		return nil
	case closingAt == 0 && runCtx.Err() != nil:
		return &failure{phase: phaseTerminate, kind: "skipped", detail: "the run ended first"}
	case closingAt != 0 && runCtx.Err() != nil:
		return networkFailure(phaseTerminate, runCtx.Err())
	}
	select {
	case <-senderDone:
		if *sendFailure != nil {
			return *sendFailure
		}
	default:
	}
	if closingAt != 0 {
		return readFailure(phaseTerminate, err)
	}
	return readFailure(phaseIdle, err)
}

// end runs once loadCtx has ended: after the sender has stopped, it
// closes the connection (no terminate, or the run is over), or ends the
// stream with unavailable presence and <close/>, holding an end slot
// until the reading stops.
func (c *wsClient) end(runCtx context.Context, terminate bool, senderDone, readerDone <-chan struct{}, closingAt *atomic.Int64) {
	select {
	case <-senderDone:
	case <-readerDone:
		return
	}
	if !terminate || runCtx.Err() != nil {
		c.ws.conn.Close()
		return
	}
	if c.endSlots != nil {
		select {
		case <-runCtx.Done():
			return // serve's AfterFunc on runCtx closes the connection
		case <-readerDone:
			return
		case c.endSlots <- struct{}{}:
		}
		defer func() { <-c.endSlots }()
	}
	closingAt.Store(time.Now().UnixNano())
	var err error
	if c.authenticated {
		p := []byte(unavailablePresence + closeMessage)
		err = c.ws.writeTexts(p, []int{len(unavailablePresence), len(p)})
	} else {
		err = c.ws.writeText([]byte(closeMessage))
	}
	if err != nil {
		c.ws.conn.Close() // serve fails in phase terminate
	}
	<-readerDone
}

// send writes the chat messages due, each stamped when written, from
// h.start until h.stopAt or ctx's end. Messages due at once (the timer
// fired late) go in one write, at most maxQueue: more are counted as
// skipped, as a BOSH session's full queue does.
func (c *wsClient) send(ctx context.Context, h *hub, to string) error {
	select {
	case <-ctx.Done():
		return nil
	case <-h.start:
	}
	interval := time.Duration(float64(time.Second) / (c.cfg.ratePerPair / 2))
	// A random phase spreads the sessions' sends.
	due := h.startAt.Add(time.Duration(rand.Int64N(int64(interval) + 1)))
	toEscaped := escapeAttr(to)
	var seq uint64
	var buf []byte
	var ends []int
	timer := time.NewTimer(time.Until(due))
	defer timer.Stop()
	for due.Before(h.stopAt) {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		now := time.Now()
		n := 0
		for !due.After(now) && due.Before(h.stopAt) {
			n++
			due = due.Add(interval)
		}
		if n > maxQueue {
			h.skipped.Add(int64(n - maxQueue))
			n = maxQueue
		}
		if n > 0 {
			buf, ends = buf[:0], ends[:0]
			stamp := h.now()
			for range n {
				seq++
				buf = appendChatMessage(buf, h.run, toEscaped, seq, stamp)
				ends = append(ends, len(buf))
			}
			if err := c.ws.writeTexts(buf, ends); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				if errors.Is(err, errCloseSent) {
					return nil
				}
				return networkFailure(phaseIdle, err)
			}
			h.sent.Add(int64(n))
			h.requestsWithMessages.Add(int64(n)) // one message per WebSocket message
			h.messagesInTheRequests.Add(int64(n))
			if cap(buf) > wsKeepBuffer {
				buf, ends = nil, nil
			}
		}
		timer.Reset(time.Until(due))
	}
	return nil
}
