package xmpp

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/boshd/boshd/internal/wait"
	"github.com/boshd/boshd/internal/xmpptest"
)

func TestIsSASLAuth(t *testing.T) {
	for _, tc := range []struct {
		el   string
		want bool
	}{
		{`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHB3</auth>`, true},
		{`<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="SCRAM-SHA-1">biwsbj1h</auth>`, true},
		{`<auth mechanism='ANONYMOUS' xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`, true},
		{"\n  <auth\txmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>x</auth>", true},
		{`<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>x</response>`, false},
		{`<authenticate xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`, false},
		{`<auth xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'>x</auth>`, false},
		{`<message xmlns='jabber:client'><body><auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/></body></message>`, false},
		{`<auth xmlns='jabber:iq:auth'><body>urn:ietf:params:xml:ns:xmpp-sasl</body></auth>`, false},
		{`<auth`, false},
		{``, false},
	} {
		if got := isSASLAuth([]byte(tc.el)); got != tc.want {
			t.Errorf("isSASLAuth(%q) = %v, want %v", tc.el, got, tc.want)
		}
	}
}

// countingGate is a LoginGate of a fixed number of places, which counts
// who waits and fails the test on a Leave without an Enter.
type countingGate struct {
	t       *testing.T
	places  chan struct{}
	waiting atomic.Int32
}

func newCountingGate(t *testing.T, n int) *countingGate {
	return &countingGate{t: t, places: make(chan struct{}, n)}
}

func (g *countingGate) Enter(ctx context.Context) bool {
	g.waiting.Add(1)
	defer g.waiting.Add(-1)
	select {
	case g.places <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (g *countingGate) Leave() {
	select {
	case <-g.places:
	default:
		g.t.Error("Leave without Enter")
	}
}

func (g *countingGate) held() int { return len(g.places) }

// authOf returns a client's PLAIN <auth/> marked with mark.
func authOf(mark string) []byte {
	return []byte(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` + mark + `</auth>`)
}

// gatedDial dials srv with gate as its Dialer's LoginGate and reads the
// features.
func gatedDial(t *testing.T, srv *xmpptest.Server, gate LoginGate) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := (&Dialer{TLSMode: "plaintext", Logins: gate}).Dial(ctx, Target{Domain: testDomain, Addr: srv.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// writeAsync writes p to c on a goroutine; the channel gets its result.
func writeAsync(c *Conn, p []byte) <-chan error {
	done := make(chan error, 1)
	go func() { done <- c.Write(p) }()
	return done
}

// nextIs reads c's next element and fails t unless it is want.
func nextIs(t *testing.T, c *Conn, want string) {
	t.Helper()
	el, err := c.Next()
	if err != nil || string(el) != want {
		t.Fatalf("Next = %q, %v; want %q", el, err, want)
	}
}

// TestLoginGate checks that a Conn holds a place at its LoginGate from
// the client's <auth/> to the server's answer, success or failure, that a
// second login waits meanwhile while other writes do not, and that the
// place passes on.
func TestLoginGate(t *testing.T) {
	t.Parallel()
	srv := xmpptest.NewRelay(t, featuresPlainAuth)
	gate := newCountingGate(t, 1)
	first := gatedDial(t, srv, gate)
	second := gatedDial(t, srv, gate)

	if err := first.Write(authOf("FIRST")); err != nil {
		t.Fatal(err)
	}
	if gate.held() != 1 {
		t.Fatalf("after the first <auth/>, %d places held, want 1", gate.held())
	}
	done := writeAsync(second, authOf("SECOND"))
	wait.Until(t, func() bool { return gate.waiting.Load() == 1 }, "the second <auth/> waiting at the gate")
	if err := second.Write([]byte(`<presence xmlns='jabber:client'/>`)); err != nil {
		t.Fatalf("a write that is no <auth/>: %v", err)
	}
	if srv.Received("SECOND") {
		t.Fatal("the second <auth/> reached the server while the first login held the only place")
	}

	success := `<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`
	srv.Peer(t, 0).Send(success)
	nextIs(t, first, success)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	srv.WaitGot(t, "SECOND")
	if gate.held() != 1 {
		t.Fatalf("the second login holds %d places, want 1", gate.held())
	}
	failure := `<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>`
	srv.Peer(t, 1).Send(failure)
	nextIs(t, second, failure)
	if gate.held() != 0 {
		t.Fatalf("after the failure, %d places held, want 0", gate.held())
	}
}

// TestLoginGateEnds checks that a place is given back when the stream
// ends instead of answering, and that Close and Drop end a wait for a
// place: the <auth/> is never written.
func TestLoginGateEnds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		end  func(*Conn)
	}{
		{"close", func(c *Conn) { c.Close() }},
		{"drop", (*Conn).Drop},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := xmpptest.NewRelay(t, featuresPlainAuth)
			gate := newCountingGate(t, 1)
			holder := gatedDial(t, srv, gate)
			waiter := gatedDial(t, srv, gate)
			if err := holder.Write(authOf("HOLDER")); err != nil {
				t.Fatal(err)
			}
			done := writeAsync(waiter, authOf("WAITER"))
			wait.Until(t, func() bool { return gate.waiting.Load() == 1 }, "the <auth/> waiting at the gate")
			tc.end(waiter)
			if err := <-done; !errors.Is(err, net.ErrClosed) {
				t.Errorf("the waiting Write returned %v, want net.ErrClosed", err)
			}
			if srv.Received("WAITER") {
				t.Error("the <auth/> of a stream ended while it waited reached the server")
			}
			// The server hangs up on the holder in the middle of its
			// login: its place is given back.
			srv.Peer(t, 0).Conn().Close()
			if _, err := holder.Next(); err == nil {
				t.Fatal("Next after the server hung up: no error")
			}
			if gate.held() != 0 {
				t.Errorf("%d places held after both streams ended, want 0", gate.held())
			}
		})
	}
}
