package xmpp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/boshd/boshd/internal/rawxml"
	"github.com/boshd/boshd/internal/xmltest"
)

// Fuzzing the upstream stream reader (issue: operations/hardening, part 4).
// See docs/FUZZING.md for how to run it and what a longer run found.

// fuzzConn is a net.Conn whose reads return a fixed server stream, then
// io.EOF, and whose writes go nowhere. It counts the bytes read.
type fuzzConn struct {
	data []byte
	off  int
}

func (c *fuzzConn) Read(p []byte) (int, error) {
	if c.off >= len(c.data) {
		return 0, io.EOF
	}
	n := copy(p, c.data[c.off:])
	c.off += n
	return n, nil
}

func (c *fuzzConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *fuzzConn) Close() error                     { return nil }
func (c *fuzzConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000} }
func (c *fuzzConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5222} }
func (c *fuzzConn) SetDeadline(time.Time) error      { return nil }
func (c *fuzzConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fuzzConn) SetWriteDeadline(time.Time) error { return nil }

// newFuzzConn returns a Conn reading data as the server's bytes, as Dial
// makes it once connected, with maxSize as Dialer.MaxStanzaSize.
func newFuzzConn(data []byte, maxSize int) (*Conn, *fuzzConn) {
	nc := &fuzzConn{data: data}
	c := &Conn{
		nc:           nc,
		target:       Target{Domain: testDomain, Lang: "en"},
		writeTimeout: time.Second,
		maxSize:      maxSize,
	}
	c.src.setConn(nc)
	return c, nc
}

// FuzzConn feeds arbitrary server bytes to a Conn, through the stream
// negotiation Dial does (header, features, STARTTLS as the TLS mode says)
// and then Next until it fails, and checks:
//
//   - nothing panics, and Next ends: within len(data)+2 calls it returns an
//     error, and then the same error again;
//   - the features the negotiation keeps and every element Next returns
//     are standalone: one well-formed element, nothing restricted in it,
//     namespaces bound, read back byte for byte from a fresh root;
//   - every <stream:features> relayed (the first one and any after a
//     restart) is filtered: no STARTTLS, -PLUS mechanism, XEP-0440 channel
//     binding, stream management or compression left;
//   - a <stream:error> comes back as a *StreamError whose Raw is standalone
//     and declares the stream prefix;
//   - Dialer.MaxStanzaSize bounds what one Next reads, whitespace before
//     the element included, plus at most one read buffer taken ahead from
//     the connection, so that a hostile server cannot make a session
//     buffer without bound.
func FuzzConn(f *testing.F) {
	f.Add([]byte(serverHeader("s1")+featuresAuth+`<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`+serverHeader("s2")+featuresBind+`<message from='a@b'><body>hi</body></message></stream:stream>`), uint8(2), uint16(0))
	f.Add([]byte(serverHeader("s1")+featuresPlainAuth+`<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>`), uint8(0), uint16(300))
	f.Fuzz(func(t *testing.T, data []byte, mode uint8, maxSize uint16) {
		size := int(maxSize)
		if size == 0 {
			size = defaultMaxStanzaSize
		}
		c, nc := newFuzzConn(data, size)
		defer c.Close()
		if err := c.negotiate(context.Background(), &Dialer{}, tlsMode(mode%3), true, nc); err != nil {
			checkStreamError(t, err)
			return
		}
		if err := checkRelayable(c.features); err != nil {
			t.Fatalf("features %q: %v", c.features, err)
		}
		if name, err := fuzzTopName(c.features); err != nil || name != (xml.Name{Space: nsStream, Local: "features"}) {
			t.Fatalf("features %q are %v (%v)", c.features, name, err)
		}
		restarted := false
		for calls := 0; ; calls++ {
			if calls > len(data)+2 {
				t.Fatalf("Next returned %d elements from %d bytes", calls, len(data))
			}
			before := nc.off
			b, err := c.Next()
			if read := nc.off - before; !restarted && read > size+bufSize {
				t.Fatalf("one Next read %d bytes with MaxStanzaSize %d (result %v)", read, size, err)
			}
			restarted = false
			if err != nil {
				checkStreamError(t, err)
				if b != nil {
					t.Fatalf("Next returned %q with error %v", b, err)
				}
				if b2, err2 := c.Next(); b2 != nil || err2 != err {
					t.Fatalf("Next after %v returned %q, %v", err, b2, err2)
				}
				return
			}
			if err := checkRelayable(b); err != nil {
				t.Fatalf("element %q: %v", b, err)
			}
			if name, _ := fuzzTopName(b); name == (xml.Name{Space: nsSASL, Local: "success"}) {
				if err := c.Restart(); err != nil {
					t.Fatalf("Restart after %q: %v", b, err)
				}
				// The new header is read by the next Next, with no bound
				// of its own besides the element's.
				restarted = true
			}
		}
	})
}

