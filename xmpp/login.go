package xmpp

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"

	"mellium.im/sasl"
)

// Namespaces of resource binding and of the legacy session (RFC 3921 §3).
const (
	nsBind    = "urn:ietf:params:xml:ns:xmpp-bind"
	nsSession = "urn:ietf:params:xml:ns:xmpp-session"
	nsStanzas = "urn:ietf:params:xml:ns:xmpp-stanzas"
)

// Mechanisms returns the SASL mechanisms Login can use, strongest first:
// the order in which it picks one the server offers when Login.Mechanism
// is empty. Channel binding (the -PLUS variants) cannot cross a
// connection manager (see the package documentation).
func Mechanisms() []string { return []string{"SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"} }

// mechanism returns the sasl.Mechanism named name, one of Mechanisms.
func mechanism(name string) (sasl.Mechanism, bool) {
	switch name {
	case "SCRAM-SHA-256":
		return sasl.ScramSha256, true
	case "SCRAM-SHA-1":
		return sasl.ScramSha1, true
	case "PLAIN":
		return sasl.Plain, true
	}
	return sasl.Mechanism{}, false
}

// Login says whom Conn.Login logs in.
type Login struct {
	// Username is the localpart of the account's JID.
	Username string
	// Password is the account's password, or a token the server takes
	// as one (ejabberd's JWT authentication, Prosody's token modules).
	// It is sent to the server and nowhere else: no error Login returns
	// contains it.
	Password string
	// Mechanism is the SASL mechanism to use, one of Mechanisms(); empty
	// picks the first of them the server offers.
	Mechanism string
	// Resource is the resource to bind; empty lets the server pick one.
	Resource string
}

// ErrNoMechanism is returned by Login when the server offers none of the
// mechanisms it may use.
var ErrNoMechanism = errors.New("xmpp: the server offers no SASL mechanism that can be used")

// An AuthError is the server's refusal of the credentials: a SASL
// <failure/> (RFC 6120 §6.5).
type AuthError struct {
	// Condition is the failure's condition, such as "not-authorized".
	Condition string
}

func (e *AuthError) Error() string { return "xmpp: authentication failed: " + e.Condition }

// A BindError is the server's refusal to bind the resource (RFC 6120
// §7.6.2), or to open the legacy session.
type BindError struct {
	// Condition is the stanza error's condition, such as "conflict" or
	// "not-allowed"; "" if it had none.
	Condition string
}

func (e *BindError) Error() string { return "xmpp: resource binding refused: " + e.Condition }

// Login logs in on a stream Dial opened and that nothing reads yet, as a
// client would: SASL with l's credentials, the stream restart, resource
// binding, and the legacy session when the server requires it (RFC 3921
// §3). It returns the bound full JID. Once it has returned, Next reads
// what the server sends to that JID.
//
// If ctx ends first, the stream is dropped (Drop) and Login returns an
// error wrapping ctx's. Its errors are an *AuthError when the server
// refused the credentials, ErrNoMechanism, a *BindError, a *StreamError,
// or a network or protocol error; after any of them the caller closes the
// stream.
func (c *Conn) Login(ctx context.Context, l Login) (jid string, err error) {
	stop := context.AfterFunc(ctx, c.Drop)
	defer func() {
		if !stop() {
			// ctx ended: the stream is dropped, whatever came of it.
			jid, err = "", fmt.Errorf("xmpp: login: %w", context.Cause(ctx))
		}
	}()
	name, err := pickMechanism(c.features, l.Mechanism)
	if err != nil {
		return "", err
	}
	if err := c.authenticate(name, l); err != nil {
		return "", err
	}
	if err := c.Restart(); err != nil {
		return "", err
	}
	features, err := c.Next()
	if err != nil {
		return "", err
	}
	if jid, err = c.bind(l.Resource); err != nil {
		return "", err
	}
	if sessionRequired(features) {
		if err := c.iq("sess", `<session xmlns='`+nsSession+`'/>`, nil); err != nil {
			return "", err
		}
	}
	return jid, nil
}

// pickMechanism returns want if features offer it, or else the first of
// Mechanisms they offer when want is empty.
func pickMechanism(features []byte, want string) (string, error) {
	var f struct {
		Mechanisms []string `xml:"mechanisms>mechanism"`
	}
	if err := xml.Unmarshal(features, &f); err != nil {
		return "", fmt.Errorf("xmpp: stream features: %w", err)
	}
	offered := make(map[string]bool)
	for _, m := range f.Mechanisms {
		offered[strings.TrimSpace(m)] = true
	}
	if want != "" {
		if _, ok := mechanism(want); !ok {
			return "", fmt.Errorf("xmpp: SASL mechanism %q is not one of %s", want, strings.Join(Mechanisms(), ", "))
		}
		if !offered[want] {
			return "", fmt.Errorf("%w: %s is not offered", ErrNoMechanism, want)
		}
		return want, nil
	}
	for _, m := range Mechanisms() {
		if offered[m] {
			return m, nil
		}
	}
	return "", ErrNoMechanism
}

// saslReply is what the server answers a SASL step with.
type saslReply struct {
	XMLName xml.Name
	Data    string `xml:",chardata"`
	Cond    []struct {
		XMLName xml.Name
	} `xml:",any"`
}

