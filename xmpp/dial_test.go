package xmpp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/boshd/boshd/internal/xmpptest"
)

func TestAppendHeader(t *testing.T) {
	t.Parallel()
	type test struct {
		name string
		t    Target
		want string
	}
	for _, tc := range []test{
		{
			name: "domain only",
			t:    Target{Domain: "example.org"},
			want: `<?xml version='1.0'?><stream:stream to='example.org' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`,
		},
		{
			name: "from and lang",
			t:    Target{Domain: "example.org", From: "alice@example.org", Lang: "en"},
			want: `<?xml version='1.0'?><stream:stream to='example.org' from='alice@example.org' version='1.0' xml:lang='en' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`,
		},
		{
			name: "values escaped",
			t:    Target{Domain: "a'b", Lang: "<&>"},
			want: `<?xml version='1.0'?><stream:stream to='a&apos;b' version='1.0' xml:lang='&lt;&amp;&gt;' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(appendHeader(nil, &tc.t)); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

// TestDialPlain opens a stream to a loopback server that offers no
// STARTTLS, and checks both headers and the features.
func TestDialPlain(t *testing.T) {
	t.Parallel()
	headers := make(chan map[string]string, 1)
	addr := serve(t, func(p *xmpptest.Peer) error {
		root, err := p.ReadHeader()
		if err != nil {
			return err
		}
		attrs := map[string]string{"name": root.Name.Space + ":" + root.Name.Local, "ns": root.NS()}
		for _, a := range []struct{ ns, local string }{{"", "to"}, {"", "from"}, {"", "version"}, {"http://www.w3.org/XML/1998/namespace", "lang"}} {
			attrs[a.local], _ = root.Get(a.ns, a.local)
		}
		attrs["xmlns"], _ = root.Namespace("")
		headers <- attrs
		if err := p.Send(serverHeader("s1") + featuresAuth); err != nil {
			return err
		}
		p.WaitQuit()
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := &Dialer{TLSMode: "plaintext"} // STARTTLS is offered, and filtered
	c, err := d.Dial(ctx, Target{Domain: testDomain, Addr: addr, Lang: "de", From: "alice@" + testDomain})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := <-headers
	want := map[string]string{
		"name": "stream:stream", "ns": nsStream, "xmlns": nsClient,
		"to": testDomain, "from": "alice@" + testDomain, "version": "1.0", "lang": "de",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("client header %s = %q, want %q", k, got[k], v)
		}
	}
	if c.StreamID() != "s1" || c.From() != testDomain {
		t.Errorf("StreamID, From = %q, %q; want s1, %s", c.StreamID(), c.From(), testDomain)
	}
	if c.Secure() {
		t.Error("Secure() = true without TLS")
	}
	if string(c.Features()) != wantFeaturesAuth {
		t.Errorf("Features:\n got %s\nwant %s", c.Features(), wantFeaturesAuth)
	}
}

func TestDecideTLS(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mode      tlsMode
		offered   bool
		loopback  bool
		wantTLS   bool
		wantError error
	}{
		{tlsStartTLS, true, true, true, nil},
		{tlsStartTLS, true, false, true, nil},
		{tlsStartTLS, false, true, false, nil},
		{tlsStartTLS, false, false, false, errPlainAddr},
		{tlsRequired, true, true, true, nil},
		{tlsRequired, true, false, true, nil},
		{tlsRequired, false, true, false, errNoStartTLS},
		{tlsRequired, false, false, false, errNoStartTLS},
		{tlsPlaintext, true, true, false, nil},
		{tlsPlaintext, false, true, false, nil},
		{tlsPlaintext, true, false, false, errPlainAddr},
		{tlsPlaintext, false, false, false, errPlainAddr},
	} {
		useTLS, err := decideTLS(tc.mode, tc.offered, tc.loopback)
		if useTLS != tc.wantTLS || !errors.Is(err, tc.wantError) {
			t.Errorf("decideTLS(%d, offered=%v, loopback=%v) = %v, %v; want %v, %v",
				tc.mode, tc.offered, tc.loopback, useTLS, err, tc.wantTLS, tc.wantError)
		}
	}
}

// TestDialTLSModes runs each TLS mode against a server that does or does
// not offer STARTTLS. Where Dial succeeds, a stanza goes each way over the
// resulting stream; the server checks that the client's first element
// after the features is <starttls/> exactly when TLS is expected.
func TestDialTLSModes(t *testing.T) {
	t.Parallel()
	pki := certs(t)
	for _, tc := range []struct {
		name, mode string
		offer      bool
		wantTLS    bool
		wantError  bool
	}{
		{"default mode, offered", "", true, true, false},
		{"starttls, offered", "starttls", true, true, false},
		{"starttls, not offered, loopback", "starttls", false, false, false},
		{"required, offered", "required", true, true, false},
		{"required, not offered", "required", false, false, true},
		{"plaintext, offered", "plaintext", true, false, false},
		{"plaintext, not offered", "plaintext", false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := serve(t, func(p *xmpptest.Peer) error {
				features := featuresPlainAuth
				if tc.offer {
					features = featuresTLS
				}
				if err := p.Open("s1", features); err != nil {
					return err
				}
				if tc.wantError {
					p.WaitQuit()
					return nil
				}
				if tc.wantTLS {
					if err := p.AcceptTLS(pki.server); err != nil {
						return err
					}
					if err := p.Open("s2", featuresPlainAuth); err != nil {
						return err
					}
				}
				if err := p.Expect(`<presence/>`); err != nil {
					return err
				}
				return p.Send(`<message from='bob@example.test'><body>hi</body></message>`)
			})
			c, err := dialTest(t, &Dialer{TLSMode: tc.mode, RootCAs: pki.roots}, addr)
			if tc.wantError {
				if err == nil {
					t.Fatal("Dial succeeded, want error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Secure() != tc.wantTLS {
				t.Errorf("Secure() = %v, want %v", c.Secure(), tc.wantTLS)
			}
			wantFeatures := wantFeaturesPlainAuth
			if tc.offer && !tc.wantTLS {
				// Only <starttls/> was offered, and it is filtered.
				wantFeatures = `<stream:features xmlns:stream='http://etherx.jabber.org/streams'></stream:features>`
			}
			if string(c.Features()) != wantFeatures {
				t.Errorf("Features:\n got %s\nwant %s", c.Features(), wantFeatures)
			}
			wantID := "s1"
			if tc.wantTLS {
				wantID = "s2"
			}
			if c.StreamID() != wantID {
				t.Errorf("StreamID() = %q, want %q", c.StreamID(), wantID)
			}
			if err := c.Write([]byte(`<presence/>`)); err != nil {
				t.Fatal(err)
			}
			b, err := c.Next()
			if want := `<message xmlns='jabber:client' from='bob@example.test'><body>hi</body></message>`; err != nil || string(b) != want {
				t.Errorf("Next() = %s, %v; want %s", b, err, want)
			}
		})
	}
}

func TestDialBadMode(t *testing.T) {
	t.Parallel()
	_, err := (&Dialer{TLSMode: "sometimes"}).Dial(context.Background(), Target{Domain: testDomain, Addr: "127.0.0.1:1"})
	if err == nil {
		t.Fatal("Dial with an unknown TLS mode succeeded")
	}
}

// TestDialTLSVerify checks that the server certificate is verified against
// RootCAs and the target's domain.
func TestDialTLSVerify(t *testing.T) {
	t.Parallel()
	pki := certs(t)
	for _, tc := range []struct {
		name   string
		roots  *x509.CertPool
		domain string
		check  func(error) bool
	}{
		{"system roots do not know the test CA", nil, testDomain, func(err error) bool {
			var e *tls.CertificateVerificationError
			return errors.As(err, &e)
		}},
		{"certificate for another domain", pki.roots, "other.test", func(err error) bool {
			var e x509.HostnameError
			return errors.As(err, &e)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := serve(t, xmpptest.Opened("s1", featuresTLS, func(p *xmpptest.Peer) error {
				p.AcceptTLS(pki.server) // fails: the client rejects the certificate
				return nil
			}))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := (&Dialer{RootCAs: tc.roots}).Dial(ctx, Target{Domain: tc.domain, Addr: addr})
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded, want a certificate error")
			}
			if !tc.check(err) {
				t.Errorf("Dial error %v is not the expected certificate error", err)
			}
		})
	}
}

// TestDialStreamError checks that a stream error during the negotiation is
// returned as a *StreamError.
func TestDialStreamError(t *testing.T) {
	t.Parallel()
	addr := serve(t, func(p *xmpptest.Peer) error {
		if _, err := p.ReadHeader(); err != nil {
			return err
		}
		return p.Send(serverHeader("s1") + xmpptest.StreamError("host-unknown"))
	})
	_, err := dialTest(t, new(Dialer), addr)
	var se *StreamError
	if !errors.As(err, &se) || se.Condition != "host-unknown" {
		t.Fatalf("Dial error = %v, want a host-unknown *StreamError", err)
	}
}

// TestDialRejectsBadHeader checks that a server not opening an XMPP 1.0
// client stream is refused.
func TestDialRejectsBadHeader(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, header string }{
		{"no version", `<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='x'>`},
		{"server namespace", `<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' id='x' version='1.0'>`},
		{"not a stream", `<html xmlns='http://www.w3.org/1999/xhtml'>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := serve(t, func(p *xmpptest.Peer) error {
				if _, err := p.ReadHeader(); err != nil {
					return err
				}
				p.Send(tc.header + featuresPlainAuth)
				p.WaitQuit()
				return nil
			})
			if _, err := dialTest(t, new(Dialer), addr); !errors.Is(err, errNotStream) {
				t.Fatalf("Dial error = %v, want %v", err, errNotStream)
			}
		})
	}
}

// TestDialContext checks that ctx bounds the negotiation, not only the
// connect.
func TestDialContext(t *testing.T) {
	t.Parallel()
	addr := serve(t, func(p *xmpptest.Peer) error {
		if _, err := p.ReadHeader(); err != nil {
			return err
		}
		p.WaitQuit() // never answer
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := new(Dialer).Dial(ctx, Target{Domain: testDomain, Addr: addr})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial error = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Dial took %v after a 100 ms deadline", d)
	}
}

// TestDialSRV finds the server through an SRV record served by a fake DNS
// server.
func TestDialSRV(t *testing.T) {
	t.Parallel()
	addr := serve(t, xmpptest.Opened("srv", featuresPlainAuth, func(p *xmpptest.Peer) error {
		p.WaitQuit()
		return nil
	}))
	_, portStr, _ := net.SplitHostPort(addr)
	port, _ := net.LookupPort("tcp", portStr)
	c, err := (&Dialer{Resolver: fakeDNS(t, uint16(port))}).Dial(context.Background(), Target{Domain: testDomain})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.StreamID() != "srv" {
		t.Errorf("StreamID() = %q, want srv", c.StreamID())
	}
}

// fakeDNS returns a resolver whose DNS server answers
// _xmpp-client._tcp.example.test with xmpp.example.test at port, every A
// question with 127.0.0.1 and everything else with no records.
func fakeDNS(t *testing.T, port uint16) *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
			client, server := net.Pipe()
			go func() {
				defer server.Close()
				for {
					// The resolver speaks DNS over TCP on a non-packet
					// connection: two bytes of length, then the message.
					var l [2]byte
					if _, err := io.ReadFull(server, l[:]); err != nil {
						return
					}
					msg := make([]byte, int(l[0])<<8|int(l[1]))
					if _, err := io.ReadFull(server, msg); err != nil {
						return
					}
					resp, err := dnsAnswer(msg, port)
					if err != nil {
						t.Errorf("fake DNS: %v", err)
						return
					}
					if _, err := server.Write(append([]byte{byte(len(resp) >> 8), byte(len(resp))}, resp...)); err != nil {
						return
					}
				}
			}()
			return client, nil
		},
	}
}

func dnsAnswer(query []byte, port uint16) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true})
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}
	switch {
	case q.Type == dnsmessage.TypeSRV && q.Name.String() == "_xmpp-client._tcp."+testDomain+".":
		err = b.SRVResource(rh, dnsmessage.SRVResource{Port: port, Target: dnsmessage.MustNewName("xmpp." + testDomain + ".")})
	case q.Type == dnsmessage.TypeA:
		err = b.AResource(rh, dnsmessage.AResource{A: [4]byte{127, 0, 0, 1}})
	}
	if err != nil {
		return nil, err
	}
	return b.Finish()
}

// TestTLSConfigShared checks that streams to one domain share a
// tls.Config (tls.Conn keeps it for the life of the stream), that each
// domain has its own ServerName, and that a change of RootCAs is seen.
func TestTLSConfigShared(t *testing.T) {
	t.Parallel()
	pki := certs(t)
	d := &Dialer{RootCAs: pki.roots}
	a1, a2, b := d.tlsConfig("a.example"), d.tlsConfig("a.example"), d.tlsConfig("b.example")
	if a1 != a2 {
		t.Error("two streams to one domain got two Configs")
	}
	if a1.ServerName != "a.example" || b.ServerName != "b.example" {
		t.Errorf("ServerNames %q and %q, want a.example and b.example", a1.ServerName, b.ServerName)
	}
	if a1.RootCAs != pki.roots || a1.MinVersion != tls.VersionTLS12 {
		t.Errorf("Config has roots %p and MinVersion %#x, want %p and TLS 1.2", a1.RootCAs, a1.MinVersion, pki.roots)
	}
	d.RootCAs = x509.NewCertPool()
	if a3 := d.tlsConfig("a.example"); a3 == a1 || a3.RootCAs != d.RootCAs {
		t.Error("Config kept after RootCAs changed")
	}
}

// TestKeepSMAndHeader dials with Target.KeepSM, through a SASL restart:
// stream management stays in both feature lists while STARTTLS, -PLUS
// mechanisms, channel binding and compression go, and Lang and Version
// follow the server's current header.
func TestKeepSMAndHeader(t *testing.T) {
	t.Parallel()
	header := func(id, lang, version string) string {
		return `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='` + id +
			`' from='` + testDomain + `' version='` + version + `'` + lang + `>`
	}
	addr := serve(t, func(p *xmpptest.Peer) error {
		if _, err := p.ReadHeader(); err != nil {
			return err
		}
		if err := p.Send(header("s1", ` xml:lang='fr'`, "1.0") + featuresAuth); err != nil {
			return err
		}
		if err := p.Expect(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHNlY3JldA==</auth>`); err != nil {
			return err
		}
		if err := p.Send(xmpptest.Success); err != nil {
			return err
		}
		if _, err := p.ReadHeader(); err != nil {
			return err
		}
		if err := p.Send(header("s2", "", "1.1") + featuresBind); err != nil {
			return err
		}
		p.WaitQuit()
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := (&Dialer{TLSMode: "plaintext"}).Dial(ctx, Target{Domain: testDomain, Addr: addr, KeepSM: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := `<stream:features xmlns:stream='http://etherx.jabber.org/streams'>` +
		`<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1</mechanism><mechanism>PLAIN</mechanism></mechanisms>` +
		`<sm xmlns='urn:xmpp:sm:3'/>` +
		`</stream:features>`
	if string(c.Features()) != want {
		t.Errorf("Features:\n got %s\nwant %s", c.Features(), want)
	}
	if c.Lang() != "fr" || c.Version() != "1.0" || c.StreamID() != "s1" {
		t.Errorf("Lang, Version, StreamID = %q, %q, %q; want fr, 1.0, s1", c.Lang(), c.Version(), c.StreamID())
	}
	if err := c.Write([]byte(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHNlY3JldA==</auth>`)); err != nil {
		t.Fatal(err)
	}
	if b, err := c.Next(); err != nil || string(b) != xmpptest.Success {
		t.Fatalf("Next() = %s, %v; want %s", b, err, xmpptest.Success)
	}
	if err := c.Restart(); err != nil {
		t.Fatal(err)
	}
	b, err := c.Next()
	if want := `<stream:features xmlns:stream='http://etherx.jabber.org/streams'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><sm xmlns='urn:xmpp:sm:3'/></stream:features>`; err != nil || string(b) != want {
		t.Errorf("Next after Restart = %s, %v; want %s", b, err, want)
	}
	if c.Lang() != "" || c.Version() != "1.1" || c.StreamID() != "s2" {
		t.Errorf("after Restart: Lang, Version, StreamID = %q, %q, %q; want \"\", 1.1, s2", c.Lang(), c.Version(), c.StreamID())
	}
}
