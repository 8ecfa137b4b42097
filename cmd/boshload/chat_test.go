package main

import (
	"encoding/xml"
	"strconv"
	"strings"
	"testing"
	"time"
)

func xmlName(space, local string) xml.Name { return xml.Name{Space: space, Local: local} }
func attrs(k, v string) []xml.Attr         { return []xml.Attr{{Name: xml.Name{Local: k}, Value: v}} }
func itoa(n uint64) string                 { return strconv.FormatUint(n, 10) }

func TestParseChatBody(t *testing.T) {
	t.Parallel()
	run, seq, ts, ok := parseChatBody(" boshload run=k3x seq=12 ts=345 ")
	if !ok || run != "k3x" || seq != 12 || ts != 345 {
		t.Errorf("got %q %d %d %v", run, seq, ts, ok)
	}
	if run, seq, ts, ok := parseChatBody(chatBodyOf(chatMessage("r1", "b@localhost/x", 7, 99))); !ok || run != "r1" || seq != 7 || ts != 99 {
		t.Errorf("chatMessage's body read back as %q %d %d %v", run, seq, ts, ok)
	}
	for _, bad := range []string{"", "hello", "boshload run=a seq=0 ts=1", "boshload run=a seq=x ts=1", "boshload run=a seq=1",
		"boshload run= seq=1 ts=1", "boshload run=a ts=1", "boshload seq=1 ts=1"} {
		if _, _, _, ok := parseChatBody(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}

// chatBodyOf returns the text of the <body/> in a message chatMessage
// wrote.
func chatBodyOf(msg string) string {
	_, rest, _ := strings.Cut(msg, "<body>")
	body, _, _ := strings.Cut(rest, "</body>")
	return body
}

// TestReceiver checks the exactly-once and order accounting: in order,
// a gap filled late (reordered), a repeat, a stranger, and a message of
// an earlier run.
func TestReceiver(t *testing.T) {
	t.Parallel()
	h := &hub{epoch: time.Now(), run: "this"}
	rc := &receiver{h: h, from: "a@localhost/r"}
	// take hands rc the messages in one BOSH response, parsed as a
	// response is.
	take := func(rc *receiver, arrived int64, msgs ...string) {
		t.Helper()
		r, err := parseResponse([]byte("<body xmlns='" + nsHTTPBind + "'>" + strings.Join(msgs, "") + "</body>"))
		if err != nil {
			t.Fatal(err)
		}
		rc.take(r.Children, arrived)
	}
	msgText := func(from, text string) string {
		return "<message xmlns='jabber:client' from='" + from + "' type='chat'><body>" + text + "</body></message>"
	}
	msg := func(from string, seq uint64) string { return msgText(from, parseable(seq)) }
	stale := msgText("a@localhost/r", chatBodyPrefix+"earlier seq=9 ts=1")
	take(rc, 0, msg("a@localhost/r", 1), stale, msg("a@localhost/r", 3), msg("a@localhost/r", 2),
		msg("a@localhost/r", 2), msg("b@localhost/r", 4), "<presence xmlns='jabber:client'/>",
		"<message xmlns='jabber:client' from='a@localhost/r'/>", msg("a@localhost/r", 4))
	if n := h.stale.Load(); n != 1 {
		t.Errorf("stale = %d, want 1 (an earlier run's message is not counted)", n)
	}
	if got := [...]int64{h.received.Load(), h.inOrder.Load(), h.gaps.Load(), h.late.Load(), h.duplicates.Load(), h.foreign.Load()}; got != [...]int64{5, 2, 1, 1, 1, 1} {
		t.Errorf("received, in order, gaps, late, duplicates, foreign = %v", got)
	}
	if len(rc.latencies) != 4 {
		t.Errorf("%d latencies, want 4 (repeats excluded)", len(rc.latencies))
	}
	// A body that is not boshload's, even escaped, is malformed.
	take(rc, 0, msgText("a@localhost/r", "hello &amp; bye"), msgText("a@localhost/r", "<b>x</b>"))
	if n := h.malformed.Load(); n != 2 {
		t.Errorf("malformed = %d, want 2", n)
	}

	// A response's arrival time, when known, is the receive time.
	rc = &receiver{h: h, from: "a@localhost/r"}
	take(rc, 1001, msg("a@localhost/r", 1))
	if len(rc.latencies) != 1 || rc.latencies[0] != 1000 {
		t.Errorf("latencies %v, want [1µs] (arrival 1001 ns, sent at 1 ns)", rc.latencies)
	}

	// Only what arrives by the end of sending counts in the window, and
	// a repeat does not.
	h = &hub{epoch: time.Now(), run: "this"}
	h.stopAt = h.epoch.Add(2000)
	rc = &receiver{h: h, from: "a@localhost/r"}
	take(rc, 1500, msg("a@localhost/r", 1), msg("a@localhost/r", 1))
	take(rc, 2000, msg("a@localhost/r", 2))
	take(rc, 2500, msg("a@localhost/r", 3))
	if n := h.inWindow.Load(); n != 2 {
		t.Errorf("in window = %d, want 2 (seq 1 once and seq 2; seq 3 came after sending ended)", n)
	}
}

func parseable(seq uint64) string { return chatBodyPrefix + "this seq=" + itoa(seq) + " ts=1" }
