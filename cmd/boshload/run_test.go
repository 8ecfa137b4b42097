package main

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeManager is a minimal BOSH connection manager for testing boshload:
// it creates sessions, answers SASL PLAIN, the restart and bind, holds
// empty requests for hold, and ends sessions on type='terminate'. It
// checks rids are consecutive per session.
type fakeManager struct {
	hold   time.Duration
	refuse int64 // refuse creations after this many with policy-violation; 0: never

	created, terminated atomic.Int64

	mu   sync.Mutex
	next map[string]uint64 // sid → the rid expected next
	errs []string
}

func (m *fakeManager) fail(format string, args ...any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.errs = append(m.errs, fmt.Sprintf(format, args...))
}

func (m *fakeManager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	var req element
	if err := xml.Unmarshal(data, &req); err != nil || !req.is(nsHTTPBind, "body") {
		m.fail("bad request %q: %v", data, err)
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	var rid uint64
	fmt.Sscan(req.attr("rid"), &rid)
	write := func(attrs, payload string) {
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		fmt.Fprintf(w, "<body xmlns='%s' xmlns:stream='%s'%s>%s</body>", nsHTTPBind, nsStream, attrs, payload)
	}
	sid := req.attr("sid")
	if sid == "" {
		n := m.created.Add(1)
		if m.refuse > 0 && n > m.refuse {
			write(" type='terminate' condition='policy-violation'", "")
			return
		}
		sid = fmt.Sprintf("s%d", n)
		m.mu.Lock()
		m.next[sid] = rid + 1
		m.mu.Unlock()
		write(fmt.Sprintf(" sid='%s' wait='60' hold='1' requests='2'", sid),
			"<stream:features><mechanisms xmlns='"+nsSASL+"'><mechanism>PLAIN</mechanism></mechanisms></stream:features>")
		return
	}
	m.mu.Lock()
	want, ok := m.next[sid]
	m.next[sid] = rid + 1
	m.mu.Unlock()
	if !ok {
		write(" type='terminate' condition='item-not-found'", "")
		return
	}
	if rid != want {
		m.fail("session %s: rid %d, want %d", sid, rid, want)
	}
	switch {
	case req.attr("type") == "terminate":
		m.terminated.Add(1)
		write(" type='terminate'", "")
	case req.child(nsSASL, "auth") != nil:
		write("", "<success xmlns='"+nsSASL+"'/>")
	case len(req.Children) == 0 && strings.Contains(string(data), "restart='true'"):
		write("", "<stream:features><bind xmlns='"+nsBind+"'/></stream:features>")
	case req.child(nsClient, "iq") != nil:
		iq := req.child(nsClient, "iq")
		if iq.child(nsBind, "bind") != nil {
			write("", fmt.Sprintf("<iq xmlns='%s' type='result' id='%s'><bind xmlns='%s'><jid>u@localhost/%s</jid></bind></iq>",
				nsClient, iq.attr("id"), nsBind, sid))
			return
		}
		write("", fmt.Sprintf("<iq xmlns='%s' type='result' id='%s'/>", nsClient, iq.attr("id")))
	default:
		select {
		case <-r.Context().Done():
			return
		case <-time.After(m.hold):
		}
		write("", "")
	}
}

func newFake(t *testing.T, hold time.Duration) (*fakeManager, *httptest.Server) {
	m := &fakeManager{hold: hold, next: make(map[string]uint64)}
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, e := range m.errs {
			t.Error(e)
		}
	})
	return m, srv
}

