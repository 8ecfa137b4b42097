package wsbind

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// testMask is the masking key of the frames tests build.
var testMask = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// fr describes a frame for a test to build, a client's unless unmasked.
type fr struct {
	op       ws.OpCode
	more     bool   // not final
	rsv      byte   // reserved bits, 0 to 7
	unmasked bool   // no masking key (a client must mask, RFC 6455 §5.1)
	payload  string // sent after the header, masked
	length   int64  // declared length if not 0: the payload may be shorter
	len64    bool   // declare the length in the 64-bit form
}

// bytes returns the frame as it goes on the wire.
func (f fr) bytes() []byte {
	n := f.length
	if n == 0 {
		n = int64(len(f.payload))
	}
	b := []byte{f.rsv<<4 | byte(f.op), 0}
	if !f.more {
		b[0] |= 0x80
	}
	switch {
	case f.len64 || n > 0xffff:
		b[1] = 127
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	case n > 125:
		b[1] = 126
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b[1] = byte(n)
	}
	p := []byte(f.payload)
	if !f.unmasked {
		b[1] |= 0x80
		b = append(b, testMask[:]...)
		for i := range p {
			p[i] ^= testMask[i%4]
		}
	}
	return append(b, p...)
}

// frames concatenates frames.
func frames(fs ...fr) []byte {
	var b []byte
	for _, f := range fs {
		b = append(b, f.bytes()...)
	}
	return b
}

// closeBody is a close frame's payload.
func closeBody(code uint16, reason string) string {
	return string(binary.BigEndian.AppendUint16(nil, code)) + reason
}

// recConn is a net.Conn that records what is written to it, in the
// writes it was written in; it fails every write once fail is set.
type recConn struct {
	net.Conn // nil: only the methods below are used
	mu       sync.Mutex
	writes   [][]byte
	fail     error
}

func (c *recConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return 0, c.fail
	}
	c.writes = append(c.writes, bytes.Clone(p))
	return len(p), nil
}

func (c *recConn) SetWriteDeadline(time.Time) error { return nil }

func (c *recConn) written() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Join(c.writes, nil)
}

// serverFrames describes the server frames in b, one string each ("pong
// abc", "close 1000 reason", "text …"), checking each is a final,
// unmasked frame.
func serverFrames(t testing.TB, b []byte) []string {
	t.Helper()
	var out []string
	r := bytes.NewReader(b)
	for r.Len() > 0 {
		f, err := ws.ReadFrame(r)
		if err != nil {
			t.Fatalf("server frames %q: %v", b, err)
		}
		if f.Header.Masked || !f.Header.Fin || f.Header.Rsv != 0 {
			t.Errorf("server frame %+v: masked, not final or with reserved bits", f.Header)
		}
		switch f.Header.OpCode {
		case ws.OpPong:
			out = append(out, "pong "+string(f.Payload))
		case ws.OpPing:
			out = append(out, "ping "+string(f.Payload))
		case ws.OpText:
			out = append(out, "text "+string(f.Payload))
		case ws.OpClose:
			if len(f.Payload) == 0 {
				out = append(out, "close")
				break
			}
			code, reason := ws.ParseCloseFrameData(f.Payload)
			out = append(out, strings.TrimSpace(fmt.Sprintf("close %d %s", code, reason)))
		default:
			t.Errorf("server frame with opcode %d", f.Header.OpCode)
		}
	}
	return out
}

const testLimit = 1000

