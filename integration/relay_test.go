package integration

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/boshd/boshd/config"
)

// End-to-end scenarios: a Strophe-like BOSH client (client_test.go) talks to
// boshd's handler, mounted in-process on an httptest.Server, which relays to
// a real Prosody (prosody_test.go). Comments cite the XEP sections each
// scenario covers; docs/CONFORMANCE.md says what each section requires.

// login creates a session on url and logs user in to p with mechanism.
func login(t *testing.T, url string, p *prosody, user, mechanism, resource string) (*Client, loginResult) {
	t.Helper()
	c := newClient(t, user, url)
	c.MustCreate()
	return c, c.Login(mechanism, user, p.Passwords[user], resource)
}

// goOnline sends initial presence and waits until Prosody has processed it.
func goOnline(t *testing.T, clients ...*Client) {
	t.Helper()
	for _, c := range clients {
		c.Send("<presence xmlns='" + nsClient + "'/>")
		c.Sync()
	}
}

// checkTerminate fails t unless body is <body type='terminate'
// condition='cond'/> in the httpbind namespace.
func checkTerminate(t *testing.T, body *Element, cond string) {
	t.Helper()
	if !body.Is(nsHTTPBind, "body") || body.Attr("type") != "terminate" || body.Attr("condition") != cond {
		t.Fatalf("want <body type='terminate' condition='%s'/>, got %s", cond, body)
	}
}

// TestCreationResponse checks the attributes of the session creation
// response (j): XEP-0124 §19.3, §7.2, §7.1,
// §5; XEP-0206 §4.
func TestCreationResponse(t *testing.T) {
	parallel(t)
	const maxWait = 10 * time.Second
	st := startStack(t, prosodyOptions{}, func(cfg *config.Config) { cfg.MaxWait = maxWait })
	url := st.URL

	const requestedWait = 60
	first := newClient(t, "first", url)
	ex := first.Create(createOptions{Wait: requestedWait, Hold: 1})
	body := ex.Body
	if body.Attr("type") == "terminate" {
		t.Fatalf("session refused: %s", ex.Raw)
	}

	// HTTP level.
	if got := ex.Header.Get("Content-Type"); got != "text/xml; charset=utf-8" {
		t.Errorf("Content-Type = %q, want the creation content value (XEP-0124 §7.2)", got)
	}
	if ex.Length < 0 || len(ex.Encoding) > 0 {
		t.Errorf("response not sent with Content-Length (length %d, Transfer-Encoding %v) (XEP-0124 §5)", ex.Length, ex.Encoding)
	}

	integer := func(lo, hi int) func(string) error {
		return func(v string) error {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("not an integer")
			}
			if n < lo || n > hi {
				return fmt.Errorf("outside [%d, %d]", lo, hi)
			}
			return nil
		}
	}
	equals := func(want string) func(string) error {
		return func(v string) error {
			if v != want {
				return fmt.Errorf("want %q", want)
			}
			return nil
		}
	}
	grantedWait := min(requestedWait, int(maxWait/time.Second))
	checks := []struct {
		req         string
		space, name string
		check       func(string) error
	}{
		{"XEP-0124 §19.3", "", "sid", func(v string) error {
			if len(v) < 22 {
				return fmt.Errorf("shorter than 22 characters (128 random bits)")
			}
			return nil
		}},
		{"XEP-0124 §7.2, §7.1", "", "wait", integer(1, grantedWait)},
		{"XEP-0124 §7.2", "", "requests", equals("2")},
		{"XEP-0124 §7.2, §7.1", "", "hold", equals("1")},
		{"XEP-0124 §7.2", "", "ver", func(v string) error {
			major, minor, ok := strings.Cut(v, ".")
			mi, err := strconv.Atoi(minor)
			if !ok || major != "1" || err != nil || mi > 6 {
				return fmt.Errorf("want 1.x with x <= 6 (the lower of 1.6 and the CM's)")
			}
			return nil
		}},
		{"XEP-0124 §7.2", "", "polling", integer(0, 1<<20)},
		{"XEP-0124 §7.2", "", "inactivity", integer(1, 1<<20)},
		{"XEP-0124 §7.2", "", "maxpause", integer(1, 1<<20)},
		{"XEP-0124 §7.2", "", "from", equals(prosodyDomain)},
		{"XEP-0206 §4", nsXBOSH, "version", equals("1.0")},
		{"XEP-0206 §4", nsXBOSH, "restartlogic", equals("true")},
	}
	for _, c := range checks {
		v, ok := body.AttrNS(c.space, c.name)
		if !ok {
			t.Errorf("%s: creation response lacks {%s}%s: %s", c.req, c.space, c.name, ex.Raw)
			continue
		}
		if err := c.check(v); err != nil {
			t.Errorf("%s: {%s}%s=%q: %v", c.req, c.space, c.name, v, err)
		}
	}

	// XEP-0206 §4, §2: the features come with the creation
	// response, and the body declares the stream prefix.
	if decl, _ := body.AttrNS(nsXMLNS, "stream"); decl != nsStream {
		t.Errorf("XEP-0206 §2: creation body does not declare xmlns:stream=%q: %s", nsStream, ex.Raw)
	}
	features := body.Child(nsStream, "features")
	if features == nil {
		t.Fatalf("XEP-0206 §4: creation response has no <stream:features/>: %s", ex.Raw)
	}
	if len(mechanisms(features)) == 0 {
		t.Errorf("features offer no SASL mechanisms: %s", features)
	}

	// XEP-0124 §19.3: every session gets its own sid.
	second := newClient(t, "second", url)
	other := second.MustCreate()
	if other.Attr("sid") == body.Attr("sid") {
		t.Errorf("XEP-0124 §19.3: two sessions share sid %q", other.Attr("sid"))
	}
}