// checkStreamError checks a *StreamError among the errors the Conn
// returned: its Raw is relayable and in the stream namespace.
func checkStreamError(t *testing.T, err error) {
	t.Helper()
	var serr *StreamError
	if !errors.As(err, &serr) {
		return
	}
	if err := checkRelayable(serr.Raw); err != nil {
		t.Fatalf("stream error %q: %v", serr.Raw, err)
	}
	if name, err := fuzzTopName(serr.Raw); err != nil || name != (xml.Name{Space: nsStream, Local: "error"}) {
		t.Fatalf("stream error %q is %v (%v)", serr.Raw, name, err)
	}
	if !strings.Contains(serr.Error(), "stream error") {
		t.Fatalf("StreamError.Error() = %q", serr.Error())
	}
}

// checkRelayable checks that raw, an element a Conn returned, stands alone
// and, if it is stream features, is filtered.
func checkRelayable(raw []byte) error {
	if err := checkStandaloneElement(raw); err != nil {
		return err
	}
	name, err := fuzzTopName(raw)
	if err != nil {
		return err
	}
	if name == (xml.Name{Space: nsStream, Local: "features"}) {
		list, err := featureList(raw)
		if err != nil {
			return err
		}
		for _, f := range list {
			if f.forbidden(false) || f.anyPlus() {
				return fmt.Errorf("%s left in the features", f)
			}
		}
	}
	return nil
}

// fuzzTopName returns the resolved name of raw's one top-level element.
func fuzzTopName(raw []byte) (xml.Name, error) {
	d := xml.NewDecoder(bytes.NewReader(raw))
	for {
		tok, err := d.Token()
		if err != nil {
			return xml.Name{}, err
		}
		if start, ok := tok.(xml.StartElement); ok {
			return start.Name, nil
		}
	}
}

// checkStandaloneElement reports whether raw stands alone
// (xmltest.Standalone), read back as the Conn would read it, from a fresh
// stream.
func checkStandaloneElement(raw []byte) error {
	_, _, err := xmltest.Standalone(raw, serverHeader("again"), "</stream:stream>", rawxml.Options{DefaultNS: nsClient, MaxDepth: maxDepth})
	return err
}

// fuzzFeature is one child of a <stream:features>, as encoding/xml resolves
// it, with the names of the SASL mechanisms it lists if it is
// <mechanisms/>.
type fuzzFeature struct {
	name  xml.Name
	mechs []string
	// unknown is set for an element named xmlns, which encoding/xml
	// leaves in no namespace whatever the declarations: its namespace
	// is not known here.
	unknown bool
}

func (f fuzzFeature) String() string {
	s := "{" + f.name.Space + "}" + f.name.Local
	if f.mechs != nil {
		s += "[" + strings.Join(f.mechs, ",") + "]"
	}
	return s
}

// forbidden reports whether the feature must never reach a client: a
// BOSH client, or one whose stream keeps stream management if keepSM.
func (f fuzzFeature) forbidden(keepSM bool) bool {
	switch {
	case f.name == xml.Name{Space: nsTLS, Local: "starttls"},
		f.name == xml.Name{Space: nsSASLCB, Local: "sasl-channel-binding"},
		f.name == xml.Name{Space: nsCompres, Local: "compression"},
		!keepSM && strings.HasPrefix(f.name.Space, nsSMPrefx):
		return true
	}
	return false
}