// readCases is the reader's table, also the seeds of FuzzReadMessage.
var readCases = []struct {
	name    string
	in      []byte
	limit   int       // testLimit if 0
	msg     string    // the message read, if ok
	ok      bool      // a message is read
	code    closeCode // the *closeError's, if any
	remote  bool      // … which is the client's close frame
	ioErr   error     // else the connection's error
	written []string  // what the server wrote meanwhile
}{
	{name: "text", in: frames(fr{op: ws.OpText, payload: "<message/>"}), msg: "<message/>", ok: true},
	{name: "empty text", in: frames(fr{op: ws.OpText}), msg: "", ok: true},
	{name: "16-bit length", in: frames(fr{op: ws.OpText, payload: strings.Repeat("a", 200)}), msg: strings.Repeat("a", 200), ok: true},
	{name: "64-bit length", in: frames(fr{op: ws.OpText, payload: "abc", len64: true}), msg: "abc", ok: true},
	{name: "fragments", in: frames(fr{op: ws.OpText, more: true, payload: "<mes"}, fr{op: ws.OpContinuation, more: true, payload: "sage"}, fr{op: ws.OpContinuation, payload: "/>"}), msg: "<message/>", ok: true},
	{name: "empty fragments", in: frames(fr{op: ws.OpText, more: true}, fr{op: ws.OpContinuation, more: true}, fr{op: ws.OpContinuation, payload: "x"}), msg: "x", ok: true},
	{name: "UTF-8 split across fragments", in: frames(fr{op: ws.OpText, more: true, payload: "h\xc3"}, fr{op: ws.OpContinuation, payload: "\xa9"}), msg: "hé", ok: true},
	{name: "ping between fragments", in: frames(fr{op: ws.OpText, more: true, payload: "ab"}, fr{op: ws.OpPing, payload: "p1"}, fr{op: ws.OpContinuation, payload: "cd"}), msg: "abcd", ok: true, written: []string{"pong p1"}},
	{name: "pong between fragments", in: frames(fr{op: ws.OpText, more: true, payload: "ab"}, fr{op: ws.OpPong, payload: "p1"}, fr{op: ws.OpContinuation, payload: "cd"}), msg: "abcd", ok: true},
	{name: "at the limit in fragments", limit: 10, in: frames(fr{op: ws.OpText, more: true, payload: "12345"}, fr{op: ws.OpContinuation, payload: "67890"}), msg: "1234567890", ok: true},
	{name: "ping", in: frames(fr{op: ws.OpPing, payload: "hello"}), written: []string{"pong hello"}},
	{name: "ping of 125 bytes", in: frames(fr{op: ws.OpPing, payload: strings.Repeat("p", 125)}), written: []string{"pong " + strings.Repeat("p", 125)}},
	{name: "pong", in: frames(fr{op: ws.OpPong, payload: "x"})},
	{name: "close", in: frames(fr{op: ws.OpClose, payload: closeBody(1000, "bye")}), code: 1000, remote: true, written: []string{"close 1000"}},
	{name: "close going away", in: frames(fr{op: ws.OpClose, payload: closeBody(1001, "")}), code: 1001, remote: true, written: []string{"close 1001"}},
	{name: "close 1012 echoed", in: frames(fr{op: ws.OpClose, payload: closeBody(1012, "")}), code: 1012, remote: true, written: []string{"close 1012"}},
	{name: "close 4000", in: frames(fr{op: ws.OpClose, payload: closeBody(4000, "app")}), code: 4000, remote: true, written: []string{"close 4000"}},
	{name: "close without code", in: frames(fr{op: ws.OpClose}), code: closeNoStatus, remote: true, written: []string{"close"}},
	{name: "close between fragments", in: frames(fr{op: ws.OpText, more: true, payload: "ab"}, fr{op: ws.OpClose, payload: closeBody(1000, "")}), code: 1000, remote: true, written: []string{"close 1000"}},
	{name: "close with 1 byte", in: frames(fr{op: ws.OpClose, payload: "\x03"}), code: closeProtocolError},
	{name: "close code 999", in: frames(fr{op: ws.OpClose, payload: closeBody(999, "")}), code: closeProtocolError},
	{name: "close code 1005", in: frames(fr{op: ws.OpClose, payload: closeBody(1005, "")}), code: closeProtocolError},
	{name: "close code 1015", in: frames(fr{op: ws.OpClose, payload: closeBody(1015, "")}), code: closeProtocolError},
	{name: "close code 5000", in: frames(fr{op: ws.OpClose, payload: closeBody(5000, "")}), code: closeProtocolError},
	{name: "close reason not UTF-8", in: frames(fr{op: ws.OpClose, payload: closeBody(1000, "\xff")}), code: closeInvalidPayload},
	{name: "unmasked", in: frames(fr{op: ws.OpText, unmasked: true, payload: "hi"}), code: closeProtocolError},
	{name: "unmasked ping", in: frames(fr{op: ws.OpPing, unmasked: true}), code: closeProtocolError},
	{name: "RSV1", in: frames(fr{op: ws.OpText, rsv: 4, payload: "hi"}), code: closeProtocolError},
	{name: "RSV3", in: frames(fr{op: ws.OpText, rsv: 1, payload: "hi"}), code: closeProtocolError},
	{name: "reserved data opcode", in: frames(fr{op: 3, payload: "hi"}), code: closeProtocolError},
	{name: "reserved control opcode", in: frames(fr{op: 0xb}), code: closeProtocolError},
	{name: "continuation first", in: frames(fr{op: ws.OpContinuation, payload: "hi"}), code: closeProtocolError},
	{name: "text within a message", in: frames(fr{op: ws.OpText, more: true, payload: "a"}, fr{op: ws.OpText, payload: "b"}), code: closeProtocolError},
	{name: "ping over 125 bytes", in: frames(fr{op: ws.OpPing, payload: strings.Repeat("p", 126)}), code: closeProtocolError},
	{name: "fragmented ping", in: frames(fr{op: ws.OpPing, more: true, payload: "p"}), code: closeProtocolError},
	{name: "close over 125 bytes", in: frames(fr{op: ws.OpClose, payload: closeBody(1000, strings.Repeat("r", 124))}), code: closeProtocolError},
	{name: "length with the top bit", in: frames(fr{op: ws.OpText, length: -1, len64: true}), code: closeProtocolError},
	{name: "binary", in: frames(fr{op: ws.OpBinary, payload: "\x00\x01"}), code: closeUnsupportedData},
	{name: "fragmented binary", in: frames(fr{op: ws.OpBinary, more: true, payload: "\x00"}, fr{op: ws.OpContinuation, payload: "\x01"}), code: closeUnsupportedData},
	{name: "not UTF-8", in: frames(fr{op: ws.OpText, payload: "a\xffb"}), code: closeInvalidPayload},
	{name: "truncated UTF-8", in: frames(fr{op: ws.OpText, more: true, payload: "h\xc3"}, fr{op: ws.OpContinuation, payload: "!"}), code: closeInvalidPayload},
	{name: "surrogate", in: frames(fr{op: ws.OpText, payload: "\xed\xa0\x80"}), code: closeInvalidPayload},
	{name: "over the limit", limit: 10, in: frames(fr{op: ws.OpText, payload: "12345678901"}), code: closeMessageTooBig},
	{name: "declared over the limit, not sent", in: frames(fr{op: ws.OpText, length: 1 << 40}), code: closeMessageTooBig},
	{name: "over the limit in fragments", limit: 10, in: frames(fr{op: ws.OpText, more: true, payload: "12345"}, fr{op: ws.OpContinuation, more: true, payload: "67890"}, fr{op: ws.OpContinuation, payload: "1"}), code: closeMessageTooBig},
	{name: "nothing", in: nil, ioErr: io.EOF},
	{name: "truncated header", in: frames(fr{op: ws.OpText, payload: "hi"})[:3], ioErr: io.ErrUnexpectedEOF},
	{name: "one byte", in: []byte{0x81}, ioErr: io.ErrUnexpectedEOF},
	{name: "truncated payload", in: frames(fr{op: ws.OpText, payload: "hello"})[:8], ioErr: io.ErrUnexpectedEOF},
	{name: "truncated ping", in: frames(fr{op: ws.OpPing, payload: "hello"})[:8], ioErr: io.ErrUnexpectedEOF},
	{name: "fragments cut", in: frames(fr{op: ws.OpText, more: true, payload: "ab"}), ioErr: io.ErrUnexpectedEOF},
}

