package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/sasl"
)

// Namespaces used by the tests.
const (
	nsHTTPBind = "http://jabber.org/protocol/httpbind"
	nsXBOSH    = "urn:xmpp:xbosh"
	nsStream   = "http://etherx.jabber.org/streams"
	nsStreams  = "urn:ietf:params:xml:ns:xmpp-streams"
	nsClient   = "jabber:client"
	nsTLS      = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL     = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsBind     = "urn:ietf:params:xml:ns:xmpp-bind"
	nsSession  = "urn:ietf:params:xml:ns:xmpp-session"
	nsStanzas  = "urn:ietf:params:xml:ns:xmpp-stanzas"
	nsRoster   = "jabber:iq:roster"
	nsPing     = "urn:xmpp:ping"
	nsSM3      = "urn:xmpp:sm:3"
	nsXMLNS    = "xmlns" // encoding/xml's Space for xmlns:prefix attributes
)

// eventTimeout bounds every wait for something to arrive. Nothing in the
// tests sleeps for a fixed time: they wait for events up to this deadline.
const eventTimeout = 15 * time.Second

// requestSlack is added to the granted wait for an HTTP request's deadline
// (Strophe gives up after 1.1 × wait).
const requestSlack = 10 * time.Second

// Element is a parsed XML element. Name.Space and attribute Name.Space hold
// namespace URIs (encoding/xml resolves prefixes), so a prefix the document
// never declared shows up as the bare prefix and never matches a URI.
type Element struct {
	Name     xml.Name
	Attrs    []xml.Attr // including namespace declarations
	Children []*Element
	Text     string // character data directly inside the element
	Raw      string // the element's source text, when parsed from a buffer
}

// Is reports whether e is {space}local.
func (e *Element) Is(space, local string) bool {
	return e != nil && e.Name.Space == space && e.Name.Local == local
}

// Attr returns the value of the attribute local in no namespace.
func (e *Element) Attr(local string) string {
	v, _ := e.AttrNS("", local)
	return v
}

// AttrNS returns the value of the attribute {space}local and whether it is
// present. Use space nsXMLNS for a prefix declaration (xmlns:stream).
func (e *Element) AttrNS(space, local string) (string, bool) {
	if e == nil {
		return "", false
	}
	for _, a := range e.Attrs {
		if a.Name.Space == space && a.Name.Local == local {
			return a.Value, true
		}
	}
	return "", false
}

// Child returns the first child {space}local, or nil.
func (e *Element) Child(space, local string) *Element {
	if e == nil {
		return nil
	}
	for _, c := range e.Children {
		if c.Is(space, local) {
			return c
		}
	}
	return nil
}

// ChildText returns the text of the first child {space}local, or "".
func (e *Element) ChildText(space, local string) string {
	if c := e.Child(space, local); c != nil {
		return c.Text
	}
	return ""
}

// ChildrenNamed returns every child {space}local.
func (e *Element) ChildrenNamed(space, local string) []*Element {
	var out []*Element
	if e == nil {
		return nil
	}
	for _, c := range e.Children {
		if c.Is(space, local) {
			out = append(out, c)
		}
	}
	return out
}

// String returns the element's source text, or a reconstruction.
func (e *Element) String() string {
	if e == nil {
		return "<nil>"
	}
	if e.Raw != "" {
		return e.Raw
	}
	var b strings.Builder
	fmt.Fprintf(&b, "<{%s}%s", e.Name.Space, e.Name.Local)
	for _, a := range e.Attrs {
		if a.Name.Space != "" {
			fmt.Fprintf(&b, " {%s}%s=%q", a.Name.Space, a.Name.Local, a.Value)
		} else {
			fmt.Fprintf(&b, " %s=%q", a.Name.Local, a.Value)
		}
	}
	b.WriteString(">")
	b.WriteString(e.Text)
	for _, c := range e.Children {
		b.WriteString(c.String())
	}
	fmt.Fprintf(&b, "</%s>", e.Name.Local)
	return b.String()
}

