package main

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// tcpPair returns the two ends of a loopback TCP connection: unlike
// net.Pipe, both sides may write at once.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// listenSilent returns the address of a loopback listener that accepts
// connections and never writes.
func listenSilent(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	return ln.Addr().String()
}

// frame compiles a server frame (unmasked unless mask).
func frame(t *testing.T, op ws.OpCode, fin bool, p string, mask bool) []byte {
	t.Helper()
	f := ws.NewFrame(op, fin, []byte(p))
	if mask {
		f = ws.MaskFrame(f)
	}
	b, err := ws.CompileFrame(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readClientFrame reads one frame the client wrote and checks it is
// masked, as RFC 6455 §5.3 requires; it returns it unmasked.
func readClientFrame(t *testing.T, conn net.Conn) ws.Frame {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	f, err := ws.ReadFrame(conn)
	if err != nil {
		t.Fatalf("reading the client's frame: %v", err)
	}
	if !f.Header.Masked {
		t.Errorf("client frame %v not masked", f.Header.OpCode)
	}
	return ws.UnmaskFrameInPlace(f)
}

func TestWSConnReadMessage(t *testing.T) {
	t.Parallel()
	cat := func(b ...[]byte) []byte { return bytes.Join(b, nil) }
	long := strings.Repeat("x", 126)
	for _, tc := range []struct {
		name  string
		input func(t *testing.T) []byte
		want  string // the message; "" when an error is wanted
		reply ws.OpCode
		// replyBody is the reply frame's payload when reply is set.
		replyBody string
		err       error // wanted with errors.Is, when want is ""
		code      ws.StatusCode
	}{
		{name: "one frame", want: "<presence/>",
			input: func(t *testing.T) []byte { return frame(t, ws.OpText, true, "<presence/>", false) }},
		{name: "fragments with a ping between", want: "<message>hi</message>", reply: ws.OpPong, replyBody: "ping!",
			input: func(t *testing.T) []byte {
				return cat(frame(t, ws.OpText, false, "<message>", false), frame(t, ws.OpPing, true, "ping!", false),
					frame(t, ws.OpContinuation, false, "hi", false), frame(t, ws.OpContinuation, true, "</message>", false))
			}},
		{name: "pong skipped", want: "<a/>",
			input: func(t *testing.T) []byte {
				return cat(frame(t, ws.OpPong, true, "", false), frame(t, ws.OpText, true, "<a/>", false))
			}},
		{name: "binary", err: errProtocol,
			input: func(t *testing.T) []byte { return frame(t, ws.OpBinary, true, "<a/>", false) }},
		{name: "masked", err: errProtocol,
			input: func(t *testing.T) []byte { return frame(t, ws.OpText, true, "<a/>", true) }},
		{name: "reserved bit", err: errProtocol,
			input: func(t *testing.T) []byte {
				b := frame(t, ws.OpText, true, "<a/>", false)
				b[0] |= 0x40
				return b
			}},
		{name: "reserved opcode", err: errProtocol,
			input: func(t *testing.T) []byte { return frame(t, ws.OpCode(0x3), true, "<a/>", false) }},
		{name: "continuation first", err: errProtocol,
			input: func(t *testing.T) []byte { return frame(t, ws.OpContinuation, true, "<a/>", false) }},
		{name: "text inside a fragmented message", err: errProtocol,
			input: func(t *testing.T) []byte {
				return cat(frame(t, ws.OpText, false, "<a>", false), frame(t, ws.OpText, true, "</a>", false))
			}},
		{name: "fragmented ping", err: errProtocol,
			input: func(t *testing.T) []byte { return frame(t, ws.OpPing, false, "p", false) }},
		{name: "ping over 125 bytes", err: errProtocol,
			input: func(t *testing.T) []byte { return frame(t, ws.OpPing, true, long, false) }},
		{name: "message over the limit", err: errProtocol,
			input: func(t *testing.T) []byte {
				// The header alone: the length is refused before any payload.
				var buf bytes.Buffer
				ws.WriteHeader(&buf, ws.Header{Fin: true, OpCode: ws.OpText, Length: maxMessageBytes + 1})
				return buf.Bytes()
			}},
		{name: "close with a code", code: ws.StatusGoingAway, reply: ws.OpClose, replyBody: string(ws.NewCloseFrameBody(ws.StatusGoingAway, "")),
			input: func(t *testing.T) []byte {
				return frame(t, ws.OpClose, true, string(ws.NewCloseFrameBody(ws.StatusGoingAway, "bye")), false)
			}},
		{name: "close without a body", code: ws.StatusNoStatusRcvd, reply: ws.OpClose, replyBody: "",
			input: func(t *testing.T) []byte { return frame(t, ws.OpClose, true, "", false) }},
		{name: "close with one byte", err: errProtocol,
			input: func(t *testing.T) []byte { return frame(t, ws.OpClose, true, "x", false) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			client, server := tcpPair(t)
			c := newWSConn(client, nil)
			go server.Write(tc.input(t))
			client.SetReadDeadline(time.Now().Add(5 * time.Second))
			before := time.Now()
			msg, arrived, err := c.readMessage()
			switch {
			case tc.want != "":
				if err != nil || string(msg) != tc.want {
					t.Fatalf("read %q, %v; want %q", msg, err, tc.want)
				}
				if arrived.Before(before) || arrived.After(time.Now()) {
					t.Errorf("arrival %v not during the read", arrived)
				}
			case tc.code != 0:
				var ce *closeError
				if !errors.As(err, &ce) || ce.code != tc.code {
					t.Fatalf("err = %v, want a close with %d", err, tc.code)
				}
			default:
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
			}
			if tc.reply != 0 {
				f := readClientFrame(t, server)
				if f.Header.OpCode != tc.reply || string(f.Payload) != tc.replyBody {
					t.Errorf("reply %v %q, want %v %q", f.Header.OpCode, f.Payload, tc.reply, tc.replyBody)
				}
			}
		})
	}
}

func TestWSConnWrite(t *testing.T) {
	t.Parallel()
	client, server := tcpPair(t)
	c := newWSConn(client, nil)
	long := strings.Repeat("y", 70000) // a 64-bit length
	p := []byte("<a/><presence/>" + long)
	if err := c.writeTexts(p, []int{4, 15, len(p)}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<a/>", "<presence/>", long} {
		f := readClientFrame(t, server)
		if f.Header.OpCode != ws.OpText || !f.Header.Fin || string(f.Payload) != want {
			t.Errorf("frame %v fin %v %.20q, want a text frame %.20q", f.Header.OpCode, f.Header.Fin, f.Payload, want)
		}
	}
	if !bytes.Equal(p[:4], []byte("<a/>")) {
		t.Errorf("the caller's bytes were masked in place: %q", p[:4])
	}
	if err := c.writeClose(ws.StatusNormalClosure); err != nil {
		t.Fatal(err)
	}
	f := readClientFrame(t, server)
	if code, _ := ws.ParseCloseFrameData(f.Payload); f.Header.OpCode != ws.OpClose || code != ws.StatusNormalClosure {
		t.Errorf("close frame %v with code %d", f.Header.OpCode, code)
	}
	if err := c.writeText([]byte("<a/>")); !errors.Is(err, errCloseSent) {
		t.Errorf("a write after the close frame: %v, want errCloseSent", err)
	}
	if err := c.writeClose(ws.StatusNormalClosure); err != nil {
		t.Errorf("a second close: %v, want nothing done", err)
	}
}

// TestWSConnFinish checks the closing handshake's end: our close frame,
// frames dropped until the server's, the connection closed.
func TestWSConnFinish(t *testing.T) {
	t.Parallel()
	client, server := tcpPair(t)
	c := newWSConn(client, nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.finish(5 * time.Second)
	}()
	if f := readClientFrame(t, server); f.Header.OpCode != ws.OpClose {
		t.Fatalf("first frame %v, want close", f.Header.OpCode)
	}
	server.Write(append(frame(t, ws.OpText, true, "<late/>", false), frame(t, ws.OpClose, true, "", false)...))
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("finish did not return after the server's close frame")
	}
	if _, err := client.Write([]byte{0}); err == nil {
		t.Error("the connection is still open")
	}
}