func TestReadMessage(t *testing.T) {
	for _, tc := range readCases {
		t.Run(tc.name, func(t *testing.T) {
			limit := tc.limit
			if limit == 0 {
				limit = testLimit
			}
			conn := new(recConn)
			w := &writer{conn: conn}
			br := bufio.NewReaderSize(bytes.NewReader(tc.in), minReadBuffer)
			prefix := []byte("kept:")
			msg, ok, err := readMessage(br, w, limit, prefix)
			if !bytes.HasPrefix(msg, []byte("kept:")) {
				t.Fatalf("msg %q lost dst", msg)
			}
			if ok != tc.ok || string(msg[5:]) != tc.msg {
				t.Errorf("got (%q, %v, %v), want (%q, %v)", msg[5:], ok, err, tc.msg, tc.ok)
			}
			var ce *closeError
			switch {
			case tc.code != 0:
				if !errors.As(err, &ce) || ce.code != tc.code || ce.remote != tc.remote {
					t.Errorf("err = %v, want a closeError %d (remote %v)", err, tc.code, tc.remote)
				}
			case tc.ioErr != nil:
				if !errors.Is(err, tc.ioErr) || errors.As(err, &ce) {
					t.Errorf("err = %v, want %v", err, tc.ioErr)
				}
			case err != nil:
				t.Errorf("err = %v", err)
			}
			if got := serverFrames(t, conn.written()); fmt.Sprint(got) != fmt.Sprint(tc.written) {
				t.Errorf("written %q, want %q", got, tc.written)
			}
		})
	}
}

