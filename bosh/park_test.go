package bosh

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/boshd/boshd/config"
	"github.com/boshd/boshd/internal/testcert"
	"github.com/boshd/boshd/internal/wait"
)

// newParkEnv returns a testEnv whose Handler parks every held request at
// once, whatever -park-after says.
func newParkEnv(t *testing.T, mutate func(*config.Config)) *testEnv {
	t.Helper()
	return newEnv(t, func(cfg *config.Config) {
		cfg.ParkHeld, cfg.ParkAfter = true, 0
		if mutate != nil {
			mutate(cfg)
		}
	})
}

// parkOne dials env, creates a session whose first rid is rid, and sends
// rid+1 as an empty request, returning once it is parked.
func parkOne(t *testing.T, env *testEnv, rid int) (c *rawClient, sid string) {
	t.Helper()
	c = dialRaw(t, env.hs.URL)
	sid = c.create(rid, 60)
	c.send(emptyBody(sid, rid+1))
	waitParked(t, env.h, 1)
	return c, sid
}

// rawClient speaks HTTP/1.1 on one connection, so that tests see which
// connection answers.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
	host string
}

func dialRaw(t *testing.T, url string) *rawClient {
	t.Helper()
	host := strings.TrimPrefix(url, "http://")
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawClient{t: t, conn: conn, br: bufio.NewReader(conn), host: host}
}

// send writes one POST of body, with extra header lines.
func (c *rawClient) send(body string, header ...string) {
	c.t.Helper()
	req := fmt.Sprintf("POST /http-bind HTTP/1.1\r\nHost: %s\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n", c.host, len(body))
	for _, h := range header {
		req += h + "\r\n"
	}
	if _, err := io.WriteString(c.conn, req+"\r\n"+body); err != nil {
		c.t.Fatal(err)
	}
}

// receive reads one response.
func (c *rawClient) receive() (*http.Response, string) {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp, string(data)
}

func (c *rawClient) create(rid, wait int) string {
	c.t.Helper()
	c.send(sprintf(creationBody, rid, wait))
	_, body := c.receive()
	sid := attrs(body)["sid"]
	if sid == "" {
		c.t.Fatalf("no sid in %s", body)
	}
	return sid
}

