package xmpptest_test

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/boshd/boshd/internal/xmpptest"
)

// A Relay server answers the header with its features, records what the
// client sends and pushes what the test gives it.
func TestRelay(t *testing.T) {
	t.Parallel()
	srv := xmpptest.NewRelay(t, xmpptest.NoFeatures)
	c, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "<?xml version='1.0'?><stream:stream to='example.org' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")
	br := bufio.NewReader(c)
	want := xmpptest.Header("s1", "example.org") + xmpptest.NoFeatures
	got := make([]byte, len(want))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != want {
		t.Fatalf("server sent %q, %v; want %q", got, err, want)
	}
	io.WriteString(c, "<presence/>")
	srv.WaitGot(t, "<presence/>")
	srv.Push(t, "<message/>")
	got = make([]byte, len("<message/>"))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != "<message/>" {
		t.Fatalf("pushed %q, %v", got, err)
	}
	if n := srv.Accepts(); n != 1 {
		t.Fatalf("Accepts() = %d, want 1", n)
	}
}

func TestPlainUser(t *testing.T) {
	t.Parallel()
	const auth = "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
	for in, want := range map[string]string{
		auth + "AGFsaWNlAHNlY3JldA==</auth>": "alice",
		auth + "AABzZWNyZXQ=</auth>":         "", // no user
		auth + "!!</auth>":                   "",
		"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'/>": "",
	} {
		if got := xmpptest.PlainUser(in); got != want {
			t.Errorf("PlainUser(%s) = %q, want %q", in, got, want)
		}
	}
}

// A Script plays the server's side of a stream step by step: here SASL
// PLAIN that admits alice alone.
func TestScript(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ auth, want string }{
		{"AGFsaWNlAHNlY3JldA==", xmpptest.Success},
		{"AGJvYgBzZWNyZXQ=", xmpptest.Failure("not-authorized")},
	} {
		srv := xmpptest.NewServer(t, func(p *xmpptest.Peer) error {
			if err := p.Open("s1", `<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>`); err != nil {
				return err
			}
			auth, err := p.Next()
			if err != nil {
				return err
			}
			if xmpptest.PlainUser(auth) != "alice" {
				return p.Send(xmpptest.Failure("not-authorized"))
			}
			return p.Send(xmpptest.Success)
		})
		c, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "<stream:stream to='example.org' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")
		io.WriteString(c, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"+tc.auth+"</auth>")
		all, _ := io.ReadAll(c)
		if !strings.HasSuffix(string(all), tc.want) {
			t.Errorf("auth %s answered %s, want %s", tc.auth, all, tc.want)
		}
	}
}