// TestReadMessageSequence reads messages and control frames one after the
// other from one reader, as a session does.
func TestReadMessageSequence(t *testing.T) {
	in := frames(
		fr{op: ws.OpText, payload: "<open/>"},
		fr{op: ws.OpPing, payload: "1"},
		fr{op: ws.OpText, more: true, payload: "<a"}, fr{op: ws.OpPong}, fr{op: ws.OpContinuation, payload: "/>"},
		fr{op: ws.OpText, payload: strings.Repeat("x", 70000)},
		fr{op: ws.OpClose, payload: closeBody(1000, "")},
	)
	conn := new(recConn)
	w := &writer{conn: conn}
	br := bufio.NewReaderSize(bytes.NewReader(in), 4096)
	var got []string
	var buf []byte
	for {
		msg, ok, err := readMessage(br, w, 100000, buf[:0])
		if err != nil {
			var ce *closeError
			if !errors.As(err, &ce) || !ce.remote || ce.code != closeNormal {
				t.Fatalf("err = %v, want the client's close", err)
			}
			break
		}
		if ok {
			got = append(got, string(msg[:min(len(msg), 8)]))
		} else {
			got = append(got, "control")
		}
		buf = msg
	}
	want := "[<open/> control <a/> xxxxxxxx]"
	if fmt.Sprint(got) != want {
		t.Errorf("read %v, want %v", got, want)
	}
	if w := serverFrames(t, conn.written()); fmt.Sprint(w) != "[pong 1 close 1000]" {
		t.Errorf("written %q", w)
	}
}

// TestReadMessageGrowsAsBytesArrive checks that a frame declaring a large
// payload costs what was sent, not what was declared.
func TestReadMessageGrowsAsBytesArrive(t *testing.T) {
	in := frames(fr{op: ws.OpText, length: 1 << 20, payload: "only this"})
	br := bufio.NewReader(bytes.NewReader(in))
	// A dst with room for the payload sent, and bytes of its own: after
	// an error readMessage returns dst as it was, nothing of the partial
	// message in it.
	dst := append(make([]byte, 0, 64), "kept"...)
	msg, ok, err := readMessage(br, &writer{conn: new(recConn)}, 2<<20, dst)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v, want io.ErrUnexpectedEOF", err)
	}
	if ok || string(msg) != "kept" || cap(msg) != cap(dst) || &msg[:cap(msg)][cap(msg)-1] != &dst[:cap(dst)][cap(dst)-1] {
		t.Errorf("after an error: ok %v, msg %q (cap %d); want dst, %q (cap %d), as it was", ok, msg, cap(msg), dst, cap(dst))
	}
	var buf []byte
	buf, err = readPayload(bufio.NewReader(strings.NewReader("only this")), buf, 1<<20)
	if !errors.Is(err, io.ErrUnexpectedEOF) || string(buf) != "only this" || cap(buf) > 4096 {
		t.Errorf("readPayload: %q (cap %d), %v; want 9 bytes in a small buffer", buf, cap(buf), err)
	}
}

