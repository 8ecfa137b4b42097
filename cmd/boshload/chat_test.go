package main

import (
	"encoding/xml"
	"strconv"
	"testing"
	"time"
)

func xmlName(space, local string) xml.Name { return xml.Name{Space: space, Local: local} }
func attrs(k, v string) []xml.Attr         { return []xml.Attr{{Name: xml.Name{Local: k}, Value: v}} }
func itoa(n uint64) string                 { return strconv.FormatUint(n, 10) }

func TestParseChatBody(t *testing.T) {
	seq, ts, ok := parseChatBody(" boshload seq=12 ts=345 ")
	if !ok || seq != 12 || ts != 345 {
		t.Errorf("got %d %d %v", seq, ts, ok)
	}
	for _, bad := range []string{"", "hello", "boshload seq=0 ts=1", "boshload seq=x ts=1", "boshload seq=1"} {
		if _, _, ok := parseChatBody(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestReceiver checks the exactly-once and order accounting: in order,
// a gap filled late (reordered), a repeat, and a stranger.
func TestReceiver(t *testing.T) {
	h := &hub{epoch: time.Now()}
	rc := &receiver{h: h, from: "a@localhost/r"}
	msg := func(from string, seq uint64) element {
		return element{
			XMLName: xmlName(nsClient, "message"),
			Attrs:   attrs("from", from),
			Children: []element{{XMLName: xmlName(nsClient, "body"),
				Text: parseable(seq)}},
		}
	}
	rc.take([]element{msg("a@localhost/r", 1), msg("a@localhost/r", 3), msg("a@localhost/r", 2),
		msg("a@localhost/r", 2), msg("b@localhost/r", 4), msg("a@localhost/r", 4)})
	if got := [...]int64{h.received.Load(), h.inOrder.Load(), h.gaps.Load(), h.late.Load(), h.duplicates.Load(), h.foreign.Load()}; got != [...]int64{5, 2, 1, 1, 1, 1} {
		t.Errorf("received, in order, gaps, late, duplicates, foreign = %v", got)
	}
	if len(rc.latencies) != 4 {
		t.Errorf("%d latencies, want 4 (repeats excluded)", len(rc.latencies))
	}
}

func parseable(seq uint64) string { return chatBodyPrefix + itoa(seq) + " ts=1" }
