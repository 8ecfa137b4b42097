package xmpptest

import (
	"encoding/xml"
	"errors"
	"fmt"
	"strings"

	"github.com/boshd/boshd/internal/rawxml"
)

// FeaturesLogin are the features a LoginRelay server offers before
// authentication, and FeaturesBound those after it.
const (
	FeaturesLogin = `<stream:features><mechanisms xmlns='` + NSSASL + `'><mechanism>PLAIN</mechanism></mechanisms></stream:features>`
	FeaturesBound = `<stream:features><bind xmlns='` + NSBind + `'/><session xmlns='` + NSSession + `'><optional/></session></stream:features>`
)

// LoginRelay returns the Script of a server that logs in one account as
// a real one does, then relays: it opens the stream with FeaturesLogin,
// takes SASL PLAIN for user with password (a <failure/> with
// not-authorized otherwise, after which the client may try again or
// close, its </stream:stream> recorded), reads the restarted stream's header and sends FeaturesBound,
// binds the resource the client asks for (or "gen" if none) on
// user@Domain, and then records all the client sends, as Relay does.
// Test pushes (Server.Push) go to the latest connection.
func LoginRelay(user, password string) Script {
	return func(p *Peer) error {
		err := loginRelay(p, user, password)
		if errors.Is(err, rawxml.ErrRootEnd) {
			// The client closed its stream before the relay began:
			// recorded, so that a test can wait for it.
			p.srv.mu.Lock()
			p.srv.got.WriteString(StreamEnd)
			p.srv.mu.Unlock()
			return nil
		}
		if Ended(err) {
			return nil
		}
		return err
	}
}

func loginRelay(p *Peer, user, password string) error {
	if err := p.Open("s1", FeaturesLogin); err != nil {
		return err
	}
	for {
		auth, err := p.Next()
		if err != nil {
			return err
		}
		if plainCredentials(auth) == "\x00"+user+"\x00"+password {
			break
		}
		if err := p.Send(Failure("not-authorized")); err != nil {
			return err
		}
	}
	if err := p.Send(Success); err != nil {
		return err
	}
	if _, err := p.ReadHeader(); err != nil {
		return fmt.Errorf("reading the restarted header: %w", err)
	}
	if err := p.Send(Header("s2", Domain) + FeaturesBound); err != nil {
		return err
	}
	el, err := p.Next()
	if err != nil {
		return err
	}
	var iq struct {
		ID       string `xml:"id,attr"`
		Resource string `xml:"bind>resource"`
	}
	if err := xml.Unmarshal([]byte(el), &iq); err != nil {
		return fmt.Errorf("reading the bind request %s: %w", el, err)
	}
	if iq.Resource == "" {
		iq.Resource = "gen"
	}
	var jid strings.Builder
	xml.EscapeText(&jid, []byte(user+"@"+Domain+"/"+iq.Resource))
	if err := p.Send(`<iq type='result' id='` + iq.ID + `'><bind xmlns='` + NSBind + `'><jid>` + jid.String() + `</jid></bind></iq>`); err != nil {
		return err
	}
	return p.Record()
}

// plainCredentials returns the decoded message of a SASL PLAIN <auth/>
// element, "" if it is not one.
func plainCredentials(auth string) string {
	if !strings.Contains(auth, "mechanism='PLAIN'") && !strings.Contains(auth, `mechanism="PLAIN"`) {
		return ""
	}
	return plainMessage(auth)
}
