package bosh

import (
	"errors"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/boshd/boshd/gateway"
	"github.com/boshd/boshd/session"
	"github.com/boshd/boshd/xmpp"
)

// version is the highest BOSH version boshd speaks (XEP-0124 §17.1).
const version = "1.11"

var (
	verPattern  = regexp.MustCompile(`^[0-9]{1,4}\.[0-9]{1,4}$`)
	langPattern = regexp.MustCompile(`^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$`)
)

// create makes a new session: it validates the request, opens the
// upstream stream and answers with the session's parameters and the
// server's first <stream:features/> (XEP-0206 §4).
func (h *Handler) create(w http.ResponseWriter, r *http.Request, b *body) {
	c, err := h.negotiate(b)
	if err != nil {
		h.log.Info("session refused", "err", err, "remote", r.RemoteAddr)
		h.refuse(w, c.content, c.params.Legacy, err)
		return
	}
	if h.g.Stopping() {
		h.refuse(w, c.content, c.params.Legacy, &requestError{cond: session.SystemShutdown, msg: "shutting down"})
		return
	}
	if h.g.Draining() {
		// docs/design/004-cluster.md, "Drain": an HTTP error, not a
		// terminate body, so that a balancer (retry-on 503) or the client
		// tries again, on another node. With peers, the creation went
		// to one of them instead (drainforward.go), unless a peer
		// forwarded it here.
		h.refuseCreation(w, "draining: no new sessions here, retry")
		return
	}
	// docs/CONFORMANCE.md#limits: the slot is taken before dialling, so that a client over
	// its limit never reaches the upstream, and given back when the
	// session is forgotten, or now if none is made.
	ip, forwardIgnored := h.clientIP(r)
	release, err := h.g.Acquire(ip)
	if err != nil {
		h.g.LogRefusal(r.Context(), ip, forwardIgnored, err)
		h.refuse(w, c.content, c.params.Legacy, &requestError{cond: session.PolicyViolation, msg: err.Error()})
		return
	}
	// Until the session is registered, the slot and the upstream stream
	// are this function's to give back, on every path out of it, a
	// panic's included.
	created := false
	var conn *xmpp.Conn
	defer func() {
		if !created {
			release()
			if conn != nil {
				conn.Close()
			}
		}
	}()
	conn, err = h.g.Dial(r.Context(), c.target)
	if err != nil {
		var serr *xmpp.StreamError
		if errors.As(err, &serr) {
			h.log.Info("upstream refused the stream", "domain", c.domain, "condition", serr.Condition)
			resp := &session.Response{Type: session.TypeTerminate, Condition: session.RemoteStreamError, Payload: [][]byte{serr.Raw}}
			setOutcome(w, "refused")
			writeResponse(w, http.StatusOK, c.content, resp)
			return
		}
		h.log.Warn("upstream connection failed", "domain", c.domain, "addr", c.target.Addr, "err", err)
		h.refuse(w, c.content, c.params.Legacy, &requestError{cond: session.RemoteConnectionFailed, msg: err.Error()})
		return
	}
	c.params.Secure = h.overTLS(r) // XEP-0124 §19.1
	c.params.OnEnd = release
	c.params.Client = ip
	s, err := h.sessions.Create(c.params, conn, b.rid)
	if err != nil {
		h.refuse(w, c.content, c.params.Legacy, &requestError{cond: session.SystemShutdown, msg: err.Error()})
		return
	}
	h.metrics.SessionCreated()
	created = true
	h.log.Info("session client", "sid", s.LogID(), "ip", ip, "peer", r.RemoteAddr)
	resp := &session.Response{RID: b.rid, Payload: [][]byte{conn.Features()}}
	// XEP-0124 §7.2: gzipped requests are always accepted.
	attrs := append(h.creationAttrs(s, c, conn), attr{"accept", "gzip"})
	writeResponse(w, http.StatusOK, c.content, resp, attrs...)
}

// creation is a validated session creation request.
type creation struct {
	target  xmpp.Target
	params  session.Params
	ver     string // the version both sides speak, for the response
	content string // Content-Type of every response
	domain  string // the served domain, for the response's from
}

