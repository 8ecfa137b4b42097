package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// wsTestConfig is testConfig for --transport websocket against url.
func wsTestConfig(t *testing.T, url string, args ...string) *config {
	t.Helper()
	cfg, err := parseFlags(append([]string{"--transport", "websocket", "--url", url, "--rate", "1000"}, args...), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestWSRunIdle opens unauthenticated and logged-in sessions that stay
// idle, then end each with <close/>, answered. The run's last tenth is
// for ending the sessions: 8 s leave 0.8 s, which a machine loaded by
// other tests once needed more than the 0.2 s of a 2 s run.
func TestWSRunIdle(t *testing.T) {
	t.Parallel()
	for _, login := range []bool{false, true} {
		t.Run(fmt.Sprintf("login=%v", login), func(t *testing.T) {
			t.Parallel()
			testWSRunIdle(t, login)
		})
	}
}

// testWSRunIdle is TestWSRunIdle with or without a login.
func testWSRunIdle(t *testing.T, login bool) {
	s := &fakeWSServer{requireSess: login}
	args := []string{"--sessions", "6", "--duration", "8s"}
	if login {
		args = append(args, "--login", "user%d:pw")
	}
	res := newRunner(wsTestConfig(t, newFakeWS(t, s), args...), io.Discard).run(context.Background(), io.Discard)
	if res.Established != 6 || res.Terminated != 6 || len(res.Failures) != 0 || res.Login != login {
		t.Errorf("login %v: established %d, terminated %d, failures %v", login, res.Established, res.Terminated, res.Examples)
	}
	if res.Transport != transportWebSocket || res.TerminateLatency == nil {
		t.Errorf("login %v: transport %q, terminate latency %v", login, res.Transport, res.TerminateLatency)
	}
	// One <open/> per session, and one more per login (the restart).
	want := int64(6)
	if login {
		want = 12
	}
	if n, c := s.opened.Load(), s.closed.Load(); n != want || c != 6 {
		t.Errorf("login %v: the server saw %d <open/> and %d <close/>, want %d and 6", login, n, c, want)
	}
}

// TestWSRunChat chats over the fake and checks that every message
// arrives once and in order, also when the server fragments each and
// pings in the middle of it.
func TestWSRunChat(t *testing.T) {
	t.Parallel()
	for _, fragment := range []bool{false, true} {
		s := &fakeWSServer{fragment: fragment}
		cfg := wsTestConfig(t, newFakeWS(t, s), "--sessions", "5", "--login", "user%d:pw", "--pairs", "2",
			"--rate-per-pair", "100", "--duration", "4s", "--drain", "1s", "--settle", "0s")
		res := newRunner(cfg, io.Discard).run(context.Background(), io.Discard)
		c := res.Chat
		if res.Established != 5 || res.Terminated != 5 || len(res.Failures) != 0 || c == nil {
			t.Fatalf("fragment %v: established %d, terminated %d, failures %v, chat %+v", fragment, res.Established, res.Terminated, res.Examples, c)
		}
		if c.Sent < 100 || c.Received != c.Sent || !c.ExactlyOnceOK || !c.InOrderOK || !c.AllDelivered || c.Malformed != 0 {
			t.Errorf("fragment %v: chat %+v", fragment, c)
		}
		if c.Latency == nil || c.LatencySamples != int(c.Received) {
			t.Errorf("fragment %v: latency %+v over %d samples", fragment, c.Latency, c.LatencySamples)
		}
		if fragment && s.pongs.Load() != c.Received {
			t.Errorf("%d pongs for %d pings", s.pongs.Load(), c.Received)
		}
	}
}

// TestWSRunNoTerminate leaves the sessions without <close/>: no failure,
// none terminated.
func TestWSRunNoTerminate(t *testing.T) {
	t.Parallel()
	s := &fakeWSServer{}
	cfg := wsTestConfig(t, newFakeWS(t, s), "--sessions", "3", "--duration", "1s", "--terminate=false")
	res := newRunner(cfg, io.Discard).run(context.Background(), io.Discard)
	if res.Established != 3 || res.Terminated != 0 || len(res.Failures) != 0 || s.closed.Load() != 0 {
		t.Errorf("established %d, terminated %d, failures %v, server saw %d <close/>", res.Established, res.Terminated, res.Examples, s.closed.Load())
	}
}

// TestWSSetupFailures checks that each way a setup fails is counted
// under its reason.
func TestWSSetupFailures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		server *fakeWSServer
		login  string
		want   string
	}{
		{"HTTP refusal", &fakeWSServer{status: http.StatusServiceUnavailable}, "", "create: http: 503"},
		{"no subprotocol", &fakeWSServer{noSubprotocol: true}, "", "create: protocol: no xmpp subprotocol"},
		{"stream error", &fakeWSServer{openError: "host-unknown"}, "", "create: stream-error: host-unknown"},
		{"wrong password", &fakeWSServer{}, "user%d:wrong", "login: sasl: not-authorized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := []string{"--sessions", "2", "--duration", "1s"}
			if tc.login != "" {
				args = append(args, "--login", tc.login)
			}
			res := newRunner(wsTestConfig(t, newFakeWS(t, tc.server), args...), io.Discard).run(context.Background(), io.Discard)
			if res.Established != 0 || res.SetupFailed != 2 || res.Failures[tc.want] != 2 {
				t.Errorf("established %d, failed %d, failures %v; want 2 %q", res.Established, res.SetupFailed, res.Failures, tc.want)
			}
		})
	}
}

// TestWSSetupInterrupted checks that the end of the load interrupts a
// setup waiting for an answer that never comes.
func TestWSSetupInterrupted(t *testing.T) {
	t.Parallel()
	ln := listenSilent(t)
	cfg := wsTestConfig(t, "ws://"+ln+"/xmpp-websocket", "--sessions", "1", "--duration", "1s")
	start := time.Now()
	res := newRunner(cfg, io.Discard).run(context.Background(), io.Discard)
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the run took %v, --duration 1s", took)
	}
	if res.Established != 0 || res.Unfinished != 1 {
		t.Errorf("established %d, unfinished %d; want 0, 1", res.Established, res.Unfinished)
	}
}
