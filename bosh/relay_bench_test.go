package bosh

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/boshd/boshd/config"
)

// benchServer is a minimal XMPP server for benchmarks: it answers the
// stream header, throws away what the client sends after it, and writes
// what is sent on push.
type benchServer struct {
	ln   net.Listener
	conn chan net.Conn
}

func newBenchServer(b *testing.B) *benchServer {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s := &benchServer{ln: ln, conn: make(chan net.Conn, 1)}
	b.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		b.Cleanup(func() { c.Close() })
		br := bufio.NewReader(c)
		if _, err := br.ReadString('>'); err != nil { // <?xml ...?>
			return
		}
		if _, err := br.ReadString('>'); err != nil { // <stream:stream ...>
			return
		}
		io.WriteString(c, "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='example.org' version='1.0'>"+testFeatures)
		s.conn <- c
		io.Copy(io.Discard, br)
	}()
	return s
}

// BenchmarkRelay measures boshd's own work for one stanza each way:
// a request carrying a message, parsed and written upstream, then held
// until the server's message comes back and answers it. The HTTP server
// is left out (the handler is called directly), so B/op and allocs/op are
// what boshd adds to what net/http allocates per request.
func BenchmarkRelay(b *testing.B) {
	srv := newBenchServer(b)
	cfg := config.Default()
	cfg.Upstreams = map[string]string{"example.org": srv.ln.Addr().String()}
	cfg.UpstreamTLS = "plaintext"
	cfg.Polling = 0
	h, err := NewHandler(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Shutdown(context.Background()) })

	serve := func(body string) string {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/http-bind", strings.NewReader(body)))
		return rec.Body.String()
	}
	rid := 1000
	sid := attrs(serve(sprintf(creationBody, rid, 60)))["sid"]
	if sid == "" {
		b.Fatal("no session")
	}
	var up net.Conn
	select {
	case up = <-srv.conn:
	case <-time.After(5 * time.Second):
		b.Fatal("no upstream")
	}
	const (
		out = `<message to='bob@example.org/phone' type='chat' id='a8b6c1'><body>Hello there, how are you?</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`
		in  = `<message from='bob@example.org/phone' to='alice@example.org/web' type='chat' id='a8b6c2'><body>Hello there, how are you?</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`
	)
	prefix := `<body xmlns='http://jabber.org/protocol/httpbind' sid='` + sid + `' rid='`
	done := make(chan string, 1)
	b.ReportAllocs()
	for b.Loop() {
		rid++
		body := prefix + strconv.Itoa(rid) + `'>` + out + `</body>`
		go func() { done <- serve(body) }()
		// The request is held once the session has written its payload
		// upstream; the server's answer may come before or after that.
		if _, err := io.WriteString(up, in); err != nil {
			b.Fatal(err)
		}
		resp := <-done
		for !strings.Contains(resp, "a8b6c2") {
			// Answered empty (the push raced the request): the message
			// goes with the next one.
			rid++
			resp = serve(prefix + strconv.Itoa(rid) + `'/>`)
		}
		if bytes.Count([]byte(resp), []byte("a8b6c2")) != 1 {
			b.Fatalf("response %s", resp)
		}
	}
}
