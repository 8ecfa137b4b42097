package main

import (
	"context"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// chatManager is a BOSH connection manager and XMPP server in one, for
// testing boshload's chat over BOSH: it logs users in (the JID bound is
// user@localhost/boshload), takes each session's requests in rid order,
// holds one request at most (a newer one answers the held one, as
// hold='1' asks), and relays each <message/> to the session bound to its
// to, stamping from. failAt, when set, makes the first session's
// failAt-th request that carries messages fail once: the session is
// ended with remote-connection-failed and its messages are dropped.
type chatManager struct {
	hold   time.Duration
	failAt int

	mu       sync.Mutex
	cond     *sync.Cond // signalled when a session's next rid changes
	sessions map[string]*chatSession
	byJID    map[string]*chatSession
	created  int
	failed   bool
	carried  int // requests with messages of session s1
}

// chatSession is one session of a chatManager; its fields are guarded
// by the manager's mu.
type chatSession struct {
	sid   string
	jid   string
	next  uint64      // the rid taken next
	queue []string    // messages for the client, not yet answered
	held  *heldAnswer // the request held, if any
}

// heldAnswer is a held request: answer is filled and release closed
// when something answers it.
type heldAnswer struct {
	release chan struct{}
	answer  []string
}

func newChatManager(t *testing.T, hold time.Duration, failAt int) *httptest.Server {
	m := &chatManager{hold: hold, failAt: failAt, sessions: make(map[string]*chatSession), byJID: make(map[string]*chatSession)}
	m.cond = sync.NewCond(&m.mu)
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)
	return srv
}

// releaseLocked answers s's held request with what is queued.
func (s *chatSession) releaseLocked() {
	if s.held != nil {
		s.held.answer, s.queue = s.queue, nil
		close(s.held.release)
		s.held = nil
	}
}

func (m *chatManager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	var req element
	if err := xml.Unmarshal(data, &req); err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	var rid uint64
	fmt.Sscan(req.attr("rid"), &rid)
	write := func(attrs string, payload ...string) {
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		fmt.Fprintf(w, "<body xmlns='%s' xmlns:stream='%s'%s>%s</body>", nsHTTPBind, nsStream, attrs, strings.Join(payload, ""))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	sid := req.attr("sid")
	if sid == "" {
		m.created++
		s := &chatSession{sid: fmt.Sprintf("s%d", m.created), next: rid + 1}
		m.sessions[s.sid] = s
		write(fmt.Sprintf(" sid='%s' wait='60' hold='1' requests='2'", s.sid),
			"<stream:features><mechanisms xmlns='"+nsSASL+"'><mechanism>PLAIN</mechanism></mechanisms></stream:features>")
		return
	}
	s := m.sessions[sid]
	for s != nil && s.next != rid && s.next < rid {
		m.cond.Wait() // an earlier rid still on its way
		s = m.sessions[sid]
	}
	if s == nil || s.next != rid {
		write(" type='terminate' condition='item-not-found'")
		return
	}
	s.next++
	m.cond.Broadcast()
	switch {
	case req.attr("type") == "terminate":
		s.releaseLocked()
		m.endLocked(s)
		write(" type='terminate'")
		return
	case req.child(nsSASL, "auth") != nil:
		token, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(req.child(nsSASL, "auth").Text))
		parts := strings.Split(string(token), "\x00")
		s.jid = parts[len(parts)-2] + "@localhost/boshload"
		write("", "<success xmlns='"+nsSASL+"'/>")
		return
	case len(req.Children) == 0 && strings.Contains(string(data), "restart='true'"):
		write("", "<stream:features><bind xmlns='"+nsBind+"'/></stream:features>")
		return
	case req.child(nsClient, "iq") != nil:
		m.byJID[s.jid] = s
		write("", fmt.Sprintf("<iq xmlns='%s' type='result' id='%s'><bind xmlns='%s'><jid>%s</jid></bind></iq>",
			nsClient, req.child(nsClient, "iq").attr("id"), nsBind, s.jid))
		return
	}
	var msgs []*element
	for i := range req.Children {
		if req.Children[i].is(nsClient, "message") {
			msgs = append(msgs, &req.Children[i])
		}
	}
	if len(msgs) > 0 && s.sid == "s1" {
		m.carried++
		if m.carried == m.failAt && !m.failed {
			m.failed = true
			s.releaseLocked()
			m.endLocked(s)
			write(" type='terminate' condition='remote-connection-failed'")
			return
		}
	}
	for _, e := range msgs {
		if to := m.byJID[e.attr("to")]; to != nil {
			body := e.child(nsClient, "body").Text
			to.queue = append(to.queue, fmt.Sprintf("<message xmlns='%s' from='%s' to='%s' type='chat'><body>%s</body></message>", nsClient, s.jid, to.jid, body))
			to.releaseLocked()
		}
	}
	s.releaseLocked() // a newer request answers the one held
	h := &heldAnswer{release: make(chan struct{})}
	if len(s.queue) > 0 {
		h.answer, s.queue = s.queue, nil
		close(h.release)
	} else {
		s.held = h
	}
	m.mu.Unlock()
	select {
	case <-h.release:
	case <-time.After(m.hold):
	case <-r.Context().Done():
	}
	m.mu.Lock()
	if s.held == h {
		s.held = nil
	}
	write("", h.answer...)
}

