package handoff

import (
	"context"
	"time"
)

// This file is the order in which the old process of a live upgrade tries
// to move its sessions (docs/design/005-live-upgrade.md, "Corrections:
// moving sessions"), the same for every binding: what a try is, the
// binding's.

// Bounds of MoveAll.
const (
	// MoveBatch is how many items MoveAll tries before it tries again
	// those it found busy.
	MoveBatch = 64
	// MoveRetry is how long MoveAll waits before trying busy items
	// again, once every item has been tried.
	MoveRetry = 20 * time.Millisecond
)

// A Try is what one try to move an item came to.
type Try int

// What a try came to.
const (
	// Settled: moved, or done with otherwise (kept, refused, ended):
	// not tried again.
	Settled Try = iota
	// Busy: not quiet now; tried again.
	Busy
	// Broken: the way to the new process is broken; nothing more is
	// tried.
	Broken
)

// MoveAll tries to move each of items with try, MoveBatch at a time, and
// tries again those a batch found Busy after the next batch (so that an
// item made to wait for its move, its door closed, waits about a batch's
// time, not a pass over thousands), then, once every item has been
// tried, every MoveRetry until bound has passed since it began. An item
// still Busy gateMax after it was first found so is let go on (reopen)
// and not tried again for as long. MoveAll stops early when try reports
// Broken or ctx ends.
//
// It returns the items it did not settle, still busy or never tried, and
// whether the way broke (ctx ended included).
func MoveAll[T comparable](ctx context.Context, items []T, bound, gateMax time.Duration, try func(T) Try, reopen func(T)) (left []T, broken bool) {
	deadline := time.Now().Add(bound)
	todo := items
	closed := make(map[T]time.Time) // when an item was first found busy
	open := make(map[T]time.Time)   // an item let go on until then
	// again tries x once, and reports whether it is still to be tried.
	again := func(x T) bool {
		if ctx.Err() != nil {
			broken = true
		}
		if until, ok := open[x]; broken || ok && time.Now().Before(until) {
			return true
		}
		switch try(x) {
		case Busy:
			if at, ok := closed[x]; !ok {
				closed[x] = time.Now()
			} else if time.Since(at) > gateMax {
				reopen(x)
				delete(closed, x)
				open[x] = time.Now().Add(gateMax)
			}
			return true
		case Broken:
			broken = true
		}
		return false
	}
	var busy []T
	for (len(todo) > 0 || len(busy) > 0) && !broken {
		n := min(MoveBatch, len(todo))
		var next []T
		for _, x := range todo[:n] {
			if again(x) {
				next = append(next, x)
			}
		}
		todo = todo[n:]
		for _, x := range busy {
			if again(x) {
				next = append(next, x)
			}
		}
		busy = next
		if len(todo) > 0 {
			continue
		}
		if len(busy) == 0 || broken || !time.Now().Add(MoveRetry).Before(deadline) {
			break
		}
		select {
		case <-time.After(MoveRetry):
		case <-ctx.Done():
			broken = true
		}
	}
	return append(busy, todo...), broken
}