// anyPlus reports whether the feature lists a -PLUS mechanism.
func (f fuzzFeature) anyPlus() bool {
	for _, m := range f.mechs {
		if strings.HasSuffix(m, "-PLUS") {
			return true
		}
	}
	return false
}

// featureList reads the children of the element raw with encoding/xml,
// independently of filterFeatures.
func featureList(raw []byte) ([]fuzzFeature, error) {
	d := xml.NewDecoder(bytes.NewReader(raw))
	d.Strict = true
	var (
		list   []fuzzFeature
		level  int
		inMech bool
		mech   []byte
	)
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return list, nil
		}
		if err != nil {
			return nil, err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			level++
			switch level {
			case 2:
				f := fuzzFeature{name: tok.Name, unknown: tok.Name == xml.Name{Local: "xmlns"}}
				if tok.Name == (xml.Name{Space: nsSASL, Local: "mechanisms"}) {
					f.mechs = []string{}
				}
				list = append(list, f)
			case 3:
				last := &list[len(list)-1]
				inMech = last.mechs != nil && tok.Name == xml.Name{Space: nsSASL, Local: "mechanism"}
				mech = mech[:0]
			}
		case xml.CharData:
			if level == 3 && inMech {
				mech = append(mech, tok...)
			}
		case xml.EndElement:
			if level == 3 && inMech {
				last := &list[len(list)-1]
				last.mechs = append(last.mechs, string(bytes.TrimSpace(mech)))
				inMech = false
			}
			level--
		}
	}
}

