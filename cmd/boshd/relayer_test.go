package main

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/boshd/boshd/internal/wait"
	"github.com/boshd/boshd/internal/xmpptest"
)

// relayer is a well-behaved BOSH client: one session whose every request
// carries a message upstream and is answered by the server's reply.
type relayer struct {
	url  string
	up   *xmpptest.Server
	peer *xmpptest.Peer // the session's upstream connection
	sid  string
	rid  int
}

// newRelayer creates the session. No other session may be created at the
// same time: the newest upstream connection is taken as the session's.
func newRelayer(t *testing.T, url string, up *xmpptest.Server) *relayer {
	t.Helper()
	r := &relayer{url: url, up: up, rid: 1000}
	resp, err := r.post(`<body xmlns='http://jabber.org/protocol/httpbind' rid='1000' to='example.org' wait='10' hold='1' ver='1.6'/>`)
	_, sid, _ := strings.Cut(resp, " sid='")
	sid, _, found := strings.Cut(sid, "'")
	if err != nil || !found {
		t.Fatalf("session refused: %s %v", resp, err)
	}
	r.sid, r.peer = sid, up.Peer(t, -1)
	return r
}

func (r *relayer) post(body string) (string, error) {
	resp, err := http.Post(r.url, "text/xml; charset=utf-8", strings.NewReader(body))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return string(data), err
}

// relay sends message n upstream on a request, which the session holds
// until the server's reply, sent once the message is in, answers it.
func (r *relayer) relay(n int) error {
	r.rid++
	token := fmt.Sprintf("relayed-%d", n)
	answer := make(chan error, 1)
	go func() {
		resp, err := r.post(`<body xmlns='http://jabber.org/protocol/httpbind' rid='` + strconv.Itoa(r.rid) + `' sid='` + r.sid + `'><message to='bob@example.org'><body>` + token + `</body></message></body>`)
		if err == nil && !strings.Contains(resp, token+"-back") {
			err = fmt.Errorf("message %d: the server's reply not relayed: %s", n, resp)
		}
		answer <- err
	}()
	if !wait.For(wait.Deadline, func() bool { return r.up.Received(token) }) {
		return fmt.Errorf("message %d never reached the server", n)
	}
	if err := r.peer.Send(`<message from='bob@example.org'><body>` + token + `-back</body></message>`); err != nil {
		return err
	}
	select {
	case err := <-answer:
		return err
	case <-time.After(wait.Deadline):
		return fmt.Errorf("message %d: no answer", n)
	}
}