func testConfig(t *testing.T, url string, args ...string) *config {
	t.Helper()
	cfg, err := parseFlags(append([]string{"--url", url + "/http-bind", "--rate", "1000"}, args...), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestRunIdle(t *testing.T) {
	m, srv := newFake(t, 200*time.Millisecond)
	cfg := testConfig(t, srv.URL, "--sessions", "20", "--duration", "2s", "--wait", "1")
	res := newRunner(cfg, io.Discard).run(context.Background(), io.Discard)
	if res.Established != 20 || res.SetupFailed != 0 || len(res.Failures) != 0 {
		t.Errorf("results: %+v", res)
	}
	if res.IdleResponses < 20 {
		t.Errorf("%d idle responses, want at least one per session", res.IdleResponses)
	}
	if got := m.terminated.Load(); got != 20 || res.Terminated != 20 {
		t.Errorf("terminated: manager saw %d, boshload counted %d; want 20", got, res.Terminated)
	}
	if res.RunSeconds > 3 {
		t.Errorf("run took %.1f s, want about 2", res.RunSeconds)
	}
}

func TestRunLogin(t *testing.T) {
	// The run lasts --duration whatever happens, and a login must be done
	// within it: 4 s leaves room for a loaded machine under -race.
	_, srv := newFake(t, 100*time.Millisecond)
	cfg := testConfig(t, srv.URL, "--sessions", "5", "--duration", "4s", "--wait", "1", "--login", "user%d:pw")
	res := newRunner(cfg, io.Discard).run(context.Background(), io.Discard)
	if res.Established != 5 || len(res.Failures) != 0 || !res.Login {
		t.Errorf("results: %+v", res)
	}
}

func TestRunRefusedAndMemory(t *testing.T) {
	m, srv := newFake(t, 5*time.Second)
	m.refuse = 3
	cfg := testConfig(t, srv.URL, "--sessions", "5", "--duration", "6s", "--wait", "5",
		"--pid", fmt.Sprint(selfPID()), "--settle", "0s", "--exit-after-sample")
	res := newRunner(cfg, io.Discard).run(context.Background(), io.Discard)
	if res.Established != 3 || res.SetupFailed != 2 {
		t.Errorf("established %d, failed %d; want 3, 2", res.Established, res.SetupFailed)
	}
	if n := res.Failures["create: terminate: policy-violation"]; n != 2 {
		t.Errorf("failures = %v, want 2 policy-violation", res.Failures)
	}
	if res.Memory == nil || res.Memory.After == nil {
		t.Fatalf("memory not sampled: %+v (errors %v)", res.Memory, res.Errors)
	}
	if res.Memory.LiveAtSample != 3 || res.Memory.HeldAtSample != 3 {
		t.Errorf("at sample: %d live, %d held; want 3, 3", res.Memory.LiveAtSample, res.Memory.HeldAtSample)
	}
	// --exit-after-sample ends the run well before --duration.
	if res.RunSeconds > 5 {
		t.Errorf("run took %.1f s, want less than --duration", res.RunSeconds)
	}
}

func TestLoopbackOnly(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var d net.Dialer
	conn, err := loopbackOnly(d.DialContext)(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dialling %s: %v", ln.Addr(), err)
	}
	conn.Close()

	// A peer that is not a loopback TCP address is refused and closed.
	var closed atomic.Bool
	notLoopback := func(context.Context, string, string) (net.Conn, error) {
		a, b := net.Pipe()
		b.Close()
		return &closeSpy{Conn: a, closed: &closed}, nil
	}
	if _, err := loopbackOnly(notLoopback)(context.Background(), "tcp", "x:1"); err == nil {
		t.Error("a non-loopback peer was accepted")
	}
	if !closed.Load() {
		t.Error("the refused connection was not closed")
	}
}

// closeSpy records that Close was called.
type closeSpy struct {
	net.Conn
	closed *atomic.Bool
}

func (c *closeSpy) Close() error {
	c.closed.Store(true)
	return c.Conn.Close()
}

// TestPostRecordsArrival checks that a response carries the time its
// first byte was read: after the request was sent and before post
// returned, and no earlier than the manager's hold.
func TestPostRecordsArrival(t *testing.T) {
	const hold = 50 * time.Millisecond
	_, srv := newFake(t, hold)
	cfg := testConfig(t, srv.URL)
	c := newClient(cfg, 1, (&net.Dialer{}).DialContext)
	defer c.close()
	if _, err := c.create(context.Background()); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	r, err := c.post(context.Background(), phaseIdle, sessionBody(c.nextRID(), c.sid, ""))
	after := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	if r.arrived.Before(before.Add(hold)) || r.arrived.After(after) {
		t.Errorf("arrived %v after the request, %v before post returned; want within [%v, %v]",
			r.arrived.Sub(before), after.Sub(r.arrived), hold, after.Sub(before))
	}
}