// authenticate runs the SASL exchange with mechanism name (RFC 6120 §6.4),
// checking the server's proof where the mechanism has one (SCRAM).
func (c *Conn) authenticate(name string, l Login) error {
	m, _ := mechanism(name)
	neg := sasl.NewClient(m, sasl.Credentials(func() ([]byte, []byte, []byte) {
		return []byte(l.Username), []byte(l.Password), nil
	}))
	more, resp, err := neg.Step(nil)
	if err != nil {
		return fmt.Errorf("xmpp: SASL %s: %w", name, err)
	}
	if err := c.Write([]byte(`<auth xmlns='` + nsSASL + `' mechanism='` + name + `'>` + encode64(resp) + `</auth>`)); err != nil {
		return err
	}
	for {
		el, err := c.Next()
		if err != nil {
			return err
		}
		var r saslReply
		if err := xml.Unmarshal(el, &r); err != nil || r.XMLName.Space != nsSASL {
			return fmt.Errorf("xmpp: SASL: unexpected %.100q", el)
		}
		data, err := decode64(r.Data)
		if err != nil {
			return fmt.Errorf("xmpp: SASL %s: %w", r.XMLName.Local, err)
		}
		switch r.XMLName.Local {
		case "challenge":
			if !more {
				return fmt.Errorf("xmpp: SASL %s: a challenge after the last step", name)
			}
			if more, resp, err = neg.Step(data); err != nil {
				return fmt.Errorf("xmpp: SASL %s: %w", name, err)
			}
			if err := c.Write([]byte(`<response xmlns='` + nsSASL + `'>` + encode64(resp) + `</response>`)); err != nil {
				return err
			}
		case "success":
			if more {
				// The server's last word (SCRAM's signature) comes
				// with its success (RFC 6120 §6.3.10).
				if _, _, err := neg.Step(data); err != nil {
					return fmt.Errorf("xmpp: SASL %s: the server's proof: %w", name, err)
				}
			}
			return nil
		case "failure":
			cond := ""
			for _, e := range r.Cond {
				if e.XMLName.Local != "text" {
					cond = e.XMLName.Local
					break
				}
			}
			return &AuthError{Condition: cond}
		default:
			return fmt.Errorf("xmpp: SASL: unexpected <%s/>", r.XMLName.Local)
		}
	}
}

// encode64 returns SASL data as XMPP carries it: base64, "=" for empty
// (RFC 6120 §6.4.2).
func encode64(b []byte) string {
	if len(b) == 0 {
		return "="
	}
	return base64.StdEncoding.EncodeToString(b)
}

// decode64 decodes SASL data as XMPP carries it.
func decode64(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "=" {
		return nil, nil
	}
	return base64.StdEncoding.DecodeString(s)
}

// bind binds resource, or one the server picks if it is empty, and
// returns the full JID (RFC 6120 §7).
func (c *Conn) bind(resource string) (string, error) {
	var b bytes.Buffer
	b.WriteString(`<bind xmlns='` + nsBind + `'>`)
	if resource != "" {
		b.WriteString("<resource>")
		xml.EscapeText(&b, []byte(resource))
		b.WriteString("</resource>")
	}
	b.WriteString("</bind>")
	var result struct {
		JID string `xml:"bind>jid"`
	}
	if err := c.iq("bind", b.String(), &result); err != nil {
		return "", err
	}
	if result.JID == "" {
		return "", errors.New("xmpp: resource binding: no JID in the result")
	}
	return result.JID, nil
}

// iq sends an iq of type set with id and payload, waits for its answer,
// and decodes a result into v (if not nil). An error answer is a
// *BindError. The stream carries nothing else for the client at this
// point; anything else the server sends is an error.
func (c *Conn) iq(id, payload string, v any) error {
	if err := c.Write([]byte(`<iq xmlns='` + nsClient + `' type='set' id='` + id + `'>` + payload + `</iq>`)); err != nil {
		return err
	}
	el, err := c.Next()
	if err != nil {
		return err
	}
	var r struct {
		XMLName xml.Name
		ID      string `xml:"id,attr"`
		Type    string `xml:"type,attr"`
		Error   struct {
			Conds []struct {
				XMLName xml.Name
			} `xml:",any"`
		} `xml:"error"`
	}
	if err := xml.Unmarshal(el, &r); err != nil || r.XMLName.Local != "iq" || r.ID != id {
		return fmt.Errorf("xmpp: waiting for the answer to iq %s: unexpected %.100q", id, el)
	}
	switch r.Type {
	case "result":
		if v != nil {
			return xml.Unmarshal(el, v)
		}
		return nil
	case "error":
		cond := ""
		for _, e := range r.Error.Conds {
			if e.XMLName.Space == nsStanzas && e.XMLName.Local != "text" {
				cond = e.XMLName.Local
				break
			}
		}
		return &BindError{Condition: cond}
	}
	return fmt.Errorf("xmpp: iq %s answered with type %q", id, r.Type)
}

// sessionRequired reports whether features offer the legacy session
// (RFC 3921 §3) without marking it optional (RFC 6121 appendix E).
func sessionRequired(features []byte) bool {
	var f struct {
		Session *struct {
			Optional *struct{} `xml:"optional"`
		} `xml:"session"`
	}
	if xml.Unmarshal(features, &f) != nil || f.Session == nil {
		return false
	}
	return f.Session.Optional == nil
}
