package xmpp

import (
	"net"
	"strings"
	"testing"
)

// memConn is a net.Conn reading an endless stream from memory: a server
// header, then the same stanza over and over. Only Read is implemented.
type memConn struct {
	net.Conn
	head   string
	stanza string
	off    int
}

func (m *memConn) Read(p []byte) (int, error) {
	if m.head != "" {
		n := copy(p, m.head)
		m.head = m.head[n:]
		return n, nil
	}
	n := 0
	for n < len(p) {
		c := copy(p[n:], m.stanza[m.off:])
		n += c
		m.off = (m.off + c) % len(m.stanza)
	}
	return n, nil
}

// BenchmarkNext reads stanzas from an in-memory stream through Next.
func BenchmarkNext(b *testing.B) {
	for _, bc := range []struct{ name, stanza string }{
		{"presence", `<presence from='bob@example.test/phone' to='alice@example.test/web'/>`},
		{"message", `<message from='bob@example.test/phone' to='alice@example.test/web' type='chat' id='a8b6c1'>` +
			`<body>` + strings.Repeat("Hello there, how are you? ", 8) + `</body>` +
			`<active xmlns='http://jabber.org/protocol/chatstates'/><request xmlns='urn:xmpp:receipts'/></message>`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			mc := &memConn{head: serverHeader("bench"), stanza: bc.stanza}
			c := &Conn{nc: mc, maxSize: defaultMaxStanzaSize}
			c.src.setConn(mc)
			if err := c.readHeader(); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(bc.stanza)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Next(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