// parseDocument parses data as one XML document and returns its root.
func parseDocument(data []byte) (*Element, error) {
	dec := xml.NewDecoder(bytes.NewReader(data))
	var root *Element
	for {
		off := dec.InputOffset()
		tok, err := dec.Token()
		if err == io.EOF {
			if root == nil {
				return nil, errors.New("no root element")
			}
			return root, nil
		}
		if err != nil {
			return nil, err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if root != nil {
				return nil, errors.New("more than one root element")
			}
			if root, err = readElement(dec, tok, data, off); err != nil {
				return nil, err
			}
		case xml.CharData:
			if len(bytes.TrimSpace(tok)) != 0 {
				return nil, fmt.Errorf("text outside the root element: %q", tok)
			}
		case xml.ProcInst:
		default:
			return nil, fmt.Errorf("unexpected %T outside the root element", tok)
		}
	}
}

// readElement reads the rest of the element opened by start. If src is the
// decoder's whole input, Raw is set from startOff.
func readElement(dec *xml.Decoder, start xml.StartElement, src []byte, startOff int64) (*Element, error) {
	e := &Element{Name: start.Name, Attrs: start.Attr}
	for {
		off := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("inside <%s>: %w", start.Name.Local, err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			child, err := readElement(dec, tok, src, off)
			if err != nil {
				return nil, err
			}
			e.Children = append(e.Children, child)
		case xml.CharData:
			e.Text += string(tok)
		case xml.EndElement:
			if src != nil {
				e.Raw = string(src[startOff:dec.InputOffset()])
			}
			return e, nil
		}
	}
}

// escape returns s escaped for XML text or a quoted attribute value.
func escape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// Predicates for WaitFor.

// isFeatures matches <stream:features/> in the streams namespace, which the
// body must declare (XEP-0206 §2).
func isFeatures(e *Element) bool { return e.Is(nsStream, "features") }

// isStanza matches a jabber:client stanza named local (message, presence,
// iq) for which every check (may be nil) holds.
func isStanza(local string, checks ...func(*Element) bool) func(*Element) bool {
	return func(e *Element) bool {
		if !e.Is(nsClient, local) {
			return false
		}
		for _, check := range checks {
			if check != nil && !check(e) {
				return false
			}
		}
		return true
	}
}

// attrIs checks an unqualified attribute's value.
func attrIs(name, value string) func(*Element) bool {
	return func(e *Element) bool { return e.Attr(name) == value }
}

// exchange is one HTTP request/response pair.
type exchange struct {
	Request  string
	Status   int
	Header   http.Header
	Length   int64    // Content-Length as received, -1 if unknown
	Encoding []string // Transfer-Encoding
	Raw      []byte
	Body     *Element
}

// createOptions are the attributes of a session creation request. The
// zero value is what Strophe.js sends for localhost.
type createOptions struct {
	To     string // default prosodyDomain
	NoTo   bool   // omit the to attribute
	Wait   int    // default 60
	Hold   int    // default 1
	Lang   string // default "en"
	Route  string // optional route attribute
	Extras string // extra raw attributes
}

// outgoing is one queued request: extra <body/> attributes and payload.
type outgoing struct {
	attrs   string
	payload string
}

// Client is a BOSH client that behaves like Strophe.js's BOSH transport:
// plain HTTP POSTs, a random initial rid below 2^32, at most two requests in
// flight (an empty long-poll whenever nothing is in flight, data whenever
// fewer than two are), restarts as empty bodies with xmpp:restart, and a
// terminate that may be a third request. Response payloads are delivered to
// a queue in rid order, whatever order the HTTP responses arrive in; tests
// take elements from it with WaitFor.
type Client struct {
	tb   testing.TB
	name string // for logs, e.g. "alice"
	url  string
	tr   *http.Transport
	hc   *http.Client

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // pump and round trips

	mu          sync.Mutex
	notify      chan struct{} // closed and replaced on every state change
	sid         string
	to, lang    string
	wait        time.Duration
	maxInflight int
	nextRID     uint64 // rid of the next request
	deliverRID  uint64 // rid whose response is delivered next
	pending     map[uint64]*Element
	outbox      []outgoing
	inflight    int
	closing     bool // send no more requests
	queue       []*Element
	terminal    *Element // the type='terminate' body, once delivered
	err         error    // transport or protocol failure
	trace       []string
	seq         int
}

// maxTrace bounds how many exchanges a client remembers for failure logs.
const maxTrace = 400