// TestLoginPLAINRoster logs in with SASL PLAIN, restarts, binds and fetches
// the roster (a): XEP-0206 §5; XEP-0124 §8.
func TestLoginPLAINRoster(t *testing.T) {
	parallel(t)
	st := startStack(t, prosodyOptions{}, nil)

	alice, res := st.Login("alice", "PLAIN", "web")
	if want := "alice@localhost/web"; res.JID != want {
		t.Errorf("bound JID = %q, want %q", res.JID, want)
	}
	reply := alice.MustIQ("get", "", "<query xmlns='"+nsRoster+"'/>")
	if reply.Child(nsRoster, "query") == nil {
		t.Errorf("roster result without <query xmlns='%s'/>: %s", nsRoster, reply)
	}
}

// TestLoginSCRAMSHA1 logs in with SCRAM-SHA-1 against Prosody's hashed
// credentials (b). A wrong password first gets Prosody's <failure/>
// relayed, and the session survives it for a second attempt: XEP-0124 §17.4,
// XEP-0206 §5.
func TestLoginSCRAMSHA1(t *testing.T) {
	parallel(t)
	st := startStack(t, prosodyOptions{}, nil)
	p := st.P

	alice := newClient(t, "alice", st.URL)
	alice.MustCreate()
	features := alice.WaitFor("initial <stream:features/>", isFeatures)
	if !slices.Contains(mechanisms(features), "SCRAM-SHA-1") {
		t.Fatalf("SCRAM-SHA-1 not offered: %s", features)
	}

	failure := alice.Authenticate(features, "SCRAM-SHA-1", "alice", "not-"+p.Passwords["alice"])
	if !failure.Is(nsSASL, "failure") || failure.Child(nsSASL, "not-authorized") == nil {
		t.Fatalf("wrong password: want <failure><not-authorized/></failure>, got %s", failure)
	}

	if final := alice.Authenticate(features, "SCRAM-SHA-1", "alice", p.Passwords["alice"]); !final.Is(nsSASL, "success") {
		t.Fatalf("SCRAM-SHA-1 with the right password: %s", final)
	}
	res := alice.RestartAndBind("scram")
	if want := "alice@localhost/scram"; res.JID != want {
		t.Errorf("bound JID = %q, want %q", res.JID, want)
	}
	alice.Sync()
}

