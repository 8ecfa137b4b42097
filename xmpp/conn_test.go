package xmpp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boshd/boshd/internal/rawxml"
	"github.com/boshd/boshd/internal/wait"
	"github.com/boshd/boshd/internal/xmpptest"
)

// TestNextStanzas checks that elements from the server come out with
// xmlns='jabber:client' added where missing and otherwise byte for byte.
func TestNextStanzas(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, sent, want string }{
		{
			name: "message without xmlns",
			sent: `<message from='bob@example.test/x' to='alice@example.test' type='chat' id='m1'><body>hi &amp; bye &#x1F600; Grüße</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`,
			want: `<message xmlns='jabber:client' from='bob@example.test/x' to='alice@example.test' type='chat' id='m1'><body>hi &amp; bye &#x1F600; Grüße</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`,
		},
		{
			name: "iq with its own xmlns kept as is",
			sent: `<iq xmlns="jabber:client" type="result" id="r1"><query xmlns="jabber:iq:roster" ver="3"><item jid="bob@example.test" subscription="both"/></query></iq>`,
			want: `<iq xmlns="jabber:client" type="result" id="r1"><query xmlns="jabber:iq:roster" ver="3"><item jid="bob@example.test" subscription="both"/></query></iq>`,
		},
		{
			name: "self-closing presence after whitespace keepalive",
			sent: "\n \n<presence from='bob@example.test/x'/>",
			want: `<presence xmlns='jabber:client' from='bob@example.test/x'/>`,
		},
		{
			name: "SASL challenge",
			sent: `<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>cj1meWtvK2QybGJiRmdPTlJ2OXFreGRhd0wzcmZjTkhZSlkxWlZ2V1ZzN2oscz1RU1hDUitRNnNlazhiZjkyLGk9NDA5Ng==</challenge>`,
			want: `<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>cj1meWtvK2QybGJiRmdPTlJ2OXFreGRhd0wzcmZjTkhZSlkxWlZ2V1ZzN2oscz1RU1hDUitRNnNlazhiZjkyLGk9NDA5Ng==</challenge>`,
		},
		{
			name: "CDATA and xml:lang kept",
			sent: `<message xml:lang='de'><body><![CDATA[<b>]]></body></message>`,
			want: `<message xmlns='jabber:client' xml:lang='de'><body><![CDATA[<b>]]></body></message>`,
		},
	}
	addr := serve(t, xmpptest.Opened("s1", featuresPlainAuth, func(p *xmpptest.Peer) error {
		for _, tc := range tests {
			if err := p.Send(tc.sent); err != nil {
				return err
			}
		}
		p.WaitQuit()
		return nil
	}))
	c := mustDial(t, new(Dialer), addr)
	for _, tc := range tests {
		b, err := c.Next()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if string(b) != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, b, tc.want)
		}
	}
}

