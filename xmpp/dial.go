package xmpp

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"mellium.im/xmpp/dial"
	"mellium.im/xmpp/jid"

	"github.com/boshd/boshd/internal/rawxml"
)

// Defaults for the zero fields of a Dialer.
const (
	defaultWriteTimeout  = 30 * time.Second
	defaultMaxStanzaSize = 1 << 20
)

// maxDepth bounds the nesting of one upstream element (the stream counting
// as depth 1). No real stanza comes close; the bound keeps a broken server
// from growing the parser's stack without limit.
const maxDepth = 100

// Dialer opens upstream XMPP client streams. Zero value: STARTTLS when
// offered, system roots.
//
// A Dialer may be used by several goroutines at once; its fields must not
// change while it is in use.
type Dialer struct {
	// TLSMode says how the stream is secured:
	//
	//   - "starttls" (default when ""): STARTTLS whenever the server offers
	//     it; a server offering none is accepted only if the connected
	//     address is a loopback IP.
	//   - "required": STARTTLS must be offered, else Dial fails.
	//   - "plaintext": never STARTTLS, and the connected address must be a
	//     loopback IP, else Dial fails.
	TLSMode string
	// RootCAs are the CAs trusted for the server's certificate; nil means
	// the system roots. The certificate is verified against the XMPP
	// domain (Target.Domain) as ServerName.
	RootCAs *x509.CertPool
	// WriteTimeout is the deadline for each write to the server (stanzas,
	// stream headers, the closing tag); 0 means 30 s. A write that times
	// out leaves the stream broken: every later Write fails.
	WriteTimeout time.Duration
	// MaxStanzaSize bounds the bytes of one element from the server; 0
	// means 1 MiB. A larger element ends the stream with an error wrapping
	// rawxml.ErrLimit.
	MaxStanzaSize int
	// Resolver, if not nil, is used for DNS: the SRV lookup when
	// Target.Addr is empty, and host names in Target.Addr.
	Resolver *net.Resolver
	// Watcher, if not nil, lets an idle stream wait for the server
	// without a goroutine: see Conn.Park. A TLS stream is handed to it
	// only when tls.Conn holds nothing it has read from the socket.
	Watcher Watcher
	// ParkAfter is how long Conn.Park waits for the server on the calling
	// goroutine before handing the wait to Watcher; 0 hands it over at
	// once. Streams that are busy then keep their goroutine.
	ParkAfter time.Duration
	// Logins, if not nil, paces the SASL exchanges of the streams this
	// Dialer opens: a client's <auth/> waits there for a place before it
	// is written (see LoginGate).
	Logins LoginGate

	// tlsConfigs holds one tls.Config per domain, shared by the streams
	// to it: tls.Conn keeps its Config for the life of the stream.
	tlsConfigs     sync.Map // Target.Domain -> *tls.Config
	tlsConfigCount atomic.Int64
}

// Watcher waits for many sockets at once to become readable (or hung up)
// without a goroutine each.
type Watcher interface {
	// WatchReadable calls fn, once and quickly, when rc becomes readable
	// or is hung up. stop cancels the watch: it reports true if fn has not
	// been called and never will be.
	WatchReadable(rc syscall.RawConn, fn func()) (stop func() bool, err error)
}

// Target says which stream to open.
type Target struct {
	// Domain is the XMPP domain: the `to` of the stream header and the TLS
	// ServerName. Required.
	Domain string
	// Addr is the host:port to connect to. If "", the address is looked up
	// through DNS SRV (_xmpp-client._tcp.Domain, falling back to Domain
	// port 5222); direct TLS (_xmpps-client) is not attempted.
	Addr string
	// Lang is the xml:lang of the stream header, omitted if "".
	Lang string
	// From is the optional `from` of the stream header.
	From string
	// KeepSM keeps XEP-0198 stream management (features in a
	// urn:xmpp:sm:* namespace) in the features Conn.Features and
	// Conn.Next return, for a client whose stream maps one to one onto
	// this one, as over WebSocket (RFC 7395 §3.9), and which can so
	// resume it after Conn.Drop. BOSH leaves it false: a BOSH client
	// cannot resume boshd's TCP stream. <starttls/> and channel
	// binding are removed either way.
	KeepSM bool
}

