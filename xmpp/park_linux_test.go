package xmpp

import "testing"

// TestBufferReleasedWhileIdle checks that on plain TCP the read buffer is
// given back whenever nothing is buffered, that bytes already buffered are
// never dropped, and that reading resumes whether data arrived before or
// after Next started waiting.
func TestBufferReleasedWhileIdle(t *testing.T) {
	sent := make(chan struct{})
	goOn := make(chan struct{})
	addr := serve(t, func(p *peer) error {
		if err := p.open("s1", featuresPlainAuth); err != nil {
			return err
		}
		<-goOn
		// Two stanzas in one write: one read fetches both.
		if err := p.send(`<presence id='1'/><presence id='2'/>`); err != nil {
			return err
		}
		<-goOn
		// Sent before the client's Next starts waiting.
		if err := p.send(`<presence id='3'/>`); err != nil {
			return err
		}
		close(sent)
		<-goOn
		// Sent while the client's Next waits.
		if err := p.send(`<presence id='4'/>`); err != nil {
			return err
		}
		p.waitQuit()
		return nil
	})
	c := mustDial(t, new(Dialer), addr)
	if c.src.raw == nil {
		t.Fatal("plain TCP Conn cannot park")
	}
	if c.src.br != nil {
		t.Error("buffer held after Dial with nothing buffered")
	}
	want := func(id string, held bool) {
		t.Helper()
		b, err := c.Next()
		if w := `<presence xmlns='jabber:client' id='` + id + `'/>`; err != nil || string(b) != w {
			t.Fatalf("Next() = %s, %v; want %s", b, err, w)
		}
		if (c.src.br != nil) != held {
			t.Errorf("after stanza %s: buffer held = %v, want %v", id, c.src.br != nil, held)
		}
	}
	goOn <- struct{}{}
	want("1", true) // the second stanza is buffered
	want("2", false)
	goOn <- struct{}{}
	<-sent
	want("3", false)
	next := goNext(c)
	goOn <- struct{}{}
	r := await(t, next)
	if w := `<presence xmlns='jabber:client' id='4'/>`; r.err != nil || string(r.b) != w {
		t.Fatalf("Next() = %s, %v; want %s", r.b, r.err, w)
	}
}

// TestBufferKeptOverTLS checks that a TLS Conn keeps its buffer: the
// socket's readiness says nothing about what tls.Conn has decrypted.
func TestBufferKeptOverTLS(t *testing.T) {
	pki := certs(t)
	addr := serve(t, func(p *peer) error {
		if err := p.open("s1", featuresTLS); err != nil {
			return err
		}
		if err := p.acceptTLS(pki.server); err != nil {
			return err
		}
		if err := p.open("s2", featuresPlainAuth); err != nil {
			return err
		}
		p.waitQuit()
		return nil
	})
	c := mustDial(t, &Dialer{RootCAs: pki.roots}, addr)
	if c.src.raw != nil || c.src.br == nil {
		t.Errorf("TLS Conn: parkable %v, buffer held %v; want false, true", c.src.raw != nil, c.src.br != nil)
	}
}