// TestNextEnd checks how Next reports each way the server's stream ends.
func TestNextEnd(t *testing.T) {
	t.Parallel()
	conflict := `<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>Replaced by new connection</text></stream:error>`
	for _, tc := range []struct {
		name   string
		send   string // after the features; then the server closes the socket
		maxLen int
		check  func(t *testing.T, err error)
	}{
		{"stream end", `</stream:stream>`, 0, func(t *testing.T, err error) {
			if err != io.EOF {
				t.Errorf("error %v, want io.EOF", err)
			}
		}},
		{"stream error", conflict + `</stream:stream>`, 0, func(t *testing.T, err error) {
			var se *StreamError
			if !errors.As(err, &se) {
				t.Fatalf("error %v, want *StreamError", err)
			}
			want := `<stream:error xmlns:stream='http://etherx.jabber.org/streams'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>Replaced by new connection</text></stream:error>`
			if se.Condition != "conflict" || se.Text != "Replaced by new connection" || string(se.Raw) != want {
				t.Errorf("got %q %q %s", se.Condition, se.Text, se.Raw)
			}
		}},
		{"server vanishes between elements", ``, 0, func(t *testing.T, err error) {
			if err == nil || err == io.EOF {
				t.Errorf("error %v, want a connection error", err)
			}
		}},
		{"server vanishes mid-element", `<message><body>hi`, 0, func(t *testing.T, err error) {
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("error %v, want io.ErrUnexpectedEOF", err)
			}
		}},
		{"oversized element", `<message><body>` + strings.Repeat("x", 2000) + `</body></message>`, 1024, func(t *testing.T, err error) {
			if !errors.Is(err, rawxml.ErrLimit) {
				t.Errorf("error %v, want rawxml.ErrLimit", err)
			}
		}},
		{"malformed element", `<message></iq>`, 0, func(t *testing.T, err error) {
			if !errors.Is(err, rawxml.ErrMalformed) {
				t.Errorf("error %v, want rawxml.ErrMalformed", err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := serve(t, xmpptest.Opened("s1", featuresPlainAuth, func(p *xmpptest.Peer) error {
				if tc.send != "" {
					return p.Send(tc.send)
				}
				return nil
			}))
			c := mustDial(t, &Dialer{MaxStanzaSize: tc.maxLen}, addr)
			b, err := c.Next()
			if b != nil {
				t.Errorf("Next returned %s", b)
			}
			tc.check(t, err)
			if _, err2 := c.Next(); err2 != err {
				t.Errorf("second Next: %v, want the same error again", err2)
			}
		})
	}
}

// TestSASLRestart runs the sequence SASL success → Restart → new header →
// new features.
func TestSASLRestart(t *testing.T) {
	waiting := make(chan struct{})
	testHookRestartWait = func() { close(waiting) }
	defer func() { testHookRestartWait = nil }()

	headers := make(chan string, 1)
	addr := serve(t, xmpptest.Opened("s1", featuresPlainAuth, func(p *xmpptest.Peer) error {
		if err := p.Expect(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHNlY3JldA==</auth>`); err != nil {
			return err
		}
		if err := p.Send(`<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`); err != nil {
			return err
		}
		root, err := p.ReadHeader()
		if err != nil {
			return err
		}
		to, _ := root.Get("", "to")
		lang, _ := root.Get("http://www.w3.org/XML/1998/namespace", "lang")
		headers <- to + " " + lang
		if err := p.Send(serverHeader("s2") + featuresBind); err != nil {
			return err
		}
		if err := p.Expect(`<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`); err != nil {
			return err
		}
		if err := p.Send(`<iq type='result' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@example.test/r</jid></bind></iq>`); err != nil {
			return err
		}
		p.WaitQuit()
		return nil
	}))
	c := mustDial(t, new(Dialer), addr)
	if err := c.Restart(); err == nil {
		t.Error("Restart before SASL success succeeded")
	}
	if err := c.Write([]byte(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHNlY3JldA==</auth>`)); err != nil {
		t.Fatal(err)
	}
	b, err := c.Next()
	if want := `<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`; err != nil || string(b) != want {
		t.Fatalf("Next() = %s, %v; want %s", b, err, want)
	}

	next := goNext(c)
	select {
	case <-waiting:
	case r := <-next:
		t.Fatalf("Next returned %s, %v before Restart", r.b, r.err)
	case <-time.After(10 * time.Second):
		t.Fatal("Next did not start waiting for Restart")
	}
	select {
	case r := <-next:
		t.Fatalf("Next returned %s, %v before Restart", r.b, r.err)
	default:
	}
	if err := c.Restart(); err != nil {
		t.Fatal(err)
	}
	if got := <-headers; got != testDomain+" en" {
		t.Errorf("restart header to, lang = %s, want %s en", got, testDomain)
	}
	r := await(t, next)
	if r.err != nil || string(r.b) != wantFeaturesBind {
		t.Fatalf("Next after Restart = %s, %v; want %s", r.b, r.err, wantFeaturesBind)
	}
	if c.StreamID() != "s2" {
		t.Errorf("StreamID() = %q after restart, want s2", c.StreamID())
	}
	if err := c.Restart(); err == nil {
		t.Error("second Restart succeeded")
	}
	if err := c.Write([]byte(`<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`)); err != nil {
		t.Fatal(err)
	}
	b, err = c.Next()
	if want := `<iq xmlns='jabber:client' type='result' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@example.test/r</jid></bind></iq>`; err != nil || string(b) != want {
		t.Errorf("Next() = %s, %v; want %s", b, err, want)
	}
}

// TestCloseUnblocksRestartWait checks that Close ends a Next waiting for
// Restart with io.EOF.
func TestCloseUnblocksRestartWait(t *testing.T) {
	waiting := make(chan struct{})
	testHookRestartWait = func() { close(waiting) }
	defer func() { testHookRestartWait = nil }()
	addr := serve(t, xmpptest.Opened("s1", featuresPlainAuth, func(p *xmpptest.Peer) error {
		if err := p.Send(`<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`); err != nil {
			return err
		}
		p.WaitQuit()
		return nil
	}))
	c := mustDial(t, new(Dialer), addr)
	if _, err := c.Next(); err != nil {
		t.Fatal(err)
	}
	next := goNext(c)
	<-waiting
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if r := await(t, next); r.err != io.EOF {
		t.Errorf("Next after Close = %s, %v; want io.EOF", r.b, r.err)
	}
	if err := c.Restart(); err == nil {
		t.Error("Restart after Close succeeded")
	}
}

// TestClose checks that Close writes </stream:stream> and then closes the
// socket as soon as the server has ended its stream, or after the grace
// if it does not.
func TestClose(t *testing.T) {
	defer func(g time.Duration) { closeGrace = g }(closeGrace)
	closeGrace = 100 * time.Millisecond
	for _, tc := range []struct {
		name       string
		answer     bool // the server ends its stream too
		wantNext   func(error) bool
		longerThan time.Duration // the socket closes no sooner
	}{
		{"server answers", true, func(err error) bool { return err == io.EOF }, 0},
		{"server silent", false, func(err error) bool { return errors.Is(err, net.ErrClosed) }, 100 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			closedAfter := make(chan time.Duration, 1)
			start := make(chan time.Time, 1)
			addr := serve(t, xmpptest.Opened("s1", featuresPlainAuth, func(p *xmpptest.Peer) error {
				if _, err := p.Next(); err != rawxml.ErrRootEnd {
					return errors.New("client did not end its stream")
				}
				t0 := <-start
				if tc.answer {
					if err := p.Send(`</stream:stream>`); err != nil {
						return err
					}
				}
				// The client closes the socket: the read ends.
				if _, err := p.Reader().Read(make([]byte, 1)); err == nil {
					return errors.New("data after the closing tag")
				}
				closedAfter <- time.Since(t0)
				return nil
			}))
			c := mustDial(t, new(Dialer), addr)
			next := goNext(c)
			start <- time.Now()
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			if r := await(t, next); !tc.wantNext(r.err) {
				t.Errorf("Next after Close: %v", r.err)
			}
			if d := wait.Receive(t, closedAfter, "the socket to close"); d < tc.longerThan {
				t.Errorf("socket closed after %v, before the grace of %v", d, tc.longerThan)
			}
			if err := c.Write([]byte(`<presence/>`)); !errors.Is(err, net.ErrClosed) {
				t.Errorf("Write after Close: %v, want net.ErrClosed", err)
			}
		})
	}
}

// TestCloseConcurrent closes from several goroutines at once while Next is
// blocked; the server sees exactly one closing tag.
func TestCloseConcurrent(t *testing.T) {
	t.Parallel()
	rest := make(chan string, 1)
	addr := serve(t, xmpptest.Opened("s1", featuresPlainAuth, func(p *xmpptest.Peer) error {
		if _, err := p.Next(); err != rawxml.ErrRootEnd {
			return fmt.Errorf("client did not end its stream: %v", err)
		}
		if err := p.Send(`</stream:stream>`); err != nil {
			return err
		}
		b, err := io.ReadAll(p.Reader())
		rest <- string(b)
		return err
	}))
	c := mustDial(t, new(Dialer), addr)
	next := goNext(c)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { c.Close() })
	}
	wg.Wait()
	if r := await(t, next); r.err != io.EOF {
		t.Errorf("Next after Close: %v, want io.EOF", r.err)
	}
	if s := wait.Receive(t, rest, "the socket to close"); s != "" {
		t.Errorf("server read %q after the closing tag", s)
	}
}

