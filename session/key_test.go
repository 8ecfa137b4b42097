package session

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"testing"
)

func TestKeySequence(t *testing.T) {
	// R-KEY-1, R-KEY-2, R-KEY-3, R-KEY-4
	k := func(s string) string { sum := sha1.Sum([]byte(s)); return hex.EncodeToString(sum[:]) }
	// Chain: K2 = sha1(K3), K1 = sha1(K2); creation sends newkey K1.
	k3 := "seed"
	k2 := k(k3)
	k1 := k(k2)
	p := defaultParams()
	p.Wait = 0
	p.Key = k1
	h := newHarness(t, p)
	if r := h.start(context.Background(), Request{RID: firstRID + 1, Key: k2}).wait(t); r.Type != "" {
		t.Fatalf("good key got %+v", r)
	}
	// Switch chains: key k3 checks the old chain, newkey starts a new one.
	n1 := k("other")
	if r := h.start(context.Background(), Request{RID: firstRID + 2, Key: k3, NewKey: n1}).wait(t); r.Type != "" {
		t.Fatalf("key with newkey got %+v", r)
	}
	// A resent rid does not move the chain on.
	h.start(context.Background(), Request{RID: firstRID + 2, Key: "anything"}).wait(t)
	if r := h.start(context.Background(), Request{RID: firstRID + 3, Key: "wrong"}).wait(t); r.Condition != ItemNotFound {
		t.Fatalf("bad key got %+v", r)
	}

	h = newHarness(t, p)
	if r := h.start(context.Background(), Request{RID: firstRID + 1}).wait(t); r.Condition != ItemNotFound {
		t.Fatalf("missing key got %+v", r)
	}

	p.Key = ""
	h = newHarness(t, p)
	if r := h.start(context.Background(), Request{RID: firstRID + 1, Key: "ignored"}).wait(t); r.Type != "" {
		t.Fatalf("key without newkey at creation got %+v", r)
	}
}
