package handoff

import (
	"context"
	"slices"
	"testing"
	"time"
)

// TestMoveAll checks the order of tries: every item once, batch by batch,
// busy ones again until the bound, reopened after gateMax, and nothing
// more once the way breaks or the context ends.
func TestMoveAll(t *testing.T) {
	for _, tc := range []struct {
		name    string
		n       int
		busy    map[int]int // item: how many tries find it busy (-1: always)
		broken  int         // the item whose try breaks the way; -1: none
		cancel  bool        // the context has ended
		gateMax time.Duration
		// What comes out.
		left       []int
		wasBroken  bool
		reopened   bool
		maxTries   int // of any item
		notTried   []int
		batchOrder bool // check when item 3, busy at first, is tried again
	}{
		{name: "all settle", n: 200, broken: -1, gateMax: time.Second, maxTries: 1},
		{name: "busy then settled", n: 200, busy: map[int]int{3: 2, 150: 5}, broken: -1, gateMax: time.Second, maxTries: 6, batchOrder: true},
		{name: "always busy", n: 10, busy: map[int]int{4: -1}, broken: -1, gateMax: time.Hour, left: []int{4}},
		{name: "reopened", n: 3, busy: map[int]int{1: -1}, broken: -1, gateMax: 50 * time.Millisecond, left: []int{1}, reopened: true},
		{name: "broken", n: 100, broken: 10, gateMax: time.Second, left: seq(11, 100), wasBroken: true, maxTries: 1, notTried: seq(11, 100)},
		{name: "cancelled", n: 5, broken: -1, cancel: true, gateMax: time.Second, left: seq(0, 5), wasBroken: true, notTried: seq(0, 5)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancel {
				cancel()
			}
			tries := make(map[int]int)
			var order []int
			try := func(x int) Try {
				tries[x]++
				order = append(order, x)
				switch b := tc.busy[x]; {
				case x == tc.broken:
					return Broken
				case b < 0 || tries[x] <= b:
					return Busy
				}
				return Settled
			}
			reopened := false
			left, broken := MoveAll(ctx, seq(0, tc.n), 300*time.Millisecond, tc.gateMax, try, func(int) { reopened = true })
			slices.Sort(left)
			if !slices.Equal(left, tc.left) || broken != tc.wasBroken || reopened != tc.reopened {
				t.Errorf("left %v, broken %v, reopened %v; want %v, %v, %v", left, broken, reopened, tc.left, tc.wasBroken, tc.reopened)
			}
			for x := range tc.n {
				if slices.Contains(tc.notTried, x) {
					if tries[x] != 0 {
						t.Errorf("item %d tried %d times, want none", x, tries[x])
					}
				} else if tries[x] == 0 {
					t.Errorf("item %d never tried", x)
				}
				if tc.maxTries > 0 && tries[x] > tc.maxTries {
					t.Errorf("item %d tried %d times, want at most %d", x, tries[x], tc.maxTries)
				}
			}
			if tc.left != nil && !tc.wasBroken && !tc.reopened {
				// Tried again until the bound, every MoveRetry.
				if n := tries[tc.left[0]]; n < 5 {
					t.Errorf("an item always busy tried %d times within the bound", n)
				}
			}
			// A busy item of the first batch is tried again after the
			// second batch, before the third.
			if tc.batchOrder {
				var at []int
				for i, x := range order {
					if x == 3 {
						at = append(at, i)
					}
				}
				last2, first3 := slices.Index(order, 2*MoveBatch-1), slices.Index(order, 2*MoveBatch)
				if len(at) < 2 || at[1] < last2 || at[1] > first3 {
					t.Errorf("item 3 tried at %v, want again between the second batch's end (%d) and the third's start (%d)", at, last2, first3)
				}
			}
		})
	}
}

// seq returns from, …, to-1.
func seq(from, to int) []int {
	var s []int
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}