// TestReadMessageSmallBuffer checks that a buffer too small for a control
// frame is refused, not read past.
func TestReadMessageSmallBuffer(t *testing.T) {
	br := bufio.NewReaderSize(bytes.NewReader(frames(fr{op: ws.OpText, payload: "a"})), minReadBuffer-1)
	if _, ok, err := readMessage(br, &writer{conn: new(recConn)}, testLimit, nil); ok || err == nil || br.Buffered() != 0 {
		t.Errorf("ok %v, err %v, %d bytes buffered", ok, err, br.Buffered())
	}
}

// TestReadMessageDeadline checks that a read deadline passing within a
// message is the connection's error, as the session layer expects.
func TestReadMessageDeadline(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	go client.Write(frames(fr{op: ws.OpText, more: true, payload: "<a"}))
	server.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, ok, err := readMessage(bufio.NewReader(server), &writer{conn: new(recConn)}, testLimit, nil)
	if ok || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("ok %v, err %v; want os.ErrDeadlineExceeded", ok, err)
	}
}

// TestPingWhileClosing checks that a ping after boshd's close frame is not
// answered and is no error: the client's close is awaited.
func TestPingWhileClosing(t *testing.T) {
	conn := new(recConn)
	w := &writer{conn: conn}
	if err := w.writeClose(closeServiceRestart, "service restart"); err != nil {
		t.Fatal(err)
	}
	in := frames(fr{op: ws.OpPing, payload: "p"}, fr{op: ws.OpClose, payload: closeBody(1012, "")})
	br := bufio.NewReader(bytes.NewReader(in))
	if _, ok, err := readMessage(br, w, testLimit, nil); ok || err != nil {
		t.Fatalf("ping: ok %v, err %v", ok, err)
	}
	var ce *closeError
	if _, _, err := readMessage(br, w, testLimit, nil); !errors.As(err, &ce) || !ce.remote || ce.code != 1012 {
		t.Fatalf("close: err %v, want the client's 1012", err)
	}
	if got := serverFrames(t, conn.written()); fmt.Sprint(got) != "[close 1012 service restart]" {
		t.Errorf("written %q, want only boshd's close", got)
	}
}

func TestWriter(t *testing.T) {
	conn := new(recConn)
	w := &writer{conn: conn, timeout: time.Second}
	long := strings.Repeat("é", 100) // 200 bytes: cut to 122 at a rune boundary
	for _, err := range []error{
		w.writeText([]byte("<message/>")),
		w.writeText(bytes.Repeat([]byte("m"), 5000)),
		w.writePing([]byte("boshd")),
		w.writePing(nil),
		w.writeClose(closeMessageTooBig, long),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"text <message/>", "text " + strings.Repeat("m", 5000), "ping boshd", "ping ", "close 1009 " + strings.Repeat("é", 61)}
	if got := serverFrames(t, conn.written()); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("written %.200q\nwant %.200q", got, want)
	}
	if len(conn.writes[0]) != 12 {
		t.Errorf("a small message took writes of %d bytes first, want one write of 12", len(conn.writes[0]))
	}
	if err := w.writeText([]byte("late")); !errors.Is(err, errCloseSent) {
		t.Errorf("text after close: %v, want errCloseSent", err)
	}
	if err := w.writeClose(closeNormal, ""); !errors.Is(err, errCloseSent) {
		t.Errorf("second close: %v, want errCloseSent", err)
	}
	if err := w.writePing(make([]byte, 126)); err == nil {
		t.Error("ping of 126 bytes written")
	}
}

func TestWriterErrorSticks(t *testing.T) {
	boom := errors.New("boom")
	conn := &recConn{fail: boom}
	w := &writer{conn: conn}
	if err := w.writeText([]byte("a")); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	conn.fail = nil
	if err := w.writeText([]byte("b")); !errors.Is(err, boom) {
		t.Errorf("after a failed write: %v, want the first error again", err)
	}
	if len(conn.writes) != 0 {
		t.Errorf("written after a failure: %q", conn.writes)
	}
}