func TestParkedRequestAnswered(t *testing.T) {
	t.Parallel()
	env := newParkEnv(t, nil)
	c, sid := parkOne(t, env, 100)
	if held := env.h.sessions.Stats().Held; held != 1 {
		t.Fatalf("%d requests held, want 1", held)
	}
	msg := "<message from='a@example.org' to='b@example.org'><body>parked</body></message>"
	env.up.Push(t, msg)
	resp, body := c.receive()
	if resp.StatusCode != 200 || !strings.Contains(body, "<body>parked</body></message></body>") {
		t.Fatalf("parked request answered %d %s, want 200 with %s", resp.StatusCode, body, msg)
	}
	for name, want := range map[string]string{
		"Content-Type":   "text/xml; charset=utf-8",
		"Content-Length": fmt.Sprint(len(body)),
		"Cache-Control":  "no-store",
	} {
		if got := resp.Header.Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	if resp.Header.Get("Date") == "" || resp.Close {
		t.Errorf("Date %q, close %v: want a date and keep-alive", resp.Header.Get("Date"), resp.Close)
	}
	waitParked(t, env.h, 0)

	// The connection went back to the server: the next request on it
	// is served, held and parked again.
	c.send(emptyBody(sid, 102))
	waitParked(t, env.h, 1)
	other := dialRaw(t, env.hs.URL)
	other.send(fmt.Sprintf("<body xmlns='http://jabber.org/protocol/httpbind' sid='%s' rid='103' type='terminate'/>", sid))
	if _, body := c.receive(); attrs(body)["type"] != "" {
		t.Fatalf("held rid 102 answered %s, want an empty body", body)
	}
	if _, body := other.receive(); attrs(body)["type"] != "terminate" {
		t.Fatalf("terminate answered %s", body)
	}
	waitParked(t, env.h, 0)
}

func TestParkedClientGoesAway(t *testing.T) {
	t.Parallel()
	// XEP-0124 §14.3: a client that closes its connection while its request
	// is parked is noticed at once; its rid's answer is still cached.
	env := newParkEnv(t, nil)
	c, sid := parkOne(t, env, 200)
	c.conn.Close()
	waitParked(t, env.h, 0)
	waitHeld(t, env.h, 0)

	c = dialRaw(t, env.hs.URL)
	c.send(emptyBody(sid, 201)) // resent: answered from the cache
	if resp, body := c.receive(); resp.StatusCode != 200 || attrs(body)["type"] != "" {
		t.Fatalf("resent rid 201 answered %d %s", resp.StatusCode, body)
	}
	c.send(emptyBody(sid, 202))
	waitParked(t, env.h, 1)
	env.up.Push(t, "<message><body>after</body></message>")
	if _, body := c.receive(); !strings.Contains(body, "after") {
		t.Fatalf("rid 202 answered %s", body)
	}
}

func TestParkedResponseMatchesNetHTTP(t *testing.T) {
	t.Parallel()
	// A parked request's response, written by hand, has the headers and
	// body net/http gives the same response (XEP-0124 §5,
	// docs/CONFORMANCE.md#cors), Date aside.
	stanza := "<message to='b@example.org'><body>" + strings.Repeat("compressible ", 60) + "</body></message>"
	answer := func(park bool) (*http.Response, string) {
		env := newParkEnv(t, func(cfg *config.Config) {
			cfg.ParkHeld = park
			cfg.CORSOrigins = []string{"https://chat.example.org"}
		})
		c := dialRaw(t, env.hs.URL)
		sid := c.create(300, 60)
		c.send(emptyBody(sid, 301), "Accept-Encoding: gzip", "Origin: https://chat.example.org")
		if park {
			waitParked(t, env.h, 1)
		} else {
			waitHeld(t, env.h, 1)
		}
		env.up.Push(t, stanza)
		return c.receive()
	}
	held, heldBody := answer(false)
	parked, parkedBody := answer(true)
	if held.StatusCode != parked.StatusCode || heldBody != parkedBody {
		t.Fatalf("held: %d %q\nparked: %d %q", held.StatusCode, heldBody, parked.StatusCode, parkedBody)
	}
	if held.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("the held response is not gzipped: %v", held.Header)
	}
	held.Header.Del("Date")
	parked.Header.Del("Date")
	if fmt.Sprint(held.Header) != fmt.Sprint(parked.Header) {
		t.Fatalf("headers differ:\nheld:   %v\nparked: %v", held.Header, parked.Header)
	}
}

func TestParkedShutdown(t *testing.T) {
	t.Parallel()
	env := newParkEnv(t, nil)
	c, _ := parkOne(t, env, 400)
	done := make(chan error, 1)
	go func() { done <- env.h.Shutdown(context.Background()) }()
	if _, body := c.receive(); attrs(body)["condition"] != "system-shutdown" {
		t.Fatalf("parked request answered %s at shutdown", body)
	}
	if err := wait.Receive(t, done, "Shutdown to return"); err != nil {
		t.Fatal(err)
	}
}

// TestParkedSetCloseWait: Shutdown's wait for parked requests lets none
// enter once it began, and returns once those entered have left. A
// request parked by a handler still running as the server shut down once
// entered during the wait, which the race detector caught in CI.
func TestParkedSetCloseWait(t *testing.T) {
	t.Parallel()
	var ps parkedSet
	if !ps.enter(1) {
		t.Fatal("an open set refused a request")
	}
	done := make(chan struct{})
	go func() {
		ps.closeWait()
		close(done)
	}()
	wait.Until(t, func() bool {
		ps.mu.Lock()
		defer ps.mu.Unlock()
		return ps.closed
	}, "the set closed")
	if ps.enter(1) {
		t.Fatal("a request entered a set being waited for")
	}
	select {
	case <-done:
		t.Fatal("closeWait returned while a request had not left")
	default:
	}
	ps.leave()
	wait.Receive(t, done, "closeWait to return")
}

// TestParkedShutdownRace parks requests while the Handler shuts down:
// under -race, any request counted after Shutdown began to wait fails it.
func TestParkedShutdownRace(t *testing.T) {
	t.Parallel()
	for range 20 {
		env := newParkEnv(t, nil)
		c := dialRaw(t, env.hs.URL)
		sid := c.create(100, 60)
		c.send(emptyBody(sid, 101))
		done := make(chan error, 1)
		go func() { done <- env.h.Shutdown(context.Background()) }()
		// Parked or held, the request is answered.
		if _, body := c.receive(); attrs(body)["condition"] != "system-shutdown" && attrs(body)["type"] != "terminate" {
			t.Fatalf("request answered %s at shutdown", body)
		}
		if err := wait.Receive(t, done, "Shutdown to return"); err != nil {
			t.Fatal(err)
		}
	}
}

