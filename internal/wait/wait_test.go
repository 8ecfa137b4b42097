package wait

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestFor(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	go func() {
		for range 3 {
			n.Add(1)
		}
	}()
	if !For(Deadline, func() bool { return n.Load() == 3 }) {
		t.Fatal("For = false for a condition that comes true")
	}
	start := time.Now()
	if For(20*time.Millisecond, func() bool { return false }) {
		t.Fatal("For = true for a condition that never holds")
	}
	if time.Since(start) < 20*time.Millisecond {
		t.Fatal("For gave up before its timeout")
	}
}

func TestReceive(t *testing.T) {
	t.Parallel()
	ch := make(chan string, 1)
	go func() { ch <- "v" }()
	if got := Receive(t, ch, "a value"); got != "v" {
		t.Fatalf("Receive = %q, want v", got)
	}
}