// TestMessageRelay sends messages from alice to bob, both logged in through
// boshd with initial presence (c). Bodies with markup characters and
// non-ASCII text arrive intact and in order: XEP-0124 §8,
// XEP-0206 §2; XEP-0124 §7.2.
func TestMessageRelay(t *testing.T) {
	parallel(t)
	alice, aliceJID, bob, _ := startStack(t, prosodyOptions{}, nil).Pair("SCRAM-SHA-1")

	texts := []string{
		"Hello, Bob!",
		`<b>not markup</b> & 'single' "double" ]]> &amp;`,
		"ünïcödé ✓ 日本語 🎉",
	}
	for i, text := range texts {
		alice.Send(fmt.Sprintf("<message xmlns='%s' to='bob@localhost' type='chat' id='m%d'><body>%s</body></message>",
			nsClient, i, escape(text)))
	}
	for i, want := range texts {
		m := bob.WaitFor(fmt.Sprintf("message m%d from alice", i), isStanza("message", attrIs("from", aliceJID)))
		if id := m.Attr("id"); id != fmt.Sprintf("m%d", i) {
			t.Errorf("message %d has id %q: out of order", i, id)
		}
		if got := m.ChildText(nsClient, "body"); got != want {
			t.Errorf("message %d body = %q, want %q", i, got, want)
		}
	}
}

// TestTerminateWithUnavailablePresence ends alice's session with an
// unavailable presence in the terminate body (d): Prosody gets the payload
// before the stream closes (bob, who had alice's directed presence, sees
// her status text), and the terminate is answered with type='terminate'.
// XEP-0124 §13.
func TestTerminateWithUnavailablePresence(t *testing.T) {
	parallel(t)
	st := startStack(t, prosodyOptions{}, nil)
	alice, aliceJID, bob, bobJID := st.Pair("PLAIN")

	// Directed presence makes Prosody route alice's unavailable presence
	// to bob without a roster subscription.
	alice.Send(fmt.Sprintf("<presence xmlns='%s' to='%s'/>", nsClient, bobJID))
	bob.WaitFor("alice's directed presence", isStanza("presence", attrIs("from", aliceJID), attrIs("type", "")))

	sid := alice.SID()
	next := alice.NextRID()
	const status = "gone home"
	resp := alice.Terminate(fmt.Sprintf("<presence type='unavailable' xmlns='%s'><status>%s</status></presence>", nsClient, status))
	checkTerminateType(t, resp)

	// The status proves the payload itself reached Prosody: on a stream
	// closed without it, Prosody would make up its own unavailable presence.
	pres := bob.WaitFor("alice's unavailable presence",
		isStanza("presence", attrIs("from", aliceJID), attrIs("type", "unavailable")))
	if got := pres.ChildText(nsClient, "status"); got != status {
		t.Errorf("unavailable presence status = %q, want %q (the terminate payload was not forwarded): %s", got, status, pres)
	}

	// XEP-0124 §13: the session is gone.
	after := newClient(t, "after", st.URL)
	ex := after.RawPost(fmt.Sprintf("<body rid='%d' sid='%s' xmlns='%s'/>", next+1, sid, nsHTTPBind))
	checkTerminate(t, ex.Body, "item-not-found")
}

// checkTerminateType fails t unless body is a type='terminate' body without
// an error condition (XEP-0124 §13).
func checkTerminateType(t *testing.T, body *Element) {
	t.Helper()
	if !body.Is(nsHTTPBind, "body") || body.Attr("type") != "terminate" {
		t.Fatalf("terminate response: want <body type='terminate'/>, got %s", body)
	}
	if cond := body.Attr("condition"); cond != "" {
		t.Errorf("terminate response carries condition %q: %s", cond, body)
	}
}