// FuzzFilterFeatures feeds arbitrary elements, as rawxml returns them from
// a server stream, to filterFeatures and checks:
//
//   - it accepts every element rawxml accepts (no error);
//   - what it returns is standalone, and is the input's children read by
//     encoding/xml minus exactly the unrelayable features (STARTTLS, -PLUS
//     mechanisms, XEP-0440 channel binding, stream management unless
//     Target.KeepSM, compression), in order, with KeepSM and without;
//   - it reports STARTTLS exactly when a <starttls/> feature was there;
//   - with nothing to remove it returns the input bytes unchanged;
//   - it is idempotent: filtering the output again changes nothing.
func FuzzFilterFeatures(f *testing.F) {
	f.Add([]byte(featuresAuth))
	f.Add([]byte(`<s:features xmlns:s='http://etherx.jabber.org/streams' xmlns:t='urn:ietf:params:xml:ns:xmpp-tls'><t:starttls/><x:mechanisms xmlns:x='urn:ietf:params:xml:ns:xmpp-sasl'><x:mechanism>X-PLUS</x:mechanism><x:mechanism>PLAIN</x:mechanism></x:mechanisms></s:features>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		stream := append(append([]byte(serverHeader("f")), data...), "</stream:stream>"...)
		rd := rawxml.NewReader(bufio.NewReader(bytes.NewReader(stream)), rawxml.Options{DefaultNS: nsClient, MaxDepth: maxDepth})
		if _, err := rd.Root(); err != nil {
			return
		}
		for range len(data) + 1 {
			el, err := rd.Next()
			if err != nil {
				return
			}
			checkFilter(t, el.Raw, false)
			checkFilter(t, el.Raw, true)
		}
		t.Fatalf("more than %d elements in %d bytes", len(data)+1, len(data))
	})
}

// checkFilter checks filterFeatures on one element.
func checkFilter(t *testing.T, raw []byte, keepSM bool) {
	t.Helper()
	out, starttls, err := filterFeatures(raw, keepSM)
	if err != nil {
		t.Fatalf("filterFeatures(%q): %v", raw, err)
	}
	if err := checkStandaloneElement(out); err != nil {
		t.Fatalf("filterFeatures(%q) = %q: %v", raw, out, err)
	}
	in, err := featureList(raw)
	if err != nil {
		t.Fatalf("%q: %v", raw, err)
	}
	var want []string
	offered, removable, unknown := false, false, false
	for _, f := range in {
		unknown = unknown || f.unknown
		if f.name == (xml.Name{Space: nsTLS, Local: "starttls"}) {
			offered = true
		}
		if f.forbidden(keepSM) {
			removable = true
			continue
		}
		if f.mechs != nil {
			kept := []string{}
			for _, m := range f.mechs {
				if strings.HasSuffix(m, "-PLUS") {
					removable = true
					continue
				}
				kept = append(kept, m)
			}
			f.mechs = kept
		}
		want = append(want, f.String())
	}
	left, err := featureList(out)
	if err != nil {
		t.Fatalf("filterFeatures(%q) = %q: %v", raw, out, err)
	}
	var got []string
	for _, f := range left {
		got = append(got, f.String())
	}
	if !unknown && strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("filterFeatures(%q) = %q\nkeeps  %q\nwant   %q", raw, out, got, want)
	}
	if !unknown && starttls != offered {
		t.Fatalf("filterFeatures(%q) reports starttls %v", raw, starttls)
	}
	if !unknown && !removable && !bytes.Equal(out, raw) {
		t.Fatalf("filterFeatures(%q) = %q with nothing to remove", raw, out)
	}
	again, starttls, err := filterFeatures(out, keepSM)
	if err != nil || !bytes.Equal(again, out) || starttls {
		t.Fatalf("filterFeatures not idempotent: %q, then %q (starttls %v, %v)", out, again, starttls, err)
	}
}

// hugeServer is a net.Conn for a server that, after prefix, sends fill
// over and over (up to limit bytes, then io.EOF), counting what was read.
type hugeServer struct {
	fuzzConn
	prefix, fill string
	limit, n     int
	off          int // in fill
}

func (h *hugeServer) Read(p []byte) (int, error) {
	if h.prefix != "" {
		n := copy(p, h.prefix)
		h.prefix = h.prefix[n:]
		h.n += n
		return n, nil
	}
	if h.n >= h.limit {
		return 0, io.EOF
	}
	p = p[:min(len(p), h.limit-h.n)]
	for n := 0; n < len(p); {
		c := copy(p[n:], h.fill[h.off:])
		n += c
		h.off = (h.off + c) % len(h.fill)
	}
	h.n += len(p)
	return len(p), nil
}

// TestNextBoundsHugeToken checks that Dialer.MaxStanzaSize bounds what a
// Conn reads into memory for one element even when the server sends it as
// a single token without end (text, an attribute value, whitespace), or
// sends a stream header without end: the read must stop near the bound
// with an error wrapping rawxml.ErrLimit, not when the server stops.
func TestNextBoundsHugeToken(t *testing.T) {
	t.Parallel()
	const (
		maxSize = 64 << 10
		endless = 32 << 20
	)
	head := serverHeader("s1") + featuresPlainAuth
	for _, tc := range []struct {
		name, prefix, fill string
		header             bool // the endless token is in the header, read by Dial
	}{
		{"text", head + `<message><body>`, "x", false},
		{"attribute value", head + `<message id='`, "x", false},
		{"whitespace between stanzas", head, " ", false},
		{"stream header attribute", `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' id='`, "x", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc := &hugeServer{prefix: tc.prefix, fill: tc.fill, limit: endless}
			c := &Conn{nc: nc, target: Target{Domain: testDomain}, writeTimeout: time.Second, maxSize: maxSize}
			c.src.setConn(nc)
			err := c.negotiate(context.Background(), &Dialer{}, tlsPlaintext, true, nc)
			if !tc.header {
				if err != nil {
					t.Fatal(err)
				}
				_, err = c.Next()
			}
			if nc.n > 3*maxSize+bufSize {
				t.Errorf("read %d bytes of an endless token before answering %v; MaxStanzaSize %d", nc.n, err, maxSize)
			}
			if !errors.Is(err, rawxml.ErrLimit) {
				t.Errorf("got %v, want an error wrapping rawxml.ErrLimit", err)
			}
		})
	}
}