// newClient returns a client for the BOSH endpoint url. It is closed in
// t.Cleanup; when the test failed its traffic is logged.
func newClient(t testing.TB, name, url string) *Client {
	t.Helper()
	tr := &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 4}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		tb:      t,
		name:    name,
		url:     url,
		tr:      tr,
		hc:      &http.Client{Transport: tr},
		ctx:     ctx,
		cancel:  cancel,
		notify:  make(chan struct{}),
		pending: make(map[uint64]*Element),
	}
	t.Cleanup(func() {
		c.Close()
		if t.Failed() {
			c.mu.Lock()
			trace := strings.Join(c.trace, "\n")
			c.mu.Unlock()
			t.Logf("BOSH traffic of %s:\n%s", c.name, trace)
		}
	})
	return c
}

// changedLocked wakes everyone waiting for a state change.
func (c *Client) changedLocked() {
	close(c.notify)
	c.notify = make(chan struct{})
}

func (c *Client) tracef(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.traceLocked(format, args...)
}

func (c *Client) traceLocked(format string, args ...any) {
	if len(c.trace) >= maxTrace {
		c.trace = c.trace[1:]
	}
	c.trace = append(c.trace, time.Now().Format("15:04:05.000 ")+fmt.Sprintf(format, args...))
}

// post sends one body and parses the response.
func (c *Client) post(ctx context.Context, rid uint64, body string) (*exchange, error) {
	c.tracef("%s -> rid %d %s", c.name, rid, body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("POST rid %d: %w", rid, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("reading response to rid %d: %w", rid, err)
	}
	c.tracef("%s <- rid %d HTTP %d %s", c.name, rid, resp.StatusCode, raw)
	ex := &exchange{
		Request:  body,
		Status:   resp.StatusCode,
		Header:   resp.Header,
		Length:   resp.ContentLength,
		Encoding: resp.TransferEncoding,
		Raw:      raw,
	}
	if resp.StatusCode != http.StatusOK {
		return ex, fmt.Errorf("rid %d: HTTP %d: %s", rid, resp.StatusCode, raw)
	}
	if ex.Body, err = parseDocument(raw); err != nil {
		return ex, fmt.Errorf("rid %d: parsing response %q: %w", rid, raw, err)
	}
	if !ex.Body.Is(nsHTTPBind, "body") {
		return ex, fmt.Errorf("rid %d: response root is not {%s}body: %s", rid, nsHTTPBind, raw)
	}
	return ex, nil
}

// readAll returns the response of an HTTP round trip, as net/http's
// client methods return it, with its whole body read and closed.
func readAll(resp *http.Response, err error) (*http.Response, []byte, error) {
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// randomRID returns a random rid in [0, 2^32), as Strophe picks it.
func randomRID() uint64 {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return uint64(binary.BigEndian.Uint32(b[:]))
}

// creationBody returns the session creation request Strophe.js sends.
func creationBody(rid uint64, o createOptions) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<body rid='%d' xmlns='%s'", rid, nsHTTPBind)
	if !o.NoTo {
		fmt.Fprintf(&b, " to='%s'", escape(o.To))
	}
	fmt.Fprintf(&b, " xml:lang='%s' wait='%d' hold='%d' content='text/xml; charset=utf-8' ver='1.6' xmpp:version='1.0' xmlns:xmpp='%s'",
		escape(o.Lang), o.Wait, o.Hold, nsXBOSH)
	if o.Route != "" {
		fmt.Fprintf(&b, " route='%s'", escape(o.Route))
	}
	if o.Extras != "" {
		b.WriteString(" " + o.Extras)
	}
	b.WriteString("/>")
	return b.String()
}

// Create sends the session creation request and returns the exchange. If
// the response is a session (not type='terminate'), the client starts
// keeping requests in flight and queues the response's children (usually
// <stream:features/>). A transport failure or a non-BOSH answer fails t.
func (c *Client) Create(o createOptions) *exchange {
	c.tb.Helper()
	if o.To == "" {
		o.To = prosodyDomain
	}
	if o.Wait == 0 {
		o.Wait = 60
	}
	if o.Hold == 0 {
		o.Hold = 1
	}
	if o.Lang == "" {
		o.Lang = "en"
	}
	rid := randomRID()
	ctx, cancel := context.WithTimeout(c.ctx, time.Duration(o.Wait)*time.Second+requestSlack)
	defer cancel()
	ex, err := c.post(ctx, rid, creationBody(rid, o))
	if err != nil {
		c.tb.Fatalf("%s: session creation: %v", c.name, err)
	}
	body := ex.Body

	c.mu.Lock()
	defer c.mu.Unlock()
	c.to, c.lang = o.To, o.Lang
	c.nextRID, c.deliverRID = rid+1, rid+1
	if body.Attr("type") == "terminate" {
		c.terminal = body
		c.closing = true
		c.changedLocked()
		return ex
	}
	c.sid = body.Attr("sid")
	if c.sid == "" {
		c.tb.Fatalf("%s: creation response has no sid: %s", c.name, ex.Raw)
	}
	c.wait = time.Duration(o.Wait) * time.Second
	if w, err := strconv.Atoi(body.Attr("wait")); err == nil && w >= 0 {
		c.wait = time.Duration(w) * time.Second
	}
	c.maxInflight = 2
	if r, err := strconv.Atoi(body.Attr("requests")); err == nil && r < 2 && r > 0 {
		c.maxInflight = r
	}
	c.queue = append(c.queue, body.Children...)
	c.changedLocked()
	c.wg.Add(1)
	go c.pump()
	return ex
}

// MustCreate creates a session for localhost and fails t unless it is up.
func (c *Client) MustCreate() *Element {
	c.tb.Helper()
	ex := c.Create(createOptions{})
	if ex.Body.Attr("type") == "terminate" {
		c.tb.Fatalf("%s: session creation refused: %s", c.name, ex.Raw)
	}
	return ex.Body
}

// SID returns the session id.
func (c *Client) SID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sid
}