// endLocked forgets s.
func (m *chatManager) endLocked(s *chatSession) {
	delete(m.sessions, s.sid)
	if m.byJID[s.jid] == s {
		delete(m.byJID, s.jid)
	}
	m.cond.Broadcast()
}

// TestRunChatRelogin runs BOSH chat against chatManager: without a
// failure every message arrives once and in order, the timeline counts
// each and the ready file is written; with one session ended by the
// manager mid-chat (--relogin 2), the terminate is counted, the session
// logs in again and chats on, and the messages lost with it show as a
// gap.
func TestRunChatRelogin(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		failAt int
	}{{"clean", 0}, {"one failure", 5}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newChatManager(t, 300*time.Millisecond, tc.failAt)
			ready := filepath.Join(t.TempDir(), "ready")
			cfg := testConfig(t, srv.URL, "--sessions", "4", "--login", "user%d:pw", "--pairs", "2",
				"--rate-per-pair", "40", "--duration", "5s", "--drain", "1s", "--settle", "0s",
				"--relogin", "2", "--ready-file", ready)
			res := newRunner(cfg, io.Discard).run(context.Background(), io.Discard)
			c := res.Chat
			if c == nil || res.Established != 4 || res.Terminated != 4 || res.Dropped != 0 {
				t.Fatalf("established %d, terminated %d, dropped %d, failures %v, chat %+v", res.Established, res.Terminated, res.Dropped, res.Examples, c)
			}
			if data, err := os.ReadFile(ready); err != nil || !strings.Contains(string(data), fmt.Sprintf("start_unix_ms %d", c.StartUnixMS)) {
				t.Errorf("ready file: %q, %v; want the start at %d", data, err, c.StartUnixMS)
			}
			var inTimeline int64
			for _, p := range c.Timeline {
				inTimeline += p.Received
				if p.Received > 0 && (p.MaxMS <= 0 || p.MaxMS > c.Latency.Max) {
					t.Errorf("second %d: max %.2f ms, the run's max %.2f ms", p.Second, p.MaxMS, c.Latency.Max)
				}
			}
			if inTimeline != c.Received {
				t.Errorf("the timeline counts %d messages, %d received", inTimeline, c.Received)
			}
			if c.Sent < 100 {
				t.Errorf("%d messages sent, want at least 100", c.Sent)
			}
			if tc.failAt == 0 {
				if !c.ExactlyOnceOK || !c.InOrderOK || !c.AllDelivered || len(res.Failures) != 0 || res.Relogins != 0 || res.Terminates != 0 {
					t.Errorf("failures %v, relogins %d, terminates %d, chat %+v", res.Failures, res.Relogins, res.Terminates, c)
				}
				return
			}
			if res.Relogins != 1 || res.Terminates != 1 || res.Failures["idle: terminate: remote-connection-failed"] != 1 {
				t.Errorf("relogins %d, terminates %d, failures %v; want one each", res.Relogins, res.Terminates, res.Failures)
			}
			// What session 1 sent in the failed request is lost; what
			// it sent after logging in again arrives after the gap.
			if c.Gaps < 1 || c.ExactlyOnceOK || c.Duplicates != 0 || c.Missing < 1 {
				t.Errorf("the loss is not seen: chat %+v", c)
			}
		})
	}
}