// TestResourceConflict logs alice in twice with the same resource (e).
// Prosody replaces the first session with a <conflict/> stream error, which
// boshd must hand to the first client as a remote-stream-error body that
// declares the stream prefix and holds the whole <stream:error/>: XEP-0206 §2,
// §6; XEP-0124 §17.2, §13.
func TestResourceConflict(t *testing.T) {
	parallel(t)
	st := startStack(t, prosodyOptions{}, nil)

	first, _ := st.Login("alice", "PLAIN", "web")
	first.Sync()
	second, res := st.Login("alice", "SCRAM-SHA-1", "web")
	if want := "alice@localhost/web"; res.JID != want {
		t.Errorf("second session bound %q, want %q", res.JID, want)
	}

	term := first.WaitTerminated()
	checkTerminate(t, term, "remote-stream-error")
	if decl, _ := term.AttrNS(nsXMLNS, "stream"); decl != nsStream {
		t.Errorf("XEP-0206 §2: body does not declare xmlns:stream=%q: %s", nsStream, term)
	}
	streamErr := term.Child(nsStream, "error")
	if streamErr == nil {
		t.Fatalf("XEP-0206 §6: no <stream:error/> in %s", term)
	}
	if streamErr.Child(nsStreams, "conflict") == nil {
		t.Errorf("XEP-0206 §6: <stream:error/> without <conflict xmlns='%s'/>: %s", nsStreams, streamErr)
	}

	second.Sync() // the new session is unaffected
}

// TestUpstreamLost ends Prosody while a session is live (f). Killed, its
// TCP connection drops without a closing tag: the held (or next) request
// gets remote-connection-failed (XEP-0124 §13). Stopped gracefully, Prosody
// first sends a system-shutdown stream error, which must be relayed as
// remote-stream-error (XEP-0124 §17.2; XEP-0206 §6).
func TestUpstreamLost(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		stop      func(*prosody)
		condition string
		streamErr string // expected stream error condition, if any
	}{
		{"killed", (*prosody).Kill, "remote-connection-failed", ""},
		{"stopped", (*prosody).Stop, "remote-stream-error", "system-shutdown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parallel(t)
			// A wait longer than eventTimeout: the answer must come from
			// the lost upstream, not from the wait running out.
			st := startStack(t, prosodyOptions{}, func(cfg *config.Config) { cfg.MaxWait = 2 * eventTimeout })
			p := st.P

			alice, _ := st.Login("alice", "PLAIN", "web")
			goOnline(t, alice)

			stopped := make(chan struct{})
			go func() {
				defer close(stopped)
				tt.stop(p)
			}()
			term := alice.WaitTerminated()
			if tt.streamErr != "" && term.Attr("condition") == "remote-connection-failed" {
				// Prosody's shutdown can reset the connection before its
				// stream error is read (a reset may discard data the
				// kernel already received): the client is still told.
				t.Logf("stream error lost to a connection reset: %s", term)
				return
			}
			checkTerminate(t, term, tt.condition)
			if tt.streamErr != "" {
				se := term.Child(nsStream, "error")
				if se == nil || se.Child(nsStreams, tt.streamErr) == nil {
					t.Errorf("want <stream:error><%s/></stream:error> in %s", tt.streamErr, term)
				}
			}
			select {
			case <-stopped:
			case <-time.After(2 * prosodyStopTimeout):
				t.Errorf("prosody did not exit")
			}
			if p.Running() {
				t.Errorf("prosody still running")
			}
		})
	}
}