// pump keeps requests in flight the way Strophe's _onIdle does: queued data
// goes out while fewer than maxInflight requests are open, and an empty
// long-poll goes out whenever nothing is open and nothing is queued.
func (c *Client) pump() {
	defer c.wg.Done()
	for {
		c.mu.Lock()
		if c.closing {
			c.mu.Unlock()
			return
		}
		var out outgoing
		switch {
		case len(c.outbox) > 0 && c.inflight < c.maxInflight:
			out = c.outbox[0]
			c.outbox = c.outbox[1:]
		case len(c.outbox) == 0 && c.inflight == 0:
			// empty poll
		default:
			ch := c.notify
			c.mu.Unlock()
			select {
			case <-ch:
			case <-c.ctx.Done():
				return
			}
			continue
		}
		rid := c.nextRID
		c.nextRID++
		c.inflight++
		body := c.bodyLocked(rid, out)
		c.wg.Add(1)
		c.mu.Unlock()
		go c.roundTrip(rid, body)
	}
}

// bodyLocked renders a request.
func (c *Client) bodyLocked(rid uint64, out outgoing) string {
	head := fmt.Sprintf("<body rid='%d' sid='%s' xmlns='%s'%s", rid, escape(c.sid), nsHTTPBind, out.attrs)
	if out.payload == "" {
		return head + "/>"
	}
	return head + ">" + out.payload + "</body>"
}

// roundTrip sends one request and delivers its response.
func (c *Client) roundTrip(rid uint64, body string) {
	defer c.wg.Done()
	c.mu.Lock()
	timeout := c.wait + requestSlack
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(c.ctx, timeout)
	defer cancel()
	ex, err := c.post(ctx, rid, body)

	c.mu.Lock()
	defer c.mu.Unlock()
	c.inflight--
	if err != nil {
		if c.ctx.Err() == nil && c.err == nil && c.terminal == nil {
			c.err = fmt.Errorf("%s: %w", c.name, err)
			c.closing = true
		}
		c.changedLocked()
		return
	}
	c.deliverLocked(rid, ex.Body)
	c.changedLocked()
}

// deliverLocked queues the payloads of responses in rid order.
func (c *Client) deliverLocked(rid uint64, body *Element) {
	c.pending[rid] = body
	for {
		b, ok := c.pending[c.deliverRID]
		if !ok {
			return
		}
		delete(c.pending, c.deliverRID)
		c.deliverRID++
		if c.terminal != nil {
			continue
		}
		c.queue = append(c.queue, b.Children...)
		switch b.Attr("type") {
		case "terminate":
			c.terminal = b
			c.closing = true
		case "error":
			// A recoverable error (XEP-0124 §17.3) only answers a repeated rid,
			// and this client never repeats one.
			if c.err == nil {
				c.err = fmt.Errorf("%s: unexpected recoverable error body: %s", c.name, b)
			}
			c.closing = true
		}
	}
}

