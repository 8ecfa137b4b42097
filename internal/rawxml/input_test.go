package rawxml

import (
	"bufio"
	"errors"
	"strings"
	"testing"
)

// TestStreamReuse checks that a Reader over a bufio.Reader leaves what
// follows the current child unread, so a stream restart can start a new
// Reader on the same connection.
func TestStreamReuse(t *testing.T) {
	br := bufio.NewReader(strings.NewReader(`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'><success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/><?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='2'><stream:features/>`))
	rd := NewReader(br, Options{DefaultNS: "jabber:client"})
	if _, err := rd.Root(); err != nil {
		t.Fatal(err)
	}
	el, err := rd.Next()
	if err != nil || el.Name.Local != "success" || el.NS != "urn:ietf:params:xml:ns:xmpp-sasl" {
		t.Fatalf("first child %v %q: %v", el.Name, el.NS, err)
	}
	rd = NewReader(br, Options{DefaultNS: "jabber:client"})
	root, err := rd.Root()
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := root.Get("", "id"); id != "2" {
		t.Fatalf("second header id = %q", id)
	}
	el, err = rd.Next()
	if err != nil || el.NS != "http://etherx.jabber.org/streams" {
		t.Fatalf("features: %v %q %v", el.Name, el.NS, err)
	}
}

// infiniteReader yields head, then fill over and over, up to limit bytes in
// all, then an error; n counts what was read.
type infiniteReader struct {
	head  string
	fill  byte
	n     int64
	limit int64
}

var errInfiniteEnd = errors.New("end of the infinite input")

func (r *infiniteReader) Read(p []byte) (int, error) {
	if r.head != "" {
		n := copy(p, r.head)
		r.head = r.head[n:]
		r.n += int64(n)
		return n, nil
	}
	if r.n >= r.limit {
		return 0, errInfiniteEnd
	}
	p = p[:min(int64(len(p)), r.limit-r.n)]
	for i := range p {
		p[i] = r.fill
	}
	r.n += int64(len(p))
	return len(p), nil
}

// TestMaxElementSizeBoundsReading checks that MaxElementSize bounds the
// bytes a Reader takes in for one child even when they form a single token
// (a text node, an attribute value, a run of whitespace between children),
// which encoding/xml would otherwise buffer whole. The xmpp package relies
// on it to keep a hostile server from growing a session's memory without
// bound (Dialer.MaxStanzaSize).
func TestMaxElementSizeBoundsReading(t *testing.T) {
	const (
		maxSize = 4 << 10
		input   = 16 << 20 // stands for "without end"
	)
	for _, tc := range []struct{ name, head string }{
		{"text", `<r><a>`},
		{"attribute value", `<r><a b='`},
		{"whitespace between children", `<r>`},
		{"CDATA", `<r><a><![CDATA[`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fill := byte('x')
			if tc.name == "whitespace between children" {
				fill = ' '
			}
			src := &infiniteReader{head: tc.head, fill: fill, limit: input}
			rd := NewReader(bufio.NewReaderSize(src, 512), Options{MaxElementSize: maxSize})
			if _, err := rd.Root(); err != nil {
				t.Fatal(err)
			}
			_, err := rd.Next()
			// bufio reads ahead by up to its size.
			if src.n > maxSize+512 {
				t.Errorf("read %d bytes before answering (%v); MaxElementSize is %d", src.n, err, maxSize)
			}
			if !errors.Is(err, ErrLimit) {
				t.Errorf("got %v, want ErrLimit", err)
			}
		})
	}
}
