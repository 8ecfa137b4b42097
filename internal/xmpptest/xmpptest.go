package xmpptest

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/boshd/boshd/internal/rawxml"
	"github.com/boshd/boshd/internal/wait"
)

// Namespaces of the stream and of its first features.
const (
	NSClient   = "jabber:client"
	NSStream   = "http://etherx.jabber.org/streams"
	NSTLS      = "urn:ietf:params:xml:ns:xmpp-tls"
	NSSASL     = "urn:ietf:params:xml:ns:xmpp-sasl"
	NSBind     = "urn:ietf:params:xml:ns:xmpp-bind"
	NSStreams  = "urn:ietf:params:xml:ns:xmpp-streams"
	NSSession  = "urn:ietf:params:xml:ns:xmpp-session"
	StartTLS   = `<starttls xmlns='` + NSTLS + `'/>`
	Proceed    = `<proceed xmlns='` + NSTLS + `'/>`
	Success    = `<success xmlns='` + NSSASL + `'/>`
	StreamEnd  = `</stream:stream>`
	NoFeatures = `<stream:features/>`
)

// Header returns the stream header a server sends, with stream ID id and
// from the domain it serves.
func Header(id, from string) string {
	return `<?xml version='1.0'?><stream:stream xmlns='` + NSClient + `' xmlns:stream='` + NSStream + `' id='` + id + `' from='` + from + `' version='1.0'>`
}

// Failure returns a SASL <failure/> with condition cond.
func Failure(cond string) string {
	return `<failure xmlns='` + NSSASL + `'><` + cond + `/></failure>`
}

// StreamError returns a stream error with condition cond, and the end of
// the stream.
func StreamError(cond string) string {
	return `<stream:error><` + cond + ` xmlns='` + NSStreams + `'/></stream:error>` + StreamEnd
}

// A Script plays the server's side of one connection. An error it returns
// fails the test, unless it is the end of the connection (see Ended) when
// the test closed it.
type Script func(p *Peer) error

// Server is a fake XMPP server listening on a loopback port.
type Server struct {
	ln      net.Listener
	script  Script
	accepts atomic.Int32
	quit    chan struct{} // closed when the test ends
	ended   atomic.Bool   // the test has ended
	running atomic.Int32  // scripts that have not returned

	mu    sync.Mutex
	peers []*Peer
	got   bytes.Buffer // what Record read, from every connection
}

// Domain is the domain the Server's stream headers come from.
const Domain = "example.org"

// NewServer starts a Server that runs script on every connection it
// accepts, until the test ends.
func NewServer(t testing.TB, script Script) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{ln: ln, script: script, quit: make(chan struct{})}
	go s.serve(t)
	t.Cleanup(func() {
		s.ended.Store(true)
		close(s.quit)
		ln.Close()
		s.mu.Lock()
		for _, p := range s.peers {
			p.Conn().Close()
		}
		s.mu.Unlock()
		if !wait.For(wait.Deadline, func() bool { return s.running.Load() == 0 }) {
			t.Error("xmpptest: a server script did not return after its connection closed")
		}
	})
	return s
}

// NewRelay starts a Server running Relay(features).
func NewRelay(t testing.TB, features string) *Server {
	return NewServer(t, Relay(features))
}

// Opened returns a Script that opens the stream (Peer.Open with id and
// features) and then runs then.
func Opened(id, features string, then Script) Script {
	return func(p *Peer) error {
		if err := p.Open(id, features); err != nil {
			return err
		}
		return then(p)
	}
}

// Relay returns the Script of a server that answers the client's header
// with a header (stream ID s1) and features, then records all the client
// sends. It sends what the test pushes. A client that goes away at any
// point is no error.
func Relay(features string) Script {
	open := Opened("s1", features, (*Peer).Record)
	return func(p *Peer) error {
		if err := open(p); !Ended(err) {
			return err
		}
		return nil
	}
}

// Close stops the Server listening, as a server that went down does:
// connections are refused from then on, and those accepted go on.
func (s *Server) Close() { s.ln.Close() }

// Addr returns the host:port the Server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Accepts returns how many connections the Server has accepted.
func (s *Server) Accepts() int { return int(s.accepts.Load()) }

// Peer returns the connection accepted i-th, from 0; a negative i counts
// from the latest, -1 being the latest. It fails t if there is none.
func (s *Server) Peer(t testing.TB, i int) *Peer {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if i < 0 {
		i += len(s.peers)
	}
	if i < 0 || i >= len(s.peers) {
		t.Fatalf("xmpptest: no connection %d of %d", i, len(s.peers))
	}
	return s.peers[i]
}

// Push sends data to the latest connection, failing t if it cannot.
func (s *Server) Push(t testing.TB, data string) {
	t.Helper()
	if err := s.Peer(t, -1).Send(data); err != nil {
		t.Fatal(err)
	}
}

// Got returns what the Server has recorded.
func (s *Server) Got() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got.String()
}

// Received reports whether the Server has recorded want.
func (s *Server) Received(want string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Contains(s.got.Bytes(), []byte(want))
}