// enqueue queues a request for the pump.
func (c *Client) enqueue(out outgoing) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		c.tb.Errorf("%s: sending on a closed session: %s", c.name, out.payload)
		return
	}
	c.outbox = append(c.outbox, out)
	c.changedLocked()
}

// Send queues raw XML (one or more stanzas) to go out in its own request.
func (c *Client) Send(payload string) { c.enqueue(outgoing{payload: payload}) }

// Restart queues a stream restart (XEP-0206 §5, as Strophe sends it: an
// empty body with to, xml:lang and xmpp:restart='true').
func (c *Client) Restart() {
	c.mu.Lock()
	attrs := fmt.Sprintf(" to='%s' xml:lang='%s' xmpp:restart='true' xmlns:xmpp='%s'", escape(c.to), escape(c.lang), nsXBOSH)
	c.mu.Unlock()
	c.enqueue(outgoing{attrs: attrs})
}

// NextID returns a fresh stanza id.
func (c *Client) NextID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	return fmt.Sprintf("%s-%d", c.name, c.seq)
}

// WaitFor removes and returns the first queued element that matches,
// waiting up to eventTimeout for it. It fails t if the session ends first
// or nothing matches in time; elements that do not match stay queued.
func (c *Client) WaitFor(what string, match func(*Element) bool) *Element {
	c.tb.Helper()
	timer := time.NewTimer(eventTimeout)
	defer timer.Stop()
	for {
		c.mu.Lock()
		if e, ok := takeFirst(&c.queue, match); ok {
			c.mu.Unlock()
			return e
		}
		err, terminal, queue, ch := c.err, c.terminal, c.describeQueueLocked(), c.notify
		c.mu.Unlock()
		if err != nil {
			c.tb.Fatalf("%s: waiting for %s: %v (queued: %s)", c.name, what, err, queue)
		}
		if terminal != nil {
			c.tb.Fatalf("%s: waiting for %s: session ended: %s (queued: %s)", c.name, what, terminal, queue)
		}
		select {
		case <-ch:
		case <-timer.C:
			c.tb.Fatalf("%s: no %s within %v (queued: %s)", c.name, what, eventTimeout, queue)
		}
	}
}

func (c *Client) describeQueueLocked() string {
	if len(c.queue) == 0 {
		return "nothing"
	}
	parts := make([]string, len(c.queue))
	for i, e := range c.queue {
		parts[i] = e.String()
	}
	return strings.Join(parts, " ")
}

// WaitTerminated waits up to eventTimeout for a type='terminate' body and
// returns it. Payloads that came with it stay queued for WaitFor.
func (c *Client) WaitTerminated() *Element {
	c.tb.Helper()
	terminal, _, err := c.waitTerminal(time.Now().Add(eventTimeout))
	if err != nil {
		c.tb.Fatalf("waiting for the session to end: %v", err)
	}
	return terminal
}

// waitTerminal waits until c has received a type='terminate' body, its
// transport failed, or deadline passes, and returns the body and when it
// was seen. It does not touch c's testing.TB, so it may run in any
// goroutine.
func (c *Client) waitTerminal(deadline time.Time) (*Element, time.Time, error) {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		c.mu.Lock()
		terminal, err, ch := c.terminal, c.err, c.notify
		c.mu.Unlock()
		if terminal != nil {
			return terminal, time.Now(), nil
		}
		if err != nil {
			return nil, time.Now(), err
		}
		select {
		case <-ch:
		case <-timer.C:
			return nil, time.Now(), fmt.Errorf("%s: no terminate by the deadline", c.name)
		}
	}
}

// Terminate ends the session like Strophe's disconnect: a type='terminate'
// request carrying payload (after anything still queued), sent even if two
// requests are open (XEP-0124 §11). It returns the response to the terminate
// request itself.
func (c *Client) Terminate(payload string) *Element {
	c.tb.Helper()
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		c.tb.Fatalf("%s: terminate on a closed session", c.name)
	}
	var queued strings.Builder
	for _, out := range c.outbox {
		queued.WriteString(out.payload)
	}
	c.outbox = nil
	c.closing = true
	rid := c.nextRID
	c.nextRID++
	body := c.bodyLocked(rid, outgoing{attrs: " type='terminate'", payload: queued.String() + payload})
	c.changedLocked()
	c.mu.Unlock()

	ctx, cancel := context.WithTimeout(c.ctx, eventTimeout)
	defer cancel()
	ex, err := c.post(ctx, rid, body)
	if err != nil {
		c.tb.Fatalf("%s: terminate: %v", c.name, err)
	}
	c.mu.Lock()
	c.deliverLocked(rid, ex.Body)
	c.changedLocked()
	c.mu.Unlock()
	return ex.Body
}