// TestRoundTrip sends messages of every length class through gobwas/ws's
// own client writer to readMessage, and back through writer to its client
// reader: an independent implementation on the other side.
func TestRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 4095, 4096, 65535, 65536, 200000} {
		msg := bytes.Repeat([]byte("ü"), n/2)
		if n%2 == 1 {
			msg = append(msg, 'x')
		}
		var wire bytes.Buffer
		if err := wsutil.WriteClientText(&wire, msg); err != nil {
			t.Fatal(err)
		}
		got, ok, err := readMessage(bufio.NewReader(&wire), &writer{conn: new(recConn)}, 1<<20, nil)
		if err != nil || !ok || !bytes.Equal(got, msg) {
			t.Fatalf("%d bytes: ok %v, err %v, equal %v", n, ok, err, bytes.Equal(got, msg))
		}
		conn := new(recConn)
		if err := (&writer{conn: conn}).writeText(msg); err != nil {
			t.Fatal(err)
		}
		back, err := wsutil.ReadServerText(struct {
			io.Reader
			io.Writer
		}{bytes.NewReader(conn.written()), io.Discard})
		if err != nil || !bytes.Equal(back, msg) {
			t.Fatalf("%d bytes back: err %v, equal %v", n, err, bytes.Equal(back, msg))
		}
	}
}

func TestCloseMessage(t *testing.T) {
	// The exact form Strophe.js recognises as a server's close.
	if closeMessage != `<close xmlns="urn:ietf:params:xml:ns:xmpp-framing" />` {
		t.Errorf("closeMessage = %s", closeMessage)
	}
}

func TestAppendOpen(t *testing.T) {
	for _, tc := range []struct {
		h    streamHeader
		want string
	}{
		{
			streamHeader{from: "example.com", id: "++TR84Sm6A3hnt3Q065SnAbbk3Y=", version: "1.0", lang: "en"},
			`<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" from="example.com" id="++TR84Sm6A3hnt3Q065SnAbbk3Y=" version="1.0" xml:lang="en" />`,
		},
		{
			streamHeader{from: "example.com"},
			`<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" from="example.com" />`,
		},
		{
			streamHeader{id: `a"b'c<d>e&f` + "\t\n\r", version: "1.0"},
			`<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" id="a&quot;b'c&lt;d&gt;e&amp;f&#x9;&#xA;&#xD;" version="1.0" />`,
		},
		{
			streamHeader{id: "nul\x00 bad\xff ünï"},
			"<open xmlns=\"urn:ietf:params:xml:ns:xmpp-framing\" id=\"nul\uFFFD bad\uFFFD ünï\" />",
		},
	} {
		got := string(appendOpen(nil, tc.h))
		if got != tc.want {
			t.Errorf("appendOpen(%+v)\n got %s\nwant %s", tc.h, got, tc.want)
		}
		checkOpen(t, got, tc.h)
	}
}

// checkOpen parses open with encoding/xml and checks its attributes are
// h's (invalid characters replaced).
func checkOpen(t testing.TB, open string, h streamHeader) {
	t.Helper()
	var e struct {
		XMLName xml.Name
		From    string `xml:"from,attr"`
		ID      string `xml:"id,attr"`
		Version string `xml:"version,attr"`
		Lang    string `xml:"http://www.w3.org/XML/1998/namespace lang,attr"`
	}
	if err := xml.Unmarshal([]byte(open), &e); err != nil {
		t.Fatalf("%s: %v", open, err)
	}
	clean := func(s string) string {
		var b []byte
		for _, r := range s { // one U+FFFD per invalid byte
			if !xmlChar(r) {
				r = utf8.RuneError
			}
			b = utf8.AppendRune(b, r)
		}
		return string(b)
	}
	if e.XMLName.Space != nsFraming || e.XMLName.Local != "open" ||
		e.From != clean(h.from) || e.ID != clean(h.id) || e.Version != clean(h.version) || e.Lang != clean(h.lang) {
		t.Errorf("%s parses to %+v, want %+v", open, e, h)
	}
}

func FuzzAppendOpen(f *testing.F) {
	f.Add("example.com", "abc", "1.0", "en")
	f.Add(`"<&>'`, "\t\r\n", "\x00\xff", "\ufffe")
	f.Fuzz(func(t *testing.T, from, id, version, lang string) {
		h := streamHeader{from, id, version, lang}
		checkOpen(t, string(appendOpen(nil, h)), h)
	})
}