// TestWriteTimeout checks that Write gives up against a server that never
// reads, and that the stream stays broken after.
func TestWriteTimeout(t *testing.T) {
	t.Parallel()
	addr := serve(t, xmpptest.Opened("s1", featuresPlainAuth, func(p *xmpptest.Peer) error {
		p.WaitQuit() // never read again
		return nil
	}))
	c := mustDial(t, &Dialer{WriteTimeout: 50 * time.Millisecond}, addr)
	chunk := []byte(`<message><body>` + strings.Repeat("x", 64<<10) + `</body></message>`)
	var err error
	for i := 0; i < 4096 && err == nil; i++ { // at most 256 MiB
		err = c.Write(chunk)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write error %v, want os.ErrDeadlineExceeded", err)
	}
	if err2 := c.Write([]byte(`<presence/>`)); err2 != err {
		t.Errorf("Write after a timeout: %v, want the first error again", err2)
	}
}

// TestWriteVectored checks that Write sends several slices in order and
// leaves the caller's slice alone, and that over TLS it sends them as one
// record rather than a record (and a write) each.
func TestWriteVectored(t *testing.T) {
	t.Parallel()
	for _, secure := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", secure), func(t *testing.T) {
			pki := certs(t)
			got := make(chan string, 3)
			ready := make(chan struct{})
			rec := &recordingConn{}
			addr := serve(t, func(p *xmpptest.Peer) error {
				if secure {
					if err := p.Open("s1", featuresTLS); err != nil {
						return err
					}
					rec.Conn = p.Conn()
					if err := p.AcceptTLSOver(rec, pki.server); err != nil {
						return err
					}
				}
				if err := p.Open("s2", featuresPlainAuth); err != nil {
					return err
				}
				rec.reset()
				close(ready)
				for range 3 {
					s, err := p.Next()
					if err != nil {
						return err
					}
					got <- s
				}
				return nil
			})
			c := mustDial(t, &Dialer{RootCAs: pki.roots}, addr)
			<-ready
			in := [][]byte{[]byte(`<presence/>`), []byte(`<message to='a@b'><body>1</body></message>`), []byte(`<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>`)}
			keep := make([][]byte, len(in))
			copy(keep, in)
			if err := c.Write(in...); err != nil {
				t.Fatal(err)
			}
			for i, want := range keep {
				if !bytes.Equal(in[i], want) {
					t.Errorf("Write changed the caller's slice %d to %q", i, in[i])
				}
				if s := wait.Receive(t, got, "the server to get the stanzas"); s != string(want) {
					t.Errorf("server got %s, want %s", s, want)
				}
			}
			if n := rec.records(); secure && n != 1 {
				t.Errorf("Write over TLS sent %d records, want 1", n)
			}
		})
	}
}