// Close stops sending requests, abandons the open ones and waits for the
// client's goroutines.
func (c *Client) Close() {
	c.mu.Lock()
	c.closing = true
	c.changedLocked()
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	c.tr.CloseIdleConnections()
}

// IQ sends an iq of type typ (to may be empty) with the inner XML and
// waits for its result or error.
func (c *Client) IQ(typ, to, inner string) *Element {
	c.tb.Helper()
	return sendIQ(c, typ, to, inner)
}

// MustIQ is IQ failing t unless the reply is a result.
func (c *Client) MustIQ(typ, to, inner string) *Element {
	c.tb.Helper()
	return mustResult(c.tb, c.name, typ, inner, c.IQ(typ, to, inner))
}

// takeFirst removes and returns the first item of *queue that matches.
func takeFirst[T any](queue *[]T, match func(T) bool) (item T, ok bool) {
	for i, x := range *queue {
		if match(x) {
			*queue = append((*queue)[:i:i], (*queue)[i+1:]...)
			return x, true
		}
	}
	return item, false
}

// iqClient is what sendIQ needs of a test client, over BOSH (Client) or
// WebSocket (wsClient).
type iqClient interface {
	stanzaClient
	NextID() string
}

// sendIQ sends an iq of type typ (to may be empty) with the inner XML
// through c and waits for its result or error.
func sendIQ(c iqClient, typ, to, inner string) *Element {
	id := c.NextID()
	toAttr := ""
	if to != "" {
		toAttr = fmt.Sprintf(" to='%s'", escape(to))
	}
	c.Send(fmt.Sprintf("<iq type='%s' id='%s'%s xmlns='%s'>%s</iq>", typ, id, toAttr, nsClient, inner))
	return c.WaitFor("reply to iq "+id, isStanza("iq", attrIs("id", id), func(e *Element) bool {
		return e.Attr("type") == "result" || e.Attr("type") == "error"
	}))
}

// mustResult returns reply, failing tb unless it is a result; name is
// the client's, typ and inner the iq's, for the message.
func mustResult(tb testing.TB, name, typ, inner string, reply *Element) *Element {
	tb.Helper()
	if reply.Attr("type") != "result" {
		tb.Fatalf("%s: iq %s %s failed: %s", name, typ, inner, reply)
	}
	return reply
}

// Sync makes sure the server has processed everything sent so far: an iq
// ping to the server is answered only after the stanzas before it.
func (c *Client) Sync() {
	c.tb.Helper()
	c.MustIQ("get", prosodyDomain, "<ping xmlns='"+nsPing+"'/>")
}

// loginResult is what Login saw on the way.
type loginResult struct {
	JID             string   // the bound full JID
	Features        *Element // features before authentication
	RestartFeatures *Element // features after the restart
}

// saslMechanisms are the mechanisms Authenticate can use, from
// mellium.im/sasl.
var saslMechanisms = map[string]sasl.Mechanism{
	"PLAIN":         sasl.Plain,
	"SCRAM-SHA-1":   sasl.ScramSha1,
	"SCRAM-SHA-256": sasl.ScramSha256,
}

// Authenticate runs SASL with mechanism over the session and returns the
// server's final element (<success/> or <failure/>). features must offer
// the mechanism.
func (c *Client) Authenticate(features *Element, mechanism, user, password string) *Element {
	c.tb.Helper()
	return authenticate(c.tb, c.name, c, features, mechanism, user, password)
}

// stanzaClient is what SASL needs of a client, BOSH or WebSocket: sending
// one element and waiting for one.
type stanzaClient interface {
	Send(payload string)
	WaitFor(what string, match func(*Element) bool) *Element
}