// FuzzReadMessage reads messages from a client's byte stream until an
// error, checking that the reader never panics, never returns more than
// the limit, returns only UTF-8 text, fails with a close code that names
// the fault or with the connection's error, and writes only well-formed
// server control frames.
func FuzzReadMessage(f *testing.F) {
	for _, tc := range readCases {
		f.Add(tc.in, uint16(tc.limit))
	}
	f.Fuzz(func(t *testing.T, in []byte, limit16 uint16) {
		limit := int(limit16)
		if limit == 0 {
			limit = testLimit
		}
		conn := new(recConn)
		w := &writer{conn: conn}
		br := bufio.NewReaderSize(bytes.NewReader(in), minReadBuffer)
		dst := []byte("dst")
		for i := 0; ; i++ {
			if i > len(in)/2+1 { // each frame is 2 bytes at least
				t.Fatalf("%d reads from %d bytes", i, len(in))
			}
			msg, ok, err := readMessage(br, w, limit, dst)
			if string(msg[:3]) != "dst" {
				t.Fatalf("dst overwritten: %q", msg)
			}
			if len(msg)-3 > limit {
				t.Fatalf("message of %d bytes, over the limit %d", len(msg)-3, limit)
			}
			if err == nil {
				if ok && !utf8.Valid(msg[3:]) {
					t.Fatalf("message not UTF-8: %q", msg)
				}
				if !ok && len(msg) != 3 {
					t.Fatalf("no message, but %q", msg)
				}
				continue
			}
			if ok || len(msg) != 3 {
				t.Fatalf("error %v with a message %q", err, msg)
			}
			var ce *closeError
			switch {
			case errors.As(err, &ce) && ce.remote:
				if ce.code != closeNoStatus && !validCloseCode(ce.code) {
					t.Fatalf("client's close with code %d accepted", ce.code)
				}
			case errors.As(err, &ce):
				switch ce.code {
				case closeProtocolError, closeUnsupportedData, closeInvalidPayload, closeMessageTooBig:
				default:
					t.Fatalf("close code %d for bad input", ce.code)
				}
			case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			default:
				t.Fatalf("unexpected error %v", err)
			}
			break
		}
		out := serverFrames(t, conn.written())
		for i, s := range out {
			if strings.HasPrefix(s, "close") && i != len(out)-1 {
				t.Fatalf("frames after a close: %q", out)
			}
			if !strings.HasPrefix(s, "close") && !strings.HasPrefix(s, "pong ") {
				t.Fatalf("server wrote %q", s)
			}
		}
	})
}

// stanza is a typical 300-byte client message.
var stanza = []byte(`<message xmlns="jabber:client" to="juliet@capulet.example/balcony" from="romeo@montague.example/orchard" type="chat" id="ktx72v49"><body>Art thou not Romeo, and a Montague? Neither, fair saint, if either thee dislike. How cam'st thou hither, tell me, and wherefore?</body><active xmlns="http://jabber.org/protocol/chatstates"/></message>`)

func BenchmarkReadMessage(b *testing.B) {
	in := frames(fr{op: ws.OpText, payload: string(stanza)})
	src := bytes.NewReader(in)
	br := bufio.NewReaderSize(src, 4096)
	w := &writer{conn: new(recConn)}
	var buf []byte
	b.SetBytes(int64(len(stanza)))
	b.ReportAllocs()
	for b.Loop() {
		src.Reset(in)
		br.Reset(src)
		msg, ok, err := readMessage(br, w, 1<<18, buf[:0])
		if err != nil || !ok || len(msg) != len(stanza) {
			b.Fatal(ok, err)
		}
		buf = msg
	}
}

// discardConn is a net.Conn whose writes go nowhere.
type discardConn struct{ net.Conn }

func (discardConn) Write(p []byte) (int, error)      { return len(p), nil }
func (discardConn) SetWriteDeadline(time.Time) error { return nil }

func BenchmarkWriteText(b *testing.B) {
	w := &writer{conn: discardConn{}, timeout: time.Minute}
	b.SetBytes(int64(len(stanza)))
	b.ReportAllocs()
	for b.Loop() {
		if err := w.writeText(stanza); err != nil {
			b.Fatal(err)
		}
	}
}