// negotiate validates a creation request (XEP-0124 §7.1, XEP-0206 §3)
// against the configuration and works out the session's parameters and
// where its upstream stream goes. It dials nothing.
func (h *Handler) negotiate(b *body) (*creation, error) {
	c := &creation{content: defaultContentType}
	if b.content != "" {
		// XEP-0124 §7.1
		if mt, _, err := mime.ParseMediaType(b.content); err != nil || !strings.Contains(mt, "/") {
			return c, badRequest("content %q is not a media type", b.content)
		}
		c.content = b.content
	}

	// XEP-0124 §7.1: a client without ver is a legacy one (XEP-0124 §17.1).
	c.ver = version
	if b.ver == "" {
		c.params.Legacy = true
	} else {
		if !verPattern.MatchString(b.ver) {
			return c, badRequest("ver %q is not major.minor", b.ver)
		}
		if olderVersion(b.ver, version) {
			c.ver = b.ver
		}
	}

	// XEP-0124 §7.1
	if !b.hasWait {
		return c, badRequest("missing wait")
	}
	wait, err := strconv.ParseUint(b.wait, 10, 32)
	if err != nil {
		return c, badRequest("wait must be a whole number of seconds, got %q", b.wait)
	}
	c.params.Wait = min(time.Duration(wait)*time.Second, h.cfg.MaxWait.Truncate(time.Second))
	hold := uint64(1)
	if b.hasHold {
		if hold, err = strconv.ParseUint(b.hold, 10, 32); err != nil {
			return c, badRequest("hold must be a whole number, got %q", b.hold)
		}
	}
	c.params.Hold = int(min(hold, uint64(h.cfg.MaxHold)))
	c.params.Requests = c.params.Hold + 1
	c.params.Inactivity = h.cfg.Inactivity
	c.params.MaxQueueBytes = h.cfg.MaxQueueBytes
	c.params.ContentType = c.content
	c.params.Polling = h.cfg.Polling
	c.params.MultiStream = h.cfg.MultipleStreams
	// XEP-0124 §7.1: only ack='1' turns acknowledgements on.
	c.params.Acks = b.ack == "1"
	// XEP-0124 §15.3: newkey at creation starts key sequencing.
	c.params.Key = b.newkey

	if b.lang != "" && !langPattern.MatchString(b.lang) {
		return c, badRequest("xml:lang %q is not a language tag", b.lang)
	}
	c.target.Lang = b.lang
	if b.xmppVersion != "" && !verPattern.MatchString(b.xmppVersion) {
		return c, badRequest("xmpp:version %q is not major.minor", b.xmppVersion)
	}
	if b.xmppVersion != "" && !strings.HasPrefix(b.xmppVersion, "1.") {
		return c, badRequest("xmpp:version %q is not supported, only 1.0", b.xmppVersion)
	}
	if b.from != "" {
		// XEP-0124 §7.1: a well-formed from goes on the stream header.
		from, err := jid.Parse(b.from)
		if err != nil {
			return c, badRequest("from %q is not a JID: %v", b.from, err)
		}
		c.target.From = from.String()
	}

	target, err := h.target(b)
	if err != nil {
		return c, err
	}
	target.Lang, target.From = c.target.Lang, c.target.From
	c.target = target
	c.domain = target.Domain
	c.params.Domain = target.Domain
	return c, nil
}

// target works out where the stream a request asks for goes
// (gateway.Gateway.Target), refusing it with the binding condition of the
// gateway's refusal. It dials nothing.
func (h *Handler) target(b *body) (xmpp.Target, error) {
	t, err := h.g.Target(b.to, b.route)
	if err != nil {
		var te *gateway.TargetError
		if errors.As(err, &te) {
			return t, &requestError{cond: session.Condition(te.Condition), msg: te.Msg}
		}
		return t, err
	}
	return t, nil
}

// olderVersion reports whether BOSH version a is below b, comparing the
// minor numbers as integers (1.10 > 1.9).
func olderVersion(a, b string) bool {
	amaj, amin, _ := strings.Cut(a, ".")
	bmaj, bmin, _ := strings.Cut(b, ".")
	x, _ := strconv.Atoi(amaj)
	y, _ := strconv.Atoi(bmaj)
	if x != y {
		return x < y
	}
	x, _ = strconv.Atoi(amin)
	y, _ = strconv.Atoi(bmin)
	return x < y
}

// creationAttrs are the attributes of a creation response (XEP-0124 §7.2;
// XEP-0206 §4).
func (h *Handler) creationAttrs(s *session.Session, c *creation, conn *xmpp.Conn) []attr {
	from := conn.From()
	if from == "" {
		from = c.domain
	}
	attrs := []attr{
		{"xmlns:xmpp", NSXBOSH},
		{"sid", s.ID},
		{"wait", strconv.Itoa(int(s.Params.Wait / time.Second))},
		{"hold", strconv.Itoa(s.Params.Hold)},
		{"requests", strconv.Itoa(s.Params.Requests)},
		{"ver", c.ver},
		{"polling", strconv.Itoa(int(h.cfg.Polling / time.Second))},
		{"inactivity", strconv.Itoa(int(s.Params.Inactivity / time.Second))},
	}
	if h.cfg.MaxPause > 0 {
		attrs = append(attrs, attr{"maxpause", strconv.Itoa(int(h.cfg.MaxPause / time.Second))})
	}
	attrs = append(attrs,
		attr{"from", from},
		attr{"xmpp:version", "1.0"},
		attr{"xmpp:restartlogic", "true"},
	)
	if name := s.Stream(); name != "" {
		// XEP-0124 §16.2
		attrs = append(attrs, attr{"stream", name})
	}
	if s.Params.Acks {
		// XEP-0124 §9.1, §7.2
		attrs = append(attrs, attr{"ack", strconv.FormatUint(s.Last(), 10)})
	}
	if id := conn.StreamID(); id != "" {
		attrs = append(attrs, attr{"authid", id})
	}
	return attrs
}