// TestUpstreamSTARTTLS runs boshd against a Prosody that requires STARTTLS
// with a certificate from a test CA (g). With the CA configured the login
// works (Prosody offers no SASL before TLS, so a login proves it); with
// the system roots, session creation fails with remote-connection-failed.
// XEP-0124 §19.2; XEP-0206 §2.
func TestUpstreamSTARTTLS(t *testing.T) {
	parallel(t)
	p := startProsody(t, prosodyOptions{TLS: true})
	tests := []struct {
		name   string
		mode   string // Config.UpstreamTLS
		caFile string
		wantOK bool
	}{
		{"starttls with CA", "starttls", p.CAFile, true},
		{"required with CA", "required", p.CAFile, true},
		{"starttls with system roots", "starttls", "", false},
		{"required with system roots", "required", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := prosodyConfig(p)
			cfg.UpstreamTLS = tt.mode
			cfg.UpstreamCAFile = tt.caFile
			url := startBoshd(t, cfg)
			if !tt.wantOK {
				c := newClient(t, "alice", url)
				checkTerminate(t, c.Create(createOptions{}).Body, "remote-connection-failed")
				return
			}
			alice, res := login(t, url, p, "alice", "SCRAM-SHA-1", "tls")
			if want := "alice@localhost/tls"; res.JID != want {
				t.Errorf("bound JID = %q, want %q", res.JID, want)
			}
			alice.MustIQ("get", "", "<query xmlns='"+nsRoster+"'/>")
		})
	}
}

// TestRelayParkedUpstream relays between two sessions whose upstream
// streams are parked while idle (docs/design/002), over plaintext and
// over STARTTLS: each burst from the client reaches the other side whole
// and in order (a body larger than a TLS record and a read buffer among
// small ones), and the streams park again after each.
func TestRelayParkedUpstream(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts prosodyOptions
		mode string // Config.UpstreamTLS
	}{
		{"plaintext", prosodyOptions{}, "plaintext"},
		{"starttls", prosodyOptions{TLS: true}, "required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parallel(t)
			st := startStack(t, tt.opts, func(cfg *config.Config) { cfg.UpstreamTLS = tt.mode })
			alice, aliceJID, bob, _ := st.Pair("PLAIN")

			const parked = "boshd_upstreams_parked"
			big := strings.Repeat("0123456789abcdef", 40<<10/16) // 40 KiB: several TLS records
			id := 0
			for burst := range 3 {
				st.WaitMetric(t, parked, fmt.Sprintf("before burst %d", burst), func(v float64) bool { return v == 2 })
				var payload strings.Builder
				var want []string
				for i := range 12 {
					text := fmt.Sprintf("burst %d message %d", burst, i)
					if i == 5 {
						text = big
					}
					id++
					fmt.Fprintf(&payload, "<message xmlns='%s' to='bob@localhost' type='chat' id='p%d'><body>%s</body></message>",
						nsClient, id, text)
					want = append(want, text)
				}
				alice.Send(payload.String())
				for i, text := range want {
					wantID := fmt.Sprintf("p%d", id-len(want)+1+i)
					m := bob.WaitFor("message "+wantID, isStanza("message", attrIs("from", aliceJID)))
					if got := m.Attr("id"); got != wantID {
						t.Fatalf("burst %d: got message %s, want %s: out of order", burst, got, wantID)
					}
					if got := m.ChildText(nsClient, "body"); got != text {
						t.Fatalf("message %s: body of %d bytes, want %d", wantID, len(got), len(text))
					}
				}
			}
		})
	}
}

// TestCreationAddressing refuses creation requests with an unserved or
// missing to (h) without ever connecting upstream: the only upstream is a
// counting proxy in front of Prosody. XEP-0124 §17.2, §7.2.
func TestCreationAddressing(t *testing.T) {
	parallel(t)
	p := startProsody(t, prosodyOptions{})
	proxy := startProxy(t, p.Addr)
	url := startBoshd(t, testConfig(map[string]string{p.Domain: proxy.Addr}))

	tests := []struct {
		name      string
		opts      createOptions
		condition string
	}{
		{"unserved to", createOptions{To: "unserved.example"}, "host-unknown"},
		{"unserved IP to", createOptions{To: "127.0.0.1"}, "host-unknown"},
		{"missing to", createOptions{NoTo: true}, "improper-addressing"},
		{"empty to", createOptions{NoTo: true, Extras: "to=''"}, "improper-addressing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, "client", url)
			ex := c.Create(tt.opts)
			checkTerminate(t, ex.Body, tt.condition)
			if got := ex.Header.Get("Content-Type"); got != "text/xml; charset=utf-8" {
				t.Errorf("Content-Type = %q (XEP-0124 §7.2)", got)
			}
			if n := proxy.Accepted(); n != 0 {
				t.Errorf("boshd opened %d upstream connection(s) for a refused session", n)
			}
		})
	}

	// Control: the proxy does see a real session's connection.
	c := newClient(t, "control", url)
	c.MustCreate()
	c.WaitFor("<stream:features/>", isFeatures)
	if n := proxy.Accepted(); n != 1 {
		t.Errorf("upstream connections after one session = %d, want 1", n)
	}
}

