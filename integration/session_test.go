package integration

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boshd/boshd/config"
)

// Session semantics of XEP-0124 against a real Prosody, driven request by
// request with explicit rids (the Strophe-like Client hides them). The
// unit tests in package session cover each rule with a fake clock; these
// check the important ones end to end.

// rawSession is a logged-in BOSH session driven one request at a time.
type rawSession struct {
	t    *testing.T
	url  string
	sid  string
	rid  uint64 // the last rid used
	hc   *http.Client
	wire *wireLog // what boshd read, if it runs in-process (stack.RawLogin)

	mu   sync.Mutex
	sent []uint64 // the rid of every request sent
}

// reply is the outcome of one request.
type reply struct {
	raw  string
	body *Element
	err  error
}

// send posts one body with rid and extra attributes, in the background.
func (s *rawSession) send(rid uint64, attrs, payload string) <-chan reply {
	body := fmt.Sprintf("<body xmlns='%s' rid='%d' sid='%s'%s>%s</body>", nsHTTPBind, rid, s.sid, attrs, payload)
	s.mu.Lock()
	s.sent = append(s.sent, rid)
	s.mu.Unlock()
	ch := make(chan reply, 1)
	go func() { ch <- postBOSH(context.Background(), s.hc, s.url, body) }()
	return ch
}

// postBOSH posts body to url with hc and returns the reply: the raw
// response and its root element.
func postBOSH(ctx context.Context, hc *http.Client, url, body string) reply {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return reply{err: err}
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	_, data, err := readAll(hc.Do(req))
	if err != nil {
		return reply{err: err}
	}
	el, err := parseDocument(data)
	return reply{raw: string(data), body: el, err: err}
}

// next sends the next rid.
func (s *rawSession) next(attrs, payload string) <-chan reply {
	s.rid++
	return s.send(s.rid, attrs, payload)
}

// get waits for a reply.
func (s *rawSession) get(ch <-chan reply) reply {
	s.t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			s.t.Fatalf("request failed: %v", r.err)
		}
		return r
	case <-time.After(eventTimeout):
		s.t.Fatal("no reply")
	}
	return reply{}
}

// waitRead waits until boshd has read every request sent so far (the
// session must come from stack.RawLogin).
func (s *rawSession) waitRead() {
	s.t.Helper()
	if s.wire == nil {
		s.t.Fatal("waitRead on a session whose boshd's wire is not recorded: log in with stack.RawLogin")
	}
	s.mu.Lock()
	sent := slices.Clone(s.sent)
	s.mu.Unlock()
	eventually(s.t, eventTimeout, fmt.Sprintf("boshd reading rids %v", sent), func() bool {
		read := s.wire.Requests(s.sid)
		for _, rid := range sent {
			if !slices.Contains(read, rid) {
				return false
			}
		}
		return true
	})
}

// quietWindow is how long quiet watches for a request to be answered
// when it must not be.
const quietWindow = 200 * time.Millisecond

// quiet waits until boshd has read every request sent so far, then fails
// the test if ch, a reply, comes within quietWindow. The window is not
// there to order events (waitRead does that): a wrong answer is seen only
// if it comes, and it would come at once.
func (s *rawSession) quiet(ch <-chan reply, what string) {
	s.t.Helper()
	s.waitRead()
	select {
	case r := <-ch:
		s.t.Fatalf("%s answered early: %s", what, r.raw)
	case <-time.After(quietWindow):
	}
}

