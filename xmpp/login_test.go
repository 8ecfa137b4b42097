package xmpp

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"

	"github.com/boshd/boshd/internal/xmpptest"
)

const (
	loginUser     = "alice"
	loginPassword = "s3cret-pa55"
)

// loginDial dials a server running script and returns the Conn, closed
// when the test ends.
func loginDial(t *testing.T, script xmpptest.Script) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := (&Dialer{TLSMode: "plaintext"}).Dial(ctx, Target{Domain: testDomain, Addr: serve(t, script)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// scramServer returns the Script of a server offering SCRAM-SHA-1 and
// PLAIN that takes SCRAM-SHA-1 for loginUser and loginPassword, binds
// "web" and requires the legacy session; wrongProof makes it send a bad
// server signature with its success.
func scramServer(wrongProof bool) xmpptest.Script {
	features := `<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism><mechanism>SCRAM-SHA-1</mechanism><mechanism>DIGEST-MD5</mechanism></mechanisms></stream:features>`
	salt := []byte("0123456789abcdef")
	return xmpptest.Opened("s1", features, func(p *xmpptest.Peer) error {
		srv := sasl.NewServer(sasl.ScramSha1, func(*sasl.Negotiator) bool { return true },
			sasl.SaltedCredentials(func(user, _ []byte, _ string) ([]byte, []byte, int64, error) {
				if string(user) != loginUser {
					return nil, nil, 0, sasl.ErrAuthn
				}
				return salt, sasl.SCRAMSaltPassword(sha1.New, []byte(loginPassword), salt, 4096), 4096, nil
			}))
		for _, reply := range []string{"challenge", "success"} {
			el, err := p.Next()
			if err != nil {
				return err
			}
			var msg struct {
				Mechanism string `xml:"mechanism,attr"`
				Data      string `xml:",chardata"`
			}
			if err := xml.Unmarshal([]byte(el), &msg); err != nil {
				return err
			}
			data, err := base64.StdEncoding.DecodeString(msg.Data)
			if err != nil {
				return err
			}
			_, out, err := srv.Step(data)
			if err != nil {
				return p.Send(xmpptest.Failure("not-authorized"))
			}
			if wrongProof && reply == "success" {
				out = []byte("v=" + base64.StdEncoding.EncodeToString([]byte("not the server's signature")))
			}
			if err := p.Send(`<` + reply + ` xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>` + base64.StdEncoding.EncodeToString(out) + `</` + reply + `>`); err != nil {
				return err
			}
		}
		if wrongProof {
			return p.Record() // the client gives up
		}
		if _, err := p.ReadHeader(); err != nil {
			return err
		}
		if err := p.Send(serverHeader("s2") + `<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></stream:features>`); err != nil {
			return err
		}
		if err := p.Expect(`<iq xmlns='jabber:client' type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>web</resource></bind></iq>`); err != nil {
			return err
		}
		if err := p.Send(`<iq type='result' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@example.org/web</jid></bind></iq>`); err != nil {
			return err
		}
		if err := p.Expect(`<iq xmlns='jabber:client' type='set' id='sess'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>`); err != nil {
			return err
		}
		if err := p.Send(`<iq type='result' id='sess'/><message from='bob@example.org/x' to='alice@example.org/web'><body>hi</body></message>`); err != nil {
			return err
		}
		return p.Record()
	})
}

func TestLogin(t *testing.T) {
	t.Parallel()
	t.Run("PLAIN", func(t *testing.T) {
		t.Parallel()
		c := loginDial(t, xmpptest.LoginRelay(loginUser, loginPassword))
		jid, err := c.Login(context.Background(), Login{Username: loginUser, Password: loginPassword, Resource: "a<b"})
		if err != nil || jid != "alice@example.org/a<b" {
			t.Fatalf("Login = %q, %v; want alice@example.org/a<b", jid, err)
		}
	})
	t.Run("server picks the resource", func(t *testing.T) {
		t.Parallel()
		c := loginDial(t, xmpptest.LoginRelay(loginUser, loginPassword))
		jid, err := c.Login(context.Background(), Login{Username: loginUser, Password: loginPassword})
		if err != nil || jid != "alice@example.org/gen" {
			t.Fatalf("Login = %q, %v; want alice@example.org/gen", jid, err)
		}
	})
	t.Run("SCRAM-SHA-1 picked, session required", func(t *testing.T) {
		t.Parallel()
		c := loginDial(t, scramServer(false))
		jid, err := c.Login(context.Background(), Login{Username: loginUser, Password: loginPassword, Resource: "web"})
		if err != nil || jid != "alice@example.org/web" {
			t.Fatalf("Login = %q, %v; want alice@example.org/web", jid, err)
		}
		// What the server sent after the session is the caller's.
		if b, err := c.Next(); err != nil || !strings.Contains(string(b), "<body>hi</body>") {
			t.Errorf("Next after Login = %s, %v; want bob's message", b, err)
		}
	})
}

func TestLoginRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		script xmpptest.Script
		login  Login
		check  func(error) bool
	}{
		{"wrong password", xmpptest.LoginRelay(loginUser, loginPassword),
			Login{Username: loginUser, Password: "wrong-" + loginPassword},
			func(err error) bool {
				var ae *AuthError
				return errors.As(err, &ae) && ae.Condition == "not-authorized"
			}},
		{"wrong password, SCRAM", scramServer(false),
			Login{Username: loginUser, Password: "wrong-" + loginPassword, Mechanism: "SCRAM-SHA-1"},
			func(err error) bool { var ae *AuthError; return errors.As(err, &ae) }},
		{"the server's SCRAM proof is wrong", scramServer(true),
			Login{Username: loginUser, Password: loginPassword},
			func(err error) bool { return err != nil && strings.Contains(err.Error(), "proof") }},
		{"mechanism not offered", xmpptest.LoginRelay(loginUser, loginPassword),
			Login{Username: loginUser, Password: loginPassword, Mechanism: "SCRAM-SHA-256"},
			func(err error) bool { return errors.Is(err, ErrNoMechanism) }},
		{"unknown mechanism", xmpptest.LoginRelay(loginUser, loginPassword),
			Login{Username: loginUser, Password: loginPassword, Mechanism: "DIGEST-MD5"},
			func(err error) bool { return err != nil && !errors.Is(err, ErrNoMechanism) }},
		{"no usable mechanism",
			xmpptest.Opened("s1", `<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>DIGEST-MD5</mechanism><mechanism>SCRAM-SHA-1-PLUS</mechanism></mechanisms></stream:features>`, (*xmpptest.Peer).Record),
			Login{Username: loginUser, Password: loginPassword},
			func(err error) bool { return errors.Is(err, ErrNoMechanism) }},
		{"bind refused",
			xmpptest.Opened("s1", xmpptest.FeaturesLogin, func(p *xmpptest.Peer) error {
				if _, err := p.Next(); err != nil {
					return err
				}
				if err := p.Send(xmpptest.Success); err != nil {
					return err
				}
				if _, err := p.ReadHeader(); err != nil {
					return err
				}
				if err := p.Send(serverHeader("s2") + xmpptest.FeaturesBound); err != nil {
					return err
				}
				if _, err := p.Next(); err != nil {
					return err
				}
				if err := p.Send(`<iq type='error' id='bind'><error type='cancel'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`); err != nil {
					return err
				}
				return p.Record()
			}),
			Login{Username: loginUser, Password: loginPassword, Resource: "taken"},
			func(err error) bool { var be *BindError; return errors.As(err, &be) && be.Condition == "conflict" }},
		{"stream error",
			xmpptest.Opened("s1", xmpptest.FeaturesLogin, func(p *xmpptest.Peer) error {
				if _, err := p.Next(); err != nil {
					return err
				}
				return p.Send(xmpptest.StreamError("policy-violation"))
			}),
			Login{Username: loginUser, Password: loginPassword},
			func(err error) bool {
				var se *StreamError
				return errors.As(err, &se) && se.Condition == "policy-violation"
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := loginDial(t, tc.script)
			jid, err := c.Login(context.Background(), tc.login)
			if jid != "" || !tc.check(err) {
				t.Fatalf("Login = %q, %v", jid, err)
			}
			if strings.Contains(err.Error(), loginPassword) {
				t.Errorf("the error %q carries the password", err)
			}
		})
	}
}

// TestLoginContext: a server that never answers the <auth/> leaves Login
// waiting until its context ends; then the stream is dropped.
func TestLoginContext(t *testing.T) {
	t.Parallel()
	c := loginDial(t, xmpptest.Opened("s1", xmpptest.FeaturesLogin, (*xmpptest.Peer).Record))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	jid, err := c.Login(ctx, Login{Username: loginUser, Password: loginPassword})
	if jid != "" || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Login = %q, %v; want context.DeadlineExceeded", jid, err)
	}
	if err := c.Write([]byte("<presence/>")); err == nil {
		t.Error("the stream is still writable after Login's context ended")
	}
}
