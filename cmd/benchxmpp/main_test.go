package main

import (
	"bufio"
	"encoding/base64"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// dialBound logs user in on srv and binds resource "r", returning the
// connection and a reader positioned after the bind result.
func dialBound(t *testing.T, addr, user string) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(nc)
	header := "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>"
	io.WriteString(nc, header)
	readUntil(t, br, "</stream:features>")
	io.WriteString(nc, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"+base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00pw"))+"</auth>")
	readUntil(t, br, "<success")
	io.WriteString(nc, header)
	readUntil(t, br, "</stream:features>")
	io.WriteString(nc, "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>")
	if got := readUntil(t, br, "</iq>"); !strings.Contains(got, "<jid>"+user+"@localhost/r</jid>") {
		t.Fatalf("bind: %s", got)
	}
	return nc, br
}

func readUntil(t *testing.T, br *bufio.Reader, end string) string {
	t.Helper()
	var b strings.Builder
	for !strings.HasSuffix(b.String(), end) {
		c, err := br.ReadByte()
		if err != nil {
			t.Fatalf("reading until %q: %v (got %q)", end, err, b.String())
		}
		b.WriteByte(c)
	}
	return b.String()
}

func TestRoutesAndEchoes(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go newServer("localhost").serve(ln)
	a, abr := dialBound(t, ln.Addr().String(), "alice")
	_, bbr := dialBound(t, ln.Addr().String(), "bob")

	io.WriteString(a, "<presence/>")
	if got := readUntil(t, abr, "/>"); got != "<presence from='alice@localhost/r' xmlns='jabber:client'/>" {
		t.Fatalf("presence echo: %s", got)
	}
	io.WriteString(a, "<message to='bob@localhost' id='1'><body>hi</body></message>")
	if got := readUntil(t, bbr, "</message>"); got != "<message from='alice@localhost/r' xmlns='jabber:client' to='bob@localhost' id='1'><body>hi</body></message>" {
		t.Fatalf("routed message: %s", got)
	}
	io.WriteString(a, "<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>")
	if got := readUntil(t, abr, "/>"); !strings.Contains(got, "type='result' id='p'") {
		t.Fatalf("ping: %s", got)
	}
}