// rawLogin creates a session asking for hold, with extra creation
// attributes, logs user in with SASL PLAIN, restarts, binds resource and
// sends initial presence.
func rawLogin(t *testing.T, url string, p *prosody, user, resource string, hold int, createAttrs string) *rawSession {
	t.Helper()
	s := &rawSession{t: t, url: url, rid: randomRID(), hc: &http.Client{Transport: &http.Transport{DisableCompression: true}}}
	t.Cleanup(s.hc.CloseIdleConnections)
	create := fmt.Sprintf("<body xmlns='%s' xmlns:xmpp='%s' rid='%d' to='%s' xml:lang='en' wait='10' hold='%d' ver='1.6' xmpp:version='1.0'%s/>",
		nsHTTPBind, nsXBOSH, s.rid, p.Domain, hold, createAttrs)
	r := postBOSH(context.Background(), s.hc, url, create)
	if r.err != nil || r.body.Attr("sid") == "" {
		t.Fatalf("creation: %v %s", r.err, r.raw)
	}
	s.sid = r.body.Attr("sid")
	auth := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + p.Passwords[user]))
	if r := s.get(s.next("", "<auth xmlns='"+nsSASL+"' mechanism='PLAIN'>"+auth+"</auth>")); r.body.Child(nsSASL, "success") == nil {
		t.Fatalf("auth: %s", r.raw)
	}
	if r := s.get(s.next(" xmlns:xmpp='"+nsXBOSH+"' xmpp:restart='true' to='"+p.Domain+"' xml:lang='en'", "")); r.body.Child(nsStream, "features") == nil {
		t.Fatalf("restart: %s", r.raw)
	}
	bind := "<iq xmlns='" + nsClient + "' type='set' id='bind'><bind xmlns='" + nsBind + "'><resource>" + resource + "</resource></bind></iq>"
	if r := s.get(s.next("", bind)); r.body.Child(nsClient, "iq") == nil {
		t.Fatalf("bind: %s", r.raw)
	}
	// Initial presence with a ping, so the reply comes back at once.
	ping := "<presence xmlns='" + nsClient + "'/><iq xmlns='" + nsClient + "' type='get' id='online'><ping xmlns='" + nsPing + "'/></iq>"
	s.waitStanza(s.next("", ping), "iq")
	return s
}

// waitStanza waits for a reply carrying a child named local, re-polling
// on empty replies.
func (s *rawSession) waitStanza(ch <-chan reply, local string) reply {
	s.t.Helper()
	deadline := time.Now().Add(eventTimeout)
	for {
		r := s.get(ch)
		if r.body.Child(nsClient, local) != nil {
			return r
		}
		if r.body.Attr("type") == "terminate" || time.Now().After(deadline) {
			s.t.Fatalf("waiting for <%s/>: %s", local, r.raw)
		}
		ch = s.next("", "")
	}
}

func message(to, id, text string) string {
	return fmt.Sprintf("<message xmlns='%s' to='%s' type='chat' id='%s'><body>%s</body></message>", nsClient, to, id, text)
}

// bodies returns the texts of the messages in a reply, in order.
func bodies(r reply) []string {
	var out []string
	for _, m := range r.body.ChildrenNamed(nsClient, "message") {
		out = append(out, m.ChildText(nsClient, "body"))
	}
	return out
}

func TestSessionQueueWhileNothingHeld(t *testing.T) {
	// XEP-0124 §8: stanzas arriving while nothing is held wait, in order,
	// and go out in one body on the next request.
	parallel(t)
	st, alice, bob := startRawPair(t, 1, nil)
	for i := range 5 {
		bob.Send(message("alice@localhost/web", fmt.Sprint(i), fmt.Sprint("m", i)))
	}
	bob.Sync() // Prosody has routed all five to alice's stream
	st.WaitMetric(t, "boshd_queued_stanzas", "the five messages queued for alice", func(v float64) bool { return v == 5 })
	if got := bodies(alice.get(alice.next("", ""))); strings.Join(got, ",") != "m0,m1,m2,m3,m4" {
		t.Fatalf("alice got %q, want all five in one body, in order", got)
	}
}

// startRawPair starts a stack (configured by configure, if not nil) with
// alice on a rawSession asking for hold, as alice@localhost/web, and bob,
// online, on a Client.
func startRawPair(t *testing.T, hold int, configure func(*config.Config)) (*stack, *rawSession, *Client) {
	t.Helper()
	st := startStack(t, prosodyOptions{}, configure)
	alice := st.RawLogin("alice", "web", hold, "")
	bob, _ := st.Login("bob", "PLAIN", "web")
	goOnline(t, bob)
	return st, alice, bob
}

func TestSessionResendAndOutOfOrder(t *testing.T) {
	// XEP-0124 §14.2: out-of-order requests are forwarded in rid order.
	// XEP-0124 §14.3: a resent rid gets the identical body and its payload is not
	// forwarded again.
	parallel(t)
	_, alice, bob := startRawPair(t, 1, nil)

	n := alice.rid
	second := alice.send(n+2, "", message("bob@localhost/web", "b", "second"))
	alice.quiet(second, "rid N+2 ahead of N+1")
	first := alice.send(n+1, "", message("bob@localhost/web", "a", "first"))
	firstReply := alice.get(first)
	alice.rid = n + 2
	for _, want := range []string{"first", "second"} {
		m := bob.WaitFor("message "+want, isStanza("message"))
		if got := m.ChildText(nsClient, "body"); got != want {
			t.Fatalf("bob got %q, want %q", got, want)
		}
	}
	again := alice.get(alice.send(n+1, "", message("bob@localhost/web", "a", "first")))
	if again.raw != firstReply.raw {
		t.Fatalf("resent rid got\n%s\nwant\n%s", again.raw, firstReply.raw)
	}
	bob.Sync()
	bob.mu.Lock()
	defer bob.mu.Unlock()
	for _, e := range bob.queue {
		if e.Is(nsClient, "message") {
			t.Fatalf("bob got a message again after the resend: %s", e)
		}
	}
}