// TestFeaturesFiltered checks what boshd relays of Prosody's features (i).
// Prosody offers STARTTLS, SCRAM-SHA-1-PLUS (over TLS 1.2, for tls-unique)
// and stream management; the client must see no <starttls/> (XEP-0206 §2), no
// -PLUS mechanism (the channel binding would be boshd's TLS, not the
// client's) and no urn:xmpp:sm:* (stream management belongs to the
// boshd–Prosody stream, not the BOSH session). After STARTTLS upstream
// Prosody no longer offers <starttls/>, so the STARTTLS case uses a boshd
// in plaintext mode in front of a Prosody that offers it optionally.
func TestFeaturesFiltered(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		opts        prosodyOptions
		upstreamTLS string
		offers      []string // what Prosody must offer directly: starttls, plus, sm
	}{
		{"starttls upstream", prosodyOptions{TLS: true, TLS12: true, Smacks: true}, "starttls", []string{"starttls", "plus", "sm"}},
		{"plaintext upstream", prosodyOptions{TLS: true, TLSOptional: true, Smacks: true}, "plaintext", []string{"starttls", "sm"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parallel(t)
			p := startProsody(t, tt.opts)

			// What Prosody offers directly, so the test cannot pass
			// vacuously.
			directInitial, directPreAuth, directPostAuth := directFeatures(t, p, "bob")
			hasPlus := slices.ContainsFunc(mechanisms(directPreAuth), func(m string) bool { return strings.HasSuffix(m, "-PLUS") })
			offered := map[string]bool{
				"starttls": directInitial.Child(nsTLS, "starttls") != nil,
				"plus":     hasPlus,
				"sm":       directPostAuth.Child(nsSM3, "sm") != nil,
			}
			for _, want := range tt.offers {
				if !offered[want] {
					t.Fatalf("prosody itself does not offer %s: %s %s %s", want, directInitial, directPreAuth, directPostAuth)
				}
			}

			cfg := prosodyConfig(p)
			cfg.UpstreamTLS = tt.upstreamTLS
			url := startBoshd(t, cfg)
			_, res := login(t, url, p, "alice", "PLAIN", "web")
			for _, f := range []struct {
				name     string
				features *Element
			}{
				{"initial", res.Features},
				{"after restart", res.RestartFeatures},
			} {
				checkRelayedFeatures(t, f.name, f.features, false)
			}
			if !slices.Contains(mechanisms(res.Features), "PLAIN") {
				t.Errorf("initial features lack PLAIN: %s", res.Features)
			}
		})
	}
}

// checkRelayedFeatures fails t if features, relayed by boshd, offer what
// a web client cannot use (RFC 7395 §3.9, XEP-0206): STARTTLS, SASL
// channel binding (-PLUS), and, unless keepSM (WebSocket), stream
// management. name says which features, for the message.
func checkRelayedFeatures(t *testing.T, name string, features *Element, keepSM bool) {
	t.Helper()
	for _, child := range features.Children {
		switch {
		case child.Name.Space == nsTLS:
			t.Errorf("%s features relay STARTTLS: %s", name, child)
		case !keepSM && strings.HasPrefix(child.Name.Space, "urn:xmpp:sm:"):
			t.Errorf("%s features relay stream management: %s", name, child)
		}
	}
	for _, m := range mechanisms(features) {
		if strings.HasSuffix(m, "-PLUS") {
			t.Errorf("%s features relay channel-binding mechanism %s", name, m)
		}
	}
}