// authenticate runs SASL with mechanism over c, named name in failures,
// and returns the server's final element (<success/> or <failure/>).
// features must offer the mechanism.
func authenticate(tb testing.TB, name string, c stanzaClient, features *Element, mechanism, user, password string) *Element {
	tb.Helper()
	mech, ok := saslMechanisms[mechanism]
	if !ok {
		tb.Fatalf("unsupported SASL mechanism %q", mechanism)
	}
	offered := mechanisms(features)
	if !slices.Contains(offered, mechanism) {
		tb.Fatalf("%s: %s not offered, only %v", name, mechanism, offered)
	}
	neg := sasl.NewClient(mech,
		sasl.Credentials(func() ([]byte, []byte, []byte) { return []byte(user), []byte(password), nil }),
		sasl.RemoteMechanisms(offered...))
	more, resp, err := neg.Step(nil)
	if err != nil {
		tb.Fatalf("%s: SASL %s start: %v", name, mechanism, err)
	}
	c.Send(fmt.Sprintf("<auth xmlns='%s' mechanism='%s'>%s</auth>", nsSASL, mechanism, saslEncode(resp)))
	isSASL := func(e *Element) bool {
		return e.Is(nsSASL, "challenge") || e.Is(nsSASL, "success") || e.Is(nsSASL, "failure")
	}
	for {
		e := c.WaitFor("SASL challenge, success or failure", isSASL)
		switch e.Name.Local {
		case "challenge":
			data, err := saslDecode(e.Text)
			if err != nil {
				tb.Fatalf("%s: SASL challenge: %v", name, err)
			}
			if more, resp, err = neg.Step(data); err != nil {
				tb.Fatalf("%s: SASL %s step: %v", name, mechanism, err)
			}
			c.Send(fmt.Sprintf("<response xmlns='%s'>%s</response>", nsSASL, saslEncode(resp)))
		case "success":
			if data, err := saslDecode(e.Text); err == nil && len(data) > 0 && more {
				// SCRAM: verify the server signature.
				if _, _, err := neg.Step(data); err != nil {
					tb.Fatalf("%s: SASL %s server verification: %v", name, mechanism, err)
				}
			}
			return e
		default:
			return e
		}
	}
}

func saslEncode(b []byte) string {
	if len(b) == 0 {
		return "="
	}
	return base64.StdEncoding.EncodeToString(b)
}

func saslDecode(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "=" {
		return nil, nil
	}
	return base64.StdEncoding.DecodeString(s)
}

// Login takes the session from creation to a bound resource the way
// Strophe does: wait for <stream:features/>, SASL, restart, bind, and the
// session iq when the server requires it.
func (c *Client) Login(mechanism, user, password, resource string) loginResult {
	c.tb.Helper()
	features := c.WaitFor("initial <stream:features/>", isFeatures)
	if final := c.Authenticate(features, mechanism, user, password); !final.Is(nsSASL, "success") {
		c.tb.Fatalf("%s: SASL %s failed: %s", c.name, mechanism, final)
	}
	res := c.RestartAndBind(resource)
	res.Features = features
	return res
}

// RestartAndBind restarts the stream after a SASL success (XEP-0206 §5), binds
// resource and, when the server requires it, establishes the session.
func (c *Client) RestartAndBind(resource string) loginResult {
	c.tb.Helper()
	var res loginResult
	c.Restart()
	res.RestartFeatures = c.WaitFor("<stream:features/> after the restart", isFeatures)
	if res.RestartFeatures.Child(nsBind, "bind") == nil {
		c.tb.Fatalf("%s: no <bind/> after the restart: %s", c.name, res.RestartFeatures)
	}
	reply := c.MustIQ("set", "", fmt.Sprintf("<bind xmlns='%s'><resource>%s</resource></bind>", nsBind, escape(resource)))
	res.JID = strings.TrimSpace(reply.Child(nsBind, "bind").ChildText(nsBind, "jid"))
	if res.JID == "" {
		c.tb.Fatalf("%s: bind result without jid: %s", c.name, reply)
	}
	if s := res.RestartFeatures.Child(nsSession, "session"); s != nil && s.Child(nsSession, "optional") == nil {
		c.MustIQ("set", "", fmt.Sprintf("<session xmlns='%s'/>", nsSession))
	}
	return res
}

// NextRID returns the rid the client would use next.
func (c *Client) NextRID() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nextRID
}

// RawPost sends body as is, outside the client's request bookkeeping, and
// fails t unless the answer is a 200 with a <body/>.
func (c *Client) RawPost(body string) *exchange {
	c.tb.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, eventTimeout)
	defer cancel()
	ex, err := c.post(ctx, 0, body)
	if err != nil {
		c.tb.Fatalf("%s: %v", c.name, err)
	}
	return ex
}
