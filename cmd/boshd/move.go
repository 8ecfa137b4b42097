package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/boshd/boshd/bosh"
	"github.com/boshd/boshd/internal/handoff"
	"github.com/boshd/boshd/wsbind"
)

// This file moves the sessions of a live upgrade
// (docs/design/005-live-upgrade.md, "What moves"): the old process dials
// the new one's move socket once it is ready and sends its BOSH sessions
// (bosh.Handler.MoveSessions), then its WebSocket ones
// (wsbind.Handler.MoveSessions); the new one restores each
// (bosh.Handler.RestoreMoved, or wsbind.Handler.RestoreMoved for a
// record wsbind.IsMoveRecord tells apart) and answers "moved", or
// "failed" and why.

// The answers of the new process, one record each, and what the old one
// says besides its records.
//
// What the new process restored stays closed until the old one has let
// it go: the old one sends its next record only after it got the answer
// and forgot what it sent, so that record, or "done", puts the last one
// in service; "abort" (the old process got no answer in time, and keeps
// it) gives it back, nothing read or written meanwhile. If the move
// socket ends with neither, it is put in service if the old process has
// exited, and given back if it lives (it gave up, and could not say
// abort).
const (
	answerMoved  = "moved"
	answerFailed = "failed"
	sayDone      = "done"
	sayAbort     = "abort"
)

// moveResult is what a hand-over moved: the BOSH sessions and resting
// connections, and the WebSocket sessions. Took is the whole hand-over's.
type moveResult struct {
	bosh.MoveResult
	WebSocket wsbind.MoveResult
}

// restored is what the new process restored from a record, waiting for
// the old one to let it go: a *bosh.Restored or a *wsbind.Restored.
type restored interface {
	Commit()
	Abort()
}

// oldExitWait bounds the wait, once the move socket ended in the middle
// of a record, for the old process's pair to end too if it has exited.
const oldExitWait = 2 * time.Second

// moveAnswerWait bounds the wait for the new process's answer to one
// record: one that does not answer in time is taken for broken, and the
// sessions not moved yet stay here.
const moveAnswerWait = 10 * time.Second

// moveBound is how long busy sessions are tried again before they are
// kept: a session is quiet once its upstream and held requests are
// parked, park_after after the last traffic.
func moveBound(parkAfter time.Duration) time.Duration {
	return max(5*time.Second, 3*parkAfter)
}

// receiveMoves serves the move socket of a process an upgrade started:
// the records its old process sends, restored through bln.
func (u *upgrader) receiveMoves(ln *net.UnixListener, bln *bosh.Listener) {
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			return
		}
		go u.receive(handoff.NewChannel(c), bln)
	}
}

// receive restores the records of one connection from the old process,
// answering each, until it closes.
func (u *upgrader) receive(ch *handoff.Channel, bln *bosh.Listener) {
	defer ch.Close()
	var pending restored
	settle := func(keep bool) {
		switch {
		case pending == nil:
		case keep:
			pending.Commit()
			u.mu.Lock()
			u.old.Moved++
			u.mu.Unlock()
		default:
			pending.Abort()
		}
		pending = nil
	}
	// The connection ended with neither done nor abort after a record:
	// an old process that died had forgotten it on the answer, or cannot
	// serve it any more, and it is this process's; one that lives gave up
	// waiting for the answer (or never got it), kept the session, and
	// could not say abort: it is given back, so that no session is
	// served by both.
	defer func() {
		if pending != nil {
			settle(u.oldExited(oldExitWait))
		}
	}()
	for {
		data, fds, err := ch.Receive()
		if err != nil && !errors.Is(err, handoff.ErrRecord) {
			return
		}
		switch string(data) {
		case sayAbort:
			settle(false)
			continue
		case sayDone:
			settle(true)
			continue
		}
		settle(true)
		answer := answerMoved
		if err != nil {
			u.log.Warn("upgrade: a record from the old process refused", "err", err)
			answer = answerFailed + " " + err.Error()
		} else if pending, err = u.restore(data, fds, bln); err != nil {
			u.log.Warn("upgrade: a session from the old process not restored: it serves it on", "err", err)
			answer = answerFailed + " " + err.Error()
		}
		ch.SetDeadline(time.Now().Add(moveAnswerWait))
		if err := ch.Send([]byte(answer), nil); err != nil {
			u.log.Warn("upgrade: the old process not answered", "err", err)
			return
		}
	}
}

