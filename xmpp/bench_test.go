package xmpp

import (
	"math"
	"strings"
	"testing"
)

// BenchmarkNext reads stanzas from an in-memory stream through Next: a
// server header, then the same stanza over and over.
func BenchmarkNext(b *testing.B) {
	for _, bc := range []struct{ name, stanza string }{
		{"presence", `<presence from='bob@example.test/phone' to='alice@example.test/web'/>`},
		{"message", `<message from='bob@example.test/phone' to='alice@example.test/web' type='chat' id='a8b6c1'>` +
			`<body>` + strings.Repeat("Hello there, how are you? ", 8) + `</body>` +
			`<active xmlns='http://jabber.org/protocol/chatstates'/><request xmlns='urn:xmpp:receipts'/></message>`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			mc := &hugeServer{prefix: serverHeader("bench"), fill: bc.stanza, limit: math.MaxInt}
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
