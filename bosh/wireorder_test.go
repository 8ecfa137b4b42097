package bosh

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/boshd/boshd/config"
	"github.com/boshd/boshd/internal/xmpptest"
)

// TestAnswersWrittenInRIDOrder checks that boshd writes the answers of a
// session to the wire in rid order (XEP-0124 §8), as the browser tests
// (integration/browser_test.go, TestBrowserStropheExchange) found it must:
// Strophe.js handles responses in the order their XHRs complete, so an
// answer to rid N+1 written before the answer to N shows the client the
// stanzas of N+1 first. Deciding the answers in order is not enough, since
// each is written by the goroutine of its own HTTP request.
//
// The sequence, repeated: rid N (empty) is held; rid N+1 arrives carrying a
// message, so N is answered at once (hold=1) and N+1 held; the upstream
// answers the message at once, which answers N+1. The test records, at the
// server's sockets, when the first byte of each response is written, and
// fails if N+1's comes before N's. Several sessions run at once, as in a
// busy server, to give the scheduler the chance to reorder; before the fix
// this failed in every run.
func TestAnswersWrittenInRIDOrder(t *testing.T) {
	_, h := newHandler(t, xmpptest.NewServer(t, echo), func(cfg *config.Config) { cfg.MaxSessionsPerIP = 0 }, nil)
	wire := &writeOrder{}
	srv := httptest.NewUnstartedServer(h)
	ln := NewListener(&orderListener{Listener: srv.Listener, log: wire})
	srv.Listener = ln
	srv.Config.ConnContext = ln.ConnContext
	srv.Start()
	defer srv.Close()

	const sessions, rounds = 8, 600
	var wg sync.WaitGroup
	errs := make(chan error, sessions)
	for s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- pairs(srv.URL, 1000*(s+1), rounds)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if inv := wire.inversions(); len(inv) > 0 {
		t.Errorf("XEP-0124 §8: %d of %d answers were written before the answer to the rid below them, e.g.:\n%s",
			len(inv), sessions*rounds*2, strings.Join(inv[:min(len(inv), 10)], "\n"))
	}
}

// pairs creates a session with first rid rid0 and plays rounds of the
// held-N, N+1-with-a-message sequence, each client request on its own
// connection as a browser does.
func pairs(url string, rid0, rounds int) error {
	clients := []*http.Client{{Transport: &http.Transport{}}, {Transport: &http.Transport{}}}
	post := func(c *http.Client, body string) (string, error) {
		resp, err := c.Post(url, "text/xml; charset=utf-8", strings.NewReader(body))
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	resp, err := post(clients[0], sprintf(creationBody, rid0, 5))
	if err != nil {
		return err
	}
	sid := attrs(resp)["sid"]
	if sid == "" {
		return fmt.Errorf("no session: %s", resp)
	}
	rid := rid0
	for i := range rounds {
		held := make(chan error, 1)
		rid++
		go func(c *http.Client, rid int) {
			_, err := post(c, fmt.Sprintf("<body xmlns='http://jabber.org/protocol/httpbind' sid='%s' rid='%d'/>", sid, rid))
			held <- err
		}(clients[i%2], rid)
		rid++
		// N+1 may overtake N on the way in; boshd then waits for N
		// (XEP-0124 §14.2), and the sequence is the same.
		body := fmt.Sprintf("<body xmlns='http://jabber.org/protocol/httpbind' sid='%s' rid='%d'><message xmlns='jabber:client' id='m%d'/></body>", sid, rid, i)
		if _, err := post(clients[(i+1)%2], body); err != nil {
			return err
		}
		if err := <-held; err != nil {
			return err
		}
	}
	return nil
}

// echo is the Script of an upstream XMPP server that answers the stream
// header with empty features and every chunk it reads with one message.
func echo(p *xmpptest.Peer) error {
	if err := p.Open("s1", xmpptest.NoFeatures); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	for n := 0; ; n++ {
		if _, err := p.Reader().Read(buf); err != nil {
			return nil // the client or the test closed the stream
		}
		if err := p.Send(fmt.Sprintf("<message xmlns='jabber:client' id='echo%d'/>", n)); err != nil {
			return nil
		}
	}
}

// writeOrder records, per session, the rids whose responses were written,
// in the order their first bytes were.
type writeOrder struct {
	mu   sync.Mutex
	rids map[string][]int
}

func (w *writeOrder) add(sid string, rid int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.rids == nil {
		w.rids = make(map[string][]int)
	}
	w.rids[sid] = append(w.rids[sid], rid)
}

// inversions describes every response written after that of a higher rid
// of its session.
func (w *writeOrder) inversions() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for sid, rids := range w.rids {
		for i := 1; i < len(rids); i++ {
			if rids[i] < rids[i-1] {
				out = append(out, fmt.Sprintf("session %s: rid %d written after rid %d", sid, rids[i], rids[i-1]))
			}
		}
	}
	return out
}

type orderListener struct {
	net.Listener
	log *writeOrder
}

func (l *orderListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &orderConn{Conn: c, log: l.log}, nil
}

// orderConn notes the sid and rid of the request it last read and records
// the first write after it, the start of that request's response.
type orderConn struct {
	net.Conn
	log *writeOrder

	mu       sync.Mutex
	sid      string
	rid      int
	answered bool
}

var (
	orderRID = regexp.MustCompile(`rid='([0-9]+)'`)
	orderSID = regexp.MustCompile(`sid='([^']+)'`)
)

func (c *orderConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if m := orderRID.FindSubmatch(p[:n]); m != nil {
		c.mu.Lock()
		c.rid, _ = strconv.Atoi(string(m[1]))
		c.sid = ""
		if s := orderSID.FindSubmatch(p[:n]); s != nil {
			c.sid = string(s[1])
		}
		c.answered = false
		c.mu.Unlock()
	}
	return n, err
}

func (c *orderConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.sid != "" && !c.answered {
		c.answered = true
		c.log.add(c.sid, c.rid)
	}
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// SyscallConn exposes the socket under the recorder, so that requests on
// it are parked as they would be on a bare TCP connection.
func (c *orderConn) SyscallConn() (syscall.RawConn, error) {
	return c.Conn.(syscall.Conn).SyscallConn()
}
