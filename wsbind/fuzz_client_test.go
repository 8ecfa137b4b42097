package wsbind

import (
	"bytes"
	"testing"

	"github.com/boshd/boshd/internal/rawxml"
	"github.com/boshd/boshd/internal/xmltest"
)

// FuzzClientMessage feeds one client message to judge, in both states:
// it must never panic, a message relayed or taken as a framing element
// must be one element of the message with nothing around it but
// whitespace (and a declaration first), and a refusal's stream error must
// stand alone.
func FuzzClientMessage(f *testing.F) {
	for _, seed := range []string{
		`<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="example.org" version="1.0"/>`,
		`<?xml version='1.0'?><open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="example.org" xml:lang="en"/>`,
		`<close xmlns="urn:ietf:params:xml:ns:xmpp-framing"/>`,
		message,
		`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHNlY3JldA==</auth>`,
		`<enable xmlns='urn:xmpp:sm:3' resume='true'/>`,
		`<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>`,
		`<x:message xmlns:x='jabber:client'><x:body>hi</x:body></x:message>`,
		`<stream:stream xmlns:stream='http://etherx.jabber.org/streams'/>`,
		`<open to="example.org"/>`,
		`<a/><b/>`, `<a>`, `<!-- c --><a/>`, `<!DOCTYPE a><a/>`, `<a>&nbsp;</a>`, `<?pi?><a/>`, " \n", "",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		for _, st := range []state{awaitingOpen, opened} {
			v := judge(msg, st, 16)
			if v.action == actRefuse {
				if v.condition == "" {
					t.Fatalf("refused %q with no condition", msg)
				}
				if _, _, err := xmltest.Standalone(streamErrorXML(v.condition, v.text), "<w>", "</w>", rawxml.Options{DefaultNS: nsClient}); err != nil {
					t.Fatalf("stream error for %q: %v", msg, err)
				}
				continue
			}
			i := bytes.Index(msg, v.raw)
			if len(v.raw) == 0 || i < 0 {
				t.Fatalf("%q: element %q not in the message", msg, v.raw)
			}
			if rest := bytes.TrimSpace(msg[i+len(v.raw):]); len(rest) > 0 {
				t.Fatalf("%q: %q after the element", msg, rest)
			}
			if v.action == actOpen {
				parseOpen(v.raw) // an error is a not-well-formed refusal; a panic is a bug
			}
		}
	})
}