func TestParkedPipelined(t *testing.T) {
	t.Parallel()
	// A client that pipelines (sends the next request before the held
	// one is answered) gets both answers, in order, on its connection.
	env := newParkEnv(t, nil)
	c := dialRaw(t, env.hs.URL)
	sid := c.create(500, 1)
	c.send(emptyBody(sid, 501))
	c.send(emptyBody(sid, 502))
	for _, rid := range []string{"501", "502"} {
		resp, body := c.receive()
		if resp.StatusCode != 200 || attrs(body)["type"] != "" {
			t.Fatalf("rid %s answered %d %s", rid, resp.StatusCode, body)
		}
	}
	c.send(emptyBody(sid, 503))
	if _, body := c.receive(); attrs(body)["type"] != "" {
		t.Fatalf("rid 503 answered %s", body)
	}
}

func TestParkedOverTLS(t *testing.T) {
	t.Parallel()
	// Over TLS the connection goes back to the server as TLS: the next
	// request of a session made over TLS is served (XEP-0124 §19.1 would
	// answer a plaintext one with see-other-uri).
	up, h := startHandler(t, func(cfg *config.Config) { cfg.ParkHeld, cfg.ParkAfter = true, 0 }, nil)
	tlsConfig, roots := testcert.Server(t, "127.0.0.1")
	tlsConfig.NextProtos = []string{"h2", "http/1.1"}
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := NewListener(tls.NewListener(tcp, tlsConfig))
	srv := &http.Server{Handler: h, ConnContext: ln.ConnContext}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	conn, err := tls.Dial("tcp", tcp.Addr().String(), &tls.Config{RootCAs: roots, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &rawClient{t: t, conn: conn, br: bufio.NewReader(conn), host: tcp.Addr().String()}
	sid := c.create(600, 60)
	for rid := 601; rid <= 603; rid++ {
		c.send(emptyBody(sid, rid))
		waitParked(t, h, 1)
		up.Push(t, fmt.Sprintf("<message><body>%d</body></message>", rid))
		if _, body := c.receive(); !strings.Contains(body, fmt.Sprintf("<body>%d</body>", rid)) {
			t.Fatalf("rid %d answered %s", rid, body)
		}
	}
}

func TestParkedNotOverHTTP10OrClose(t *testing.T) {
	t.Parallel()
	// Only HTTP/1.1 keep-alive requests are parked: the others end
	// their connection after the response, and net/http does that.
	env := newParkEnv(t, nil)
	c := dialRaw(t, env.hs.URL)
	sid := c.create(700, 60)
	c.send(emptyBody(sid, 701), "Connection: close")
	waitHeld(t, env.h, 1)
	if n := env.h.parkedNow.Load(); n != 0 {
		t.Fatalf("%d requests parked with Connection: close", n)
	}
	env.up.Push(t, "<message/>")
	if resp, body := c.receive(); !resp.Close || !strings.Contains(body, "<message xmlns='jabber:client'/>") {
		t.Fatalf("answered close=%v %s", resp.Close, body)
	}
}

func TestParkedGoroutines(t *testing.T) {
	// What parking is for: a parked request leaves no goroutine behind,
	// where net/http holds two.
	count := func(park bool) int {
		env := newParkEnv(t, func(cfg *config.Config) { cfg.ParkHeld = park })
		before := runtime.NumGoroutine()
		var clients []*rawClient
		for i := range 20 {
			c := dialRaw(t, env.hs.URL)
			sid := c.create(1000*(i+1), 60)
			clients = append(clients, c)
			c.send(emptyBody(sid, 1000*(i+1)+1))
		}
		waitHeld(t, env.h, 20)
		if park {
			waitParked(t, env.h, 20)
		} else {
			// net/http starts its background reader once the
			// handler runs: there is no event to wait for.
			time.Sleep(50 * time.Millisecond)
		}
		n := runtime.NumGoroutine() - before
		env.h.Shutdown(context.Background())
		for _, c := range clients {
			c.receive()
		}
		return n
	}
	held, parked := count(false), count(true)
	if held-parked < 35 {
		t.Fatalf("%d more goroutines with 20 requests held in net/http, %d parked: want about 40 fewer", held, parked)
	}
	t.Logf("20 sessions: %d more goroutines held in net/http, %d parked", held, parked)
}

// listenLoopback returns a Listener made with opts on a loopback port,
// and a function that dials it and returns both ends of the connection
// the Listener accepts. The client ends are closed when the test ends.
func listenLoopback(t *testing.T, opts ListenerOptions) (*Listener, func() (client, server net.Conn)) {
	t.Helper()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := NewListenerWith(tcp, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln, func() (client, server net.Conn) {
		t.Helper()
		client, err := net.Dial("tcp", tcp.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { client.Close() })
		server, err = ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		return client, server
	}
}

func TestListenerAccept(t *testing.T) {
	t.Parallel()
	ln, accept := listenLoopback(t, ListenerOptions{})
	_, first := accept()
	go ln.giveBack(first)
	again, err := ln.Accept()
	if err != nil || again != first {
		t.Fatalf("Accept after giveBack = %v, %v; want the connection given back", again, err)
	}
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
	}
	ln.giveBack(first) // closes it, does not block
	if _, err := first.Write([]byte("x")); err == nil {
		t.Fatal("a connection given back after Close is still open")
	}
}

func TestListenerCloseClosesQueued(t *testing.T) {
	t.Parallel()
	// Connections given back and not yet accepted do not outlive the
	// Listener; giving back does not wait while the queue has room.
	ln, accept := listenLoopback(t, ListenerOptions{})
	conns := make([]net.Conn, 3)
	for i := range conns {
		_, conns[i] = accept()
	}
	for _, c := range conns {
		ln.giveBack(c) // queued: returns at once
	}
	ln.Close()
	for i, c := range conns {
		if _, err := c.Write([]byte("x")); err == nil {
			t.Fatalf("connection %d given back before Close is still open", i)
		}
	}
}

func TestParkedConnectionRests(t *testing.T) {
	// After a parked request is answered, its connection waits for the
	// client's next request outside net/http: net/http's header timeout
	// starts only when that request comes, so a client may leave the
	// connection idle in its pool and reuse it later; a connection idle
	// for the Listener's IdleTimeout is closed.
	up, h := startHandler(t, func(cfg *config.Config) { cfg.ParkHeld, cfg.ParkAfter = true, 0 }, nil)
	hs := httptest.NewUnstartedServer(h)
	ln := NewListener(hs.Listener)
	ln.IdleTimeout = time.Second
	hs.Listener = ln
	hs.Config.ConnContext = ln.ConnContext
	hs.Config.ReadHeaderTimeout = 100 * time.Millisecond
	hs.Start()
	t.Cleanup(hs.Close)

	c := dialRaw(t, hs.URL)
	sid := c.create(800, 60)
	c.send(emptyBody(sid, 801))
	waitParked(t, h, 1)
	up.Push(t, "<message><body>one</body></message>")
	if _, body := c.receive(); !strings.Contains(body, "one") {
		t.Fatalf("rid 801 answered %s", body)
	}
	time.Sleep(300 * time.Millisecond) // beyond ReadHeaderTimeout
	c.send(emptyBody(sid, 802))
	waitParked(t, h, 1)
	up.Push(t, "<message><body>two</body></message>")
	if _, body := c.receive(); !strings.Contains(body, "two") {
		t.Fatalf("rid 802 answered %s", body)
	}

	// Now idle beyond IdleTimeout: closed.
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if n, err := c.br.Read(make([]byte, 1)); err == nil {
		t.Fatalf("read %d bytes from an idle connection, want it closed", n)
	}
	if idle := time.Since(start); idle < 800*time.Millisecond || idle > 4*time.Second {
		t.Fatalf("idle connection closed after %v, want about IdleTimeout (1s)", idle)
	}
}

func TestListenerCloseClosesResting(t *testing.T) {
	t.Parallel()
	// A connection resting between requests is closed with the
	// Listener, not left to its idle timer.
	env := newParkEnv(t, nil)
	c, _ := parkOne(t, env, 900)
	env.up.Push(t, "<message/>")
	c.receive()
	// The answer's goroutine rests the connection right after writing.
	ln := env.hs.Listener.(*Listener)
	wait.Until(t, func() bool { return restingCount(ln) > 0 }, "the connection to rest")
	ln.Close()
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.br.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after Close: %v, want the connection closed", err)
	}
}

func restingCount(l *Listener) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.resting)
}
