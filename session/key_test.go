package session

import (
	"crypto/sha1"
	"encoding/hex"
	"testing"
)

func TestKeySequence(t *testing.T) {
	// XEP-0124 §15.4, §15.5, §15
	k := func(s string) string { sum := sha1.Sum([]byte(s)); return hex.EncodeToString(sum[:]) }
	// Chain: K2 = sha1(K3), K1 = sha1(K2); creation sends newkey K1.
	k3 := "seed"
	k2 := k(k3)
	k1 := k(k2)
	p := defaultParams()
	p.Wait = 0
	p.Key = k1
	h := newHarness(t, p)
	if r := h.request(Request{RID: firstRID + 1, Key: k2}); r.Type != "" {
		t.Fatalf("good key got %+v", r)
	}
	// Switch chains: key k3 checks the old chain, newkey starts a new one.
	n1 := k("other")
	if r := h.request(Request{RID: firstRID + 2, Key: k3, NewKey: n1}); r.Type != "" {
		t.Fatalf("key with newkey got %+v", r)
	}
	// A resent rid does not move the chain on.
	h.request(Request{RID: firstRID + 2, Key: "anything"})
	if r := h.request(Request{RID: firstRID + 3, Key: "wrong"}); r.Condition != ItemNotFound {
		t.Fatalf("bad key got %+v", r)
	}

	h = newHarness(t, p)
	if r := h.request(Request{RID: firstRID + 1}); r.Condition != ItemNotFound {
		t.Fatalf("missing key got %+v", r)
	}

	p.Key = ""
	h = newHarness(t, p)
	if r := h.request(Request{RID: firstRID + 1, Key: "ignored"}); r.Type != "" {
		t.Fatalf("key without newkey at creation got %+v", r)
	}
}
