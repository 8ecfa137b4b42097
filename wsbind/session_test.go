package wsbind

import (
	"fmt"
	"strings"
	"testing"

	"github.com/gobwas/ws"

	"github.com/boshd/boshd/internal/wait"
	"github.com/boshd/boshd/internal/xmpptest"
)

const (
	features = `<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism><mechanism>SCRAM-SHA-1-PLUS</mechanism></mechanisms>` +
		xmpptest.StartTLS + `<sm xmlns='urn:xmpp:sm:3'/></stream:features>`
	message = `<message to='bob@example.org' type='chat'><body>hi</body></message>`
)

func TestRelayBothWaysAndClientClose(t *testing.T) {
	up := xmpptest.NewRelay(t, features)
	ts := newTestServer(t, up, nil)
	c := ts.dial(t)
	c.send(`<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="example.org" version="1.0" xml:lang="en"/>`)
	c.expect(`<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" from="example.org" id="s1" version="1.0"`)
	f := c.expect(`<stream:features xmlns:stream='http://etherx.jabber.org/streams'`, `<sm xmlns='urn:xmpp:sm:3'/>`, `PLAIN`)
	// RFC 7395 §3.9: no <starttls/> and no channel binding.
	for _, gone := range []string{"starttls", "-PLUS"} {
		if strings.Contains(f, gone) {
			t.Errorf("features %q keep %q", f, gone)
		}
	}

	c.send(message)
	up.WaitGot(t, message)
	up.Push(t, `<message from='bob@example.org/x' type='chat'><body>ho</body></message>`)
	c.expect(`<message xmlns='jabber:client' from='bob@example.org/x'`, `<body>ho</body>`)

	c.send(`<close xmlns="urn:ietf:params:xml:ns:xmpp-framing"/>`)
	up.WaitGot(t, xmpptest.StreamEnd)
	if got := c.next(); got != closeMessage {
		t.Errorf("close message %q, want %q", got, closeMessage)
	}
	c.expectClose(ws.StatusNormalClosure)
	if !wait.For(wait.Deadline, func() bool { return ts.h.Stats().Live == 0 }) {
		t.Errorf("%d sessions live after the close", ts.h.Stats().Live)
	}
}

func TestRestartAfterSASL(t *testing.T) {
	up := xmpptest.NewServer(t, xmpptest.Opened("s1", features, func(p *xmpptest.Peer) error {
		if el, err := p.Next(); err != nil || !strings.HasPrefix(el, `<auth`) {
			return fmt.Errorf("got %q, %v; want <auth/>", el, err)
		}
		if err := p.Send(xmpptest.Success); err != nil {
			return err
		}
		if _, err := p.ReadHeader(); err != nil {
			return err
		}
		if err := p.Send(xmpptest.Header("s2", xmpptest.Domain) + `<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>`); err != nil {
			return err
		}
		return p.Record()
	}))
	ts := newTestServer(t, up, nil)
	c := ts.dial(t)
	c.open()
	c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHNlY3JldA==</auth>`)
	c.expect(`<success`)
	c.send(`<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="example.org" version="1.0"/>`)
	c.expect(`<open xmlns="urn:ietf:params:xml:ns:xmpp-framing"`, `id="s2"`)
	c.expect(`<stream:features`, `<bind`)
	c.send(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`)
	up.WaitGot(t, `<iq type='set' id='b'>`)
}

func TestOpenRefused(t *testing.T) {
	tests := []struct {
		name, open, want string
	}{
		{"unserved domain", `<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="elsewhere.example" version="1.0"/>`, "host-unknown"},
		{"no to", `<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" version="1.0"/>`, "improper-addressing"},
		{"version 2", `<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="example.org" version="2.0"/>`, "unsupported-version"},
		{"stanza first", message, "bad-format"},
		{"open in jabber:client", `<open to="example.org" version="1.0"/>`, "invalid-namespace"},
		{"stream:stream", `<stream:stream xmlns:stream="http://etherx.jabber.org/streams" to="example.org"></stream:stream>`, "invalid-namespace"},
		{"not well-formed", `<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="example.org">`, "not-well-formed"},
		{"two elements", `<a/><b/>`, "not-well-formed"},
		{"comment", `<!-- hi --><open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="example.org"/>`, "restricted-xml"},
		{"processing instruction", `<?foo bar?><open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="example.org"/>`, "restricted-xml"},
		{"doctype", `<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>`, "restricted-xml"},
	}
	up := xmpptest.NewRelay(t, features)
	ts := newTestServer(t, up, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ts.dial(t)
			c.send(tt.open)
			// RFC 7395 §3.5: <open/>, the error, <close/>.
			c.expect(`<open xmlns="urn:ietf:params:xml:ns:xmpp-framing"`)
			c.expect(`<stream:error xmlns:stream="http://etherx.jabber.org/streams"><` + tt.want + ` xmlns="urn:ietf:params:xml:ns:xmpp-streams"/>`)
			if got := c.next(); got != closeMessage {
				t.Errorf("got %q, want %q", got, closeMessage)
			}
			c.expectClose(ws.StatusNormalClosure)
		})
	}
	if n := up.Accepts(); n != 0 {
		t.Errorf("%d upstream connections dialled for refused streams", n)
	}
}