// restore restores a record: a WebSocket session's through the
// WebSocket handler (its client connection counted by bln), any other
// through the BOSH one. On error no descriptor is left open.
func (u *upgrader) restore(data []byte, fds []int, bln *bosh.Listener) (restored, error) {
	if !wsbind.IsMoveRecord(data) {
		r, err := u.h.RestoreMoved(data, fds, bln)
		if err != nil {
			return nil, err
		}
		return r, nil
	}
	if u.wsh == nil {
		handoff.CloseFDs(fds)
		return nil, errors.New("upgrade: a WebSocket session, and no websocket_path here")
	}
	r, err := u.wsh.RestoreMoved(data, fds, bln.Adopt)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// move sends this process's sessions to the new one at its move socket,
// beside socket, its handoff socket; bound is how long busy sessions
// are tried again. It returns what moved.
func (u *upgrader) move(ctx context.Context, socket string, bln *bosh.Listener, bound time.Duration) moveResult {
	start := time.Now()
	ch, err := handoff.DialMoves(handoff.MoveSocket(socket))
	if err != nil {
		u.log.Warn("upgrade: no session moved: the new process takes none", "err", err)
		var res moveResult
		res.Kept = int(u.h.Stats().Live)
		u.metrics.UpgradeMoved(0, 0, res.Kept)
		if u.wsh != nil {
			res.WebSocket.Kept = int(u.wsh.Stats().Live)
			u.metrics.UpgradeWebSocketMoved(0, 0, res.WebSocket.Kept)
		}
		return res
	}
	defer ch.Close()
	unanswered := false // a record sent whose answer did not come
	broken := false     // nothing more is sent
	send := func(data []byte, fds []int) error {
		ch.SetDeadline(time.Now().Add(moveAnswerWait))
		if err := ch.Send(data, fds); err != nil {
			broken = true
			return err
		}
		answer, afds, err := ch.Receive()
		handoff.CloseFDs(afds)
		if err != nil {
			unanswered, broken = true, true
			return err
		}
		switch verb, why, _ := strings.Cut(string(answer), " "); verb {
		case answerMoved:
			return nil
		case answerFailed:
			return fmt.Errorf("%w: %s", bosh.ErrMoveRefused, why)
		default:
			broken = true
			return fmt.Errorf("upgrade: the new process answered %q", answer)
		}
	}
	res := moveResult{MoveResult: u.h.MoveSessions(ctx, send, bln, bound)}
	if u.wsh != nil {
		if broken || ctx.Err() != nil {
			// The way is broken: every WebSocket session stays.
			res.WebSocket.Kept = int(u.wsh.Stats().Live)
			u.metrics.UpgradeWebSocketMoved(0, 0, res.WebSocket.Kept)
		} else {
			res.WebSocket = u.wsh.MoveSessions(ctx, func(data []byte, fds []int) error {
				err := send(data, fds)
				if errors.Is(err, bosh.ErrMoveRefused) {
					return fmt.Errorf("%w: %v", wsbind.ErrMoveRefused, err)
				}
				return err
			}, bound)
		}
	}
	res.Took = time.Since(start)
	u.metrics.UpgradeHandOff(res.Took)
	// The last record answered is let go; one not answered is kept
	// here, and the new process told to give it back.
	say := sayDone
	if unanswered {
		say = sayAbort
	}
	ch.SetDeadline(time.Now().Add(time.Second))
	ch.Send([]byte(say), nil)
	return res
}