// recordingConn keeps what is read through it, to count the TLS records
// a client sent.
type recordingConn struct {
	net.Conn
	mu   sync.Mutex
	read []byte
}

func (r *recordingConn) Read(b []byte) (int, error) {
	n, err := r.Conn.Read(b)
	r.mu.Lock()
	r.read = append(r.read, b[:n]...)
	r.mu.Unlock()
	return n, err
}

func (r *recordingConn) reset() {
	r.mu.Lock()
	r.read = nil
	r.mu.Unlock()
}

// records returns the number of whole TLS records read since reset.
func (r *recordingConn) records() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for b := r.read; len(b) >= 5; n++ {
		size := 5 + (int(b[3])<<8 | int(b[4]))
		if size > len(b) {
			break
		}
		b = b[size:]
	}
	return n
}

// TestBufferedAndOnWait checks what a relay batching bursts relies on:
// Buffered is true while the next element's bytes are already read, and
// the OnWait function runs before every read that may wait for the
// server, also in the middle of an element, and never between elements
// that came together.
func TestBufferedAndOnWait(t *testing.T) {
	t.Parallel()
	burst, rest := make(chan struct{}), make(chan struct{})
	addr := serve(t, xmpptest.Opened("s1", featuresPlainAuth, func(p *xmpptest.Peer) error {
		<-burst
		if err := p.Send(`<a/><b/>`); err != nil {
			return err
		}
		<-rest
		if err := p.Send(`<c`); err != nil {
			return err
		}
		<-rest
		if err := p.Send(`/>`); err != nil {
			return err
		}
		p.WaitQuit()
		return nil
	}))
	c := mustDial(t, new(Dialer), addr)
	waits := 0
	c.OnWait(func() {
		waits++
		if waits >= 2 {
			rest <- struct{}{} // the server sends the next part only now
		}
	})
	close(burst)
	steps := []struct {
		want     string
		buffered bool
		waits    int // OnWait calls so far
	}{
		{`<a xmlns='jabber:client'/>`, true, 1},
		{`<b xmlns='jabber:client'/>`, false, 1},
		{`<c xmlns='jabber:client'/>`, false, 3},
	}
	for _, step := range steps {
		got, err := c.Next()
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != step.want || c.Buffered() != step.buffered || waits != step.waits {
			t.Fatalf("Next = %s, Buffered %v, %d waits; want %s, %v, %d", got, c.Buffered(), waits, step.want, step.buffered, step.waits)
		}
	}
}