func TestSessionHoldTwo(t *testing.T) {
	// Issue 3.1: hold=2 honoured; data goes on the oldest held request.
	parallel(t)
	_, s2, bob := startRawPair(t, 2, func(cfg *config.Config) { cfg.MaxHold = 2 })
	older := s2.next("", "")
	newer := s2.next("", "")
	s2.quiet(older, "the older of two held requests")
	bob.Send(message("alice@localhost/web", "h", "to the oldest"))
	if got := bodies(s2.get(older)); len(got) != 1 || got[0] != "to the oldest" {
		t.Fatalf("older request got %q", got)
	}
	s2.quiet(newer, "the newer held request")
	third := s2.next("", "")
	s2.quiet(third, "a second held request")
	s2.next("", "")
	if r := s2.get(newer); len(r.body.Children) != 0 {
		t.Fatalf("released request got %s", r.raw)
	}
	s2.quiet(third, "the newer of two held requests")
}

func TestSessionPauseAndInactivity(t *testing.T) {
	// XEP-0124 §10: a pause answers held requests at once and the session
	// outlives its inactivity for the pause. XEP-0124 §10: afterwards,
	// inactivity ends it, closes the upstream stream (bob sees alice go
	// offline) and the sid is unknown.
	parallelQuiet(t)
	st := startStack(t, prosodyOptions{}, func(cfg *config.Config) {
		cfg.Inactivity = time.Second
		cfg.MaxPause = 10 * time.Second
	})
	bob, _ := st.Login("bob", "PLAIN", "web")
	goOnline(t, bob)
	// alice sends bob a directed presence so he sees her leave.
	alice := st.RawLogin("alice", "web", 1, "")
	held := alice.next("", "<presence xmlns='"+nsClient+"' to='bob@localhost'/>")
	bob.WaitFor("alice's presence", isStanza("presence", func(e *Element) bool { return strings.HasPrefix(e.Attr("from"), "alice@") }))
	pause := alice.next(" pause='3'", "")
	alice.get(held)
	alice.get(pause)
	// Time itself is what is tested here: the session must outlive its
	// inactivity (1 s) because of the pause (3 s). Nothing happens
	// meanwhile that a test could wait for.
	time.Sleep(2 * time.Second)
	if r := alice.get(alice.next("", "<iq xmlns='"+nsClient+"' type='get' id='p2'><ping xmlns='"+nsPing+"'/></iq>")); r.body.Attr("type") == "terminate" {
		t.Fatalf("paused session ended: %s", r.raw)
	}
	// Now idle beyond the normal inactivity.
	bob.WaitFor("alice going offline", isStanza("presence", attrIs("type", "unavailable")))
	r := alice.get(alice.next("", ""))
	if r.body.Attr("type") != "terminate" || r.body.Attr("condition") != "item-not-found" {
		t.Fatalf("after inactivity: %s", r.raw)
	}
}

func TestSessionAcksReport(t *testing.T) {
	// XEP-0124 §9.1, §9.2: with ack='1', an ack below the last answered rid
	// gets a report of the first missing response, which a resend then
	// gets byte for byte.
	parallel(t)
	st := startStack(t, prosodyOptions{}, nil)
	alice := st.RawLogin("alice", "web", 1, " ack='1'")
	n := alice.rid
	ping := func(id string) string {
		return "<iq xmlns='" + nsClient + "' type='get' id='" + id + "'><ping xmlns='" + nsPing + "'/></iq>"
	}
	lost := alice.get(alice.next(fmt.Sprintf(" ack='%d'", n), ping("x")))
	r := alice.get(alice.next(fmt.Sprintf(" ack='%d'", n), ping("y")))
	if r.body.Attr("report") != fmt.Sprint(n+1) || r.body.Attr("time") == "" {
		t.Fatalf("no report of rid %d: %s", n+1, r.raw)
	}
	if again := alice.get(alice.send(n+1, "", "")); again.raw != lost.raw {
		t.Fatalf("resent reported rid got\n%s\nwant\n%s", again.raw, lost.raw)
	}
}
