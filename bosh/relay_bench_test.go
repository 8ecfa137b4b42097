package bosh

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/boshd/boshd/config"
	"github.com/boshd/boshd/internal/wait"
	"github.com/boshd/boshd/internal/xmpptest"
)

// BenchmarkRelay measures boshd's own work for one stanza each way:
// a request carrying a message, parsed and written upstream, then held
// until the server's message comes back and answers it. The HTTP server
// is left out (the handler is called directly), so B/op and allocs/op are
// what boshd adds to what net/http allocates per request.
func BenchmarkRelay(b *testing.B) {
	// The upstream throws away what the client sends after the header,
	// so that recording it costs nothing.
	peers := make(chan *xmpptest.Peer, 1)
	srv := xmpptest.NewServer(b, func(p *xmpptest.Peer) error {
		if err := p.Open("s1", testFeatures); err != nil {
			return err
		}
		peers <- p
		_, err := io.Copy(io.Discard, p.Reader())
		return err
	})
	// boshd's default parking, not the tests' (every stream parked at
	// once, -park-after): BENCHMARKS.md's figures are of the default.
	_, h := newHandler(b, srv, func(cfg *config.Config) {
		d := config.Default()
		cfg.Polling, cfg.ParkHeld, cfg.ParkAfter = 0, d.ParkHeld, d.ParkAfter
	}, nil)

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
	up := wait.Receive(b, peers, "the upstream connection")
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
		if err := up.Send(in); err != nil {
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