// Dial connects to the server for t, opens a client stream, secures it
// with STARTTLS as TLSMode says, and returns once the server has sent the
// features of the (secured) stream; Conn.Features returns them, filtered.
//
// ctx bounds connecting and the whole negotiation; once Dial has returned,
// ctx no longer matters. A <stream:error> from the server during the
// negotiation is returned as a *StreamError.
func (d *Dialer) Dial(ctx context.Context, t Target) (*Conn, error) {
	mode, err := parseTLSMode(d.TLSMode)
	if err != nil {
		return nil, err
	}
	if t.Domain == "" {
		return nil, errors.New("xmpp: dial: empty domain")
	}
	tcp, err := d.connect(ctx, t)
	if err != nil {
		return nil, fmt.Errorf("xmpp: connecting to %s: %w", t.Domain, err)
	}
	loopback := isLoopback(tcp.RemoteAddr())
	if mode == tlsPlaintext && !loopback {
		tcp.Close()
		return nil, fmt.Errorf("xmpp: %s: plaintext upstream refused for non-loopback address %s", t.Domain, tcp.RemoteAddr())
	}

	c := &Conn{
		nc:           tcp,
		target:       t,
		writeTimeout: d.WriteTimeout,
		maxSize:      d.MaxStanzaSize,
		watcher:      d.Watcher,
		parkAfter:    d.ParkAfter,
		logins:       d.Logins,
	}
	if c.writeTimeout <= 0 {
		c.writeTimeout = defaultWriteTimeout
	}
	if c.maxSize <= 0 {
		c.maxSize = defaultMaxStanzaSize
	}
	c.src.setConn(tcp)

	// Interrupt any read or write in progress when ctx is done; tls.Conn
	// passes deadlines through to tcp.
	stop := context.AfterFunc(ctx, func() { tcp.SetDeadline(aLongTimeAgo) })
	err = c.negotiate(ctx, d, mode, loopback, tcp)
	if !stop() {
		// ctx ended during the negotiation (perhaps just as it succeeded):
		// the deadline is or will be set, so the stream is unusable.
		if err == nil {
			err = context.Cause(ctx)
		} else {
			err = fmt.Errorf("xmpp: negotiating with %s: %w: %w", t.Domain, context.Cause(ctx), err)
		}
	}
	if err == nil {
		err = tcp.SetDeadline(time.Time{})
	}
	if err != nil {
		c.src.release()
		c.putReader()
		c.nc.Close()
		return nil, err
	}
	c.idle()
	return c, nil
}

// connect opens the TCP connection for t.
func (d *Dialer) connect(ctx context.Context, t Target) (net.Conn, error) {
	nd := net.Dialer{Resolver: d.Resolver}
	if t.Addr != "" {
		return nd.DialContext(ctx, "tcp", t.Addr)
	}
	j, err := jid.Parse(t.Domain)
	if err != nil {
		return nil, err
	}
	if j.Localpart() != "" || j.Resourcepart() != "" {
		return nil, fmt.Errorf("%q is not a bare domain", t.Domain)
	}
	md := dial.Dialer{Dialer: nd, NoTLS: true}
	return md.Dial(ctx, "tcp", j)
}

// negotiate opens the stream on c, does STARTTLS if mode asks for it, and
// stores the features of the final stream in c.
func (c *Conn) negotiate(ctx context.Context, d *Dialer, mode tlsMode, loopback bool, tcp net.Conn) error {
	raw, err := c.open()
	if err != nil {
		return err
	}
	features, offered, err := filterFeatures(raw, c.target.KeepSM)
	if err != nil {
		return err
	}
	useTLS, err := decideTLS(mode, offered, loopback)
	if err != nil {
		return fmt.Errorf("xmpp: %s: %w", c.target.Domain, err)
	}
	if useTLS {
		if err := c.startTLS(ctx, d.tlsConfig(c.target.Domain), tcp); err != nil {
			return err
		}
		if raw, err = c.open(); err != nil {
			return err
		}
		if features, _, err = filterFeatures(raw, c.target.KeepSM); err != nil {
			return err
		}
	}
	c.features = features
	return nil
}

// open sends the client's stream header, reads the server's, and returns
// the <stream:features> that must follow it, unfiltered.
func (c *Conn) open() ([]byte, error) {
	if err := c.write(appendHeader(make([]byte, 0, 256), &c.target)); err != nil {
		return nil, err
	}
	if err := c.readHeader(); err != nil {
		return nil, err
	}
	el, err := c.reader().Next()
	if err != nil {
		return nil, readError("reading stream features", err)
	}
	if el.NS == nsStream && el.Name.Local == "error" {
		return nil, parseStreamError(el.Raw)
	}
	if el.NS != nsStream || el.Name.Local != "features" {
		return nil, fmt.Errorf("xmpp: expected <stream:features>, got <%s xmlns='%s'>", el.Name.Local, el.NS)
	}
	return el.Raw, nil
}

// readHeader starts a new rawxml.Reader on c's buffer and reads the
// server's stream header with it.
func (c *Conn) readHeader() error {
	if err := c.src.skipSpace(); err != nil {
		return readError("reading stream header", err)
	}
	if c.rd == nil {
		c.rd = readerPool.Get().(*rawxml.Reader)
	}
	c.rd.Reset(&c.src, c.readerOptions())
	root, err := c.rd.Root()
	if err != nil {
		return readError("reading stream header", err)
	}
	// Kept for the stream's life, to resume reading after parking: the
	// declarations are all it takes, and the header's other attributes
	// and their strings go (about 170 bytes a stream, measured in
	// BENCHMARKS.md); what hdr needs of them it has.
	c.root = root.Declarations()
	h, err := parseHeader(root)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.hdr = h
	c.mu.Unlock()
	return nil
}

// readError wraps an error met while reading the server's stream. A bare
// io.EOF becomes io.ErrUnexpectedEOF, since io.EOF from Next means the
// server ended its stream properly.
func readError(doing string, err error) error {
	if errors.Is(err, rawxml.ErrRootEnd) {
		return fmt.Errorf("xmpp: %s: server closed its stream", doing)
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("xmpp: %s: %w", doing, err)
}

// isLoopback reports whether addr is a loopback IP address.
func isLoopback(addr net.Addr) bool {
	switch a := addr.(type) {
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	case *net.IPAddr:
		return a.IP.IsLoopback()
	}
	return false
}