// WaitGot waits until the Server has recorded want, failing t if it has
// not within wait.Deadline.
func (s *Server) WaitGot(t testing.TB, want string) {
	t.Helper()
	if !wait.For(wait.Deadline, func() bool { return s.Received(want) }) {
		t.Fatalf("xmpptest: server got %q, want %q in it", s.Got(), want)
	}
}

func (s *Server) serve(t testing.TB) {
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.accepts.Add(1)
		p := &Peer{srv: s, nc: nc, br: bufio.NewReaderSize(nc, 512)}
		s.mu.Lock()
		s.peers = append(s.peers, p)
		s.running.Add(1)
		if s.ended.Load() {
			nc.Close() // accepted as the test ended, after the others were closed
		}
		s.mu.Unlock()
		go func() {
			defer s.running.Add(-1)
			err := s.script(p)
			p.Conn().Close()
			if err != nil && !(s.ended.Load() && Ended(err)) {
				t.Errorf("xmpptest: server script: %v", err)
			}
		}()
	}
}

// Ended reports whether err means that the connection ended: the client
// closed it, or the test did.
func Ended(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// Peer is the server's side of one connection.
type Peer struct {
	srv *Server
	br  *bufio.Reader // reads nc
	rd  *rawxml.Reader

	mu sync.Mutex
	nc net.Conn // TLS once AcceptTLS has run
}

// Conn returns the connection, over TLS once AcceptTLS has run.
func (p *Peer) Conn() net.Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.nc
}

// Reader returns the buffered reader of the connection that ReadHeader
// and Next read from, for a Script reading bytes of its own.
func (p *Peer) Reader() *bufio.Reader { return p.br }

// ReadHeader reads the client's stream header, starting a new stream.
func (p *Peer) ReadHeader() (rawxml.Root, error) {
	p.rd = rawxml.NewReader(p.br, rawxml.Options{})
	return p.rd.Root()
}

// Next reads the client's next element and returns its bytes.
func (p *Peer) Next() (string, error) {
	el, err := p.rd.Next()
	return string(el.Raw), err
}

// Expect reads the client's next element and checks it is want.
func (p *Peer) Expect(want string) error {
	got, err := p.Next()
	if err != nil {
		return fmt.Errorf("waiting for %s: %w", want, err)
	}
	if got != want {
		return fmt.Errorf("got %s, want %s", got, want)
	}
	return nil
}

// Send writes s to the client. Sends from several goroutines do not
// interleave (net.Conn and tls.Conn write each call whole).
func (p *Peer) Send(s string) error {
	_, err := io.WriteString(p.Conn(), s)
	return err
}

// Open reads the client's header and answers with a header of stream ID
// id and features.
func (p *Peer) Open(id, features string) error {
	if _, err := p.ReadHeader(); err != nil {
		return fmt.Errorf("reading the client's header: %w", err)
	}
	return p.Send(Header(id, Domain) + features)
}

// AcceptTLS answers the client's <starttls/> with <proceed/> and runs the
// server's side of the TLS handshake with cfg.
func (p *Peer) AcceptTLS(cfg *tls.Config) error {
	return p.AcceptTLSOver(p.Conn(), cfg)
}

// AcceptTLSOver is AcceptTLS with the handshake over nc, a connection
// that carries p's own (a wrapper of Conn, say, to watch the records).
func (p *Peer) AcceptTLSOver(nc net.Conn, cfg *tls.Config) error {
	if err := p.Expect(StartTLS); err != nil {
		return err
	}
	if err := p.Send(Proceed); err != nil {
		return err
	}
	tc := tls.Server(nc, cfg)
	if err := tc.Handshake(); err != nil {
		return err
	}
	p.mu.Lock()
	p.nc = tc
	p.mu.Unlock()
	p.br.Reset(tc)
	return nil
}

// Record adds all the client sends from now on to what the Server has
// received, until the connection ends, which it returns as nil.
func (p *Peer) Record() error {
	buf := make([]byte, 4096)
	for {
		n, err := p.br.Read(buf)
		p.srv.mu.Lock()
		p.srv.got.Write(buf[:n])
		p.srv.mu.Unlock()
		if Ended(err) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// WaitQuit blocks until the test ends.
func (p *Peer) WaitQuit() { <-p.srv.quit }

// PlainUser returns the authentication identity of a SASL PLAIN <auth/>
// element, "" if it has none.
func PlainUser(auth string) string {
	parts := strings.Split(plainMessage(auth), "\x00")
	if len(parts) != 3 || parts[1] == "" {
		return ""
	}
	return parts[1]
}

// plainMessage returns the decoded content of a SASL PLAIN <auth/>
// element (authzid NUL authcid NUL password), "" if it has none.
func plainMessage(auth string) string {
	start := strings.IndexByte(auth, '>')
	end := strings.LastIndex(auth, "</")
	if start < 0 || end < start {
		return ""
	}
	data, err := base64.StdEncoding.DecodeString(strings.TrimSpace(auth[start+1 : end]))
	if err != nil {
		return ""
	}
	return string(data)
}
