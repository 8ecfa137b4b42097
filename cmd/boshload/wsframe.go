package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/gobwas/ws"
)

// Bounds of the WebSocket client.
const (
	// maxMessageBytes bounds one message from the server, reassembled,
	// as maxResponseBytes bounds a BOSH response.
	maxMessageBytes = maxResponseBytes
	// wsReadBuffer is the size of a connection's read buffer: enough for
	// the stream features and a few chat messages, small enough for
	// thousands of idle connections in one generator.
	wsReadBuffer = 2048
	// wsKeepBuffer is the largest message or frame buffer a connection
	// keeps between two messages; a larger one is dropped once used.
	wsKeepBuffer = 4096
	// wsWriteTimeout bounds one frame write.
	wsWriteTimeout = 10 * time.Second
)

// errProtocol is wrapped by every error for a frame or message RFC 6455
// or RFC 7395 forbids a server to send.
var errProtocol = errors.New("websocket protocol error")

// errCloseSent is returned by a write after the connection's close
// frame: nothing may follow it (RFC 6455 §5.5.1).
var errCloseSent = errors.New("websocket: close frame already sent")

// closeError is a close frame received from the server.
type closeError struct {
	code   ws.StatusCode // 1005 (no status) when the frame has no body
	reason string
}

func (e *closeError) Error() string {
	return fmt.Sprintf("websocket closed by the server: %d %q", e.code, e.reason)
}

// wsConn is the client side of one WebSocket connection (RFC 6455),
// carrying text messages: each written as one masked frame, each read
// reassembled from its fragments, with the control frames answered on
// the way (a ping's pong, a close's echo).
//
// One goroutine reads (readMessage); any goroutine writes, whole frames
// being ordered by wmu.
type wsConn struct {
	conn net.Conn // immutable

	// Reading goroutine only.
	br  *bufio.Reader          // reads conn
	hdr [ws.MaxHeaderSize]byte // a frame header being read
	msg []byte                 // the message being reassembled; reused
	ctl [125]byte              // a control frame's payload (at most 125 bytes)

	wmu       sync.Mutex
	wbuf      []byte     // under wmu: the frames being written; reused
	hw        wbufWriter // under wmu: writes frame headers into wbuf
	closeSent bool       // under wmu: our close frame is written
}

// newWSConn returns a wsConn over conn, reading through br when the
// handshake left one (with bytes the server sent after it), else
// through a buffer of its own.
func newWSConn(conn net.Conn, br *bufio.Reader) *wsConn {
	if br == nil {
		br = bufio.NewReaderSize(conn, wsReadBuffer)
	}
	return &wsConn{conn: conn, br: br}
}

// readMessage reads the next text message and returns it, with the time
// its first frame's header was read. The bytes are valid until the next
// call. Pings are answered and pongs skipped on the way. A close frame
// is returned as a *closeError, after the close is echoed if we had not
// sent ours. Anything RFC 6455 forbids a server to send, a binary
// message (RFC 7395 §3.2 uses text only) or a message larger than
// maxMessageBytes is an error, after which the connection is unusable.
func (c *wsConn) readMessage() (msg []byte, arrived time.Time, err error) {
	if cap(c.msg) > wsKeepBuffer {
		c.msg = nil
	}
	c.msg = c.msg[:0]
	started := false
	for {
		h, err := ws.ReadHeaderBuffer(c.br, c.hdr[:])
		if err != nil {
			return nil, arrived, err
		}
		if !started {
			arrived = time.Now()
		}
		if err := checkServerHeader(h); err != nil {
			return nil, arrived, err
		}
		if h.OpCode.IsControl() {
			p := c.ctl[:h.Length]
			if _, err := io.ReadFull(c.br, p); err != nil {
				return nil, arrived, err
			}
			if err := c.control(h.OpCode, p); err != nil {
				return nil, arrived, err
			}
			continue
		}
		switch {
		case h.OpCode == ws.OpBinary:
			return nil, arrived, fmt.Errorf("%w: binary message (RFC 7395 uses text messages)", errProtocol)
		case h.OpCode == ws.OpText && started, h.OpCode == ws.OpContinuation && !started:
			return nil, arrived, fmt.Errorf("%w: %s frame out of sequence", errProtocol, opName(h.OpCode))
		}
		started = true
		n := len(c.msg)
		if int64(n)+h.Length > maxMessageBytes {
			return nil, arrived, fmt.Errorf("%w: message longer than %d bytes", errProtocol, maxMessageBytes)
		}
		c.msg = append(c.msg, make([]byte, h.Length)...)
		if _, err := io.ReadFull(c.br, c.msg[n:]); err != nil {
			return nil, arrived, err
		}
		if h.Fin {
			return c.msg, arrived, nil
		}
	}
}

// checkServerHeader checks what RFC 6455 asks a client to check of a
// frame header: no reserved bit without an extension (§5.2; boshload
// negotiates none), no mask from a server (§5.1), no reserved opcode,
// and control frames unfragmented and at most 125 bytes (§5.5).
func checkServerHeader(h ws.Header) error {
	switch {
	case h.Rsv != 0:
		return fmt.Errorf("%w: reserved bits set", errProtocol)
	case h.Masked:
		return fmt.Errorf("%w: masked frame from the server", errProtocol)
	case h.OpCode.IsReserved():
		return fmt.Errorf("%w: reserved opcode %#x", errProtocol, byte(h.OpCode))
	case h.OpCode.IsControl() && (!h.Fin || h.Length > 125):
		return fmt.Errorf("%w: %s frame fragmented or longer than 125 bytes", errProtocol, opName(h.OpCode))
	}
	return nil
}

// control handles a control frame with payload p.
func (c *wsConn) control(op ws.OpCode, p []byte) error {
	switch op {
	case ws.OpPing:
		return c.writeFrame(ws.OpPong, p)
	case ws.OpPong:
		return nil // unsolicited, or an answer: nothing to do
	}
	// A close: RFC 6455 §5.5.1 says a body is empty or a code with an
	// optional UTF-8 reason.
	if len(p) == 1 {
		return fmt.Errorf("%w: close frame with a one-byte body", errProtocol)
	}
	e := &closeError{code: ws.StatusNoStatusRcvd}
	if len(p) >= 2 {
		code, reason := ws.ParseCloseFrameData(p)
		e.code, e.reason = code, reason
	}
	// Echo the code, as a client should; it is the last frame either
	// way, so an error writing it does not matter.
	c.writeClose(e.code)
	return e
}

// opName names an opcode for errors.
func opName(op ws.OpCode) string {
	switch op {
	case ws.OpContinuation:
		return "continuation"
	case ws.OpText:
		return "text"
	case ws.OpBinary:
		return "binary"
	case ws.OpClose:
		return "close"
	case ws.OpPing:
		return "ping"
	case ws.OpPong:
		return "pong"
	}
	return fmt.Sprintf("opcode %#x", byte(op))
}

// writeText writes p as one text message, in one frame.
func (c *wsConn) writeText(p []byte) error { return c.writeFrame(ws.OpText, p) }

// writeTexts writes each of p[ends[k-1]:ends[k]] (from 0) as a text
// message of its own, in one write to the socket.
func (c *wsConn) writeTexts(p []byte, ends []int) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		return errCloseSent
	}
	c.wbuf = c.wbuf[:0]
	start := 0
	for _, end := range ends {
		c.appendFrameLocked(ws.OpText, p[start:end])
		start = end
	}
	return c.flushLocked()
}

// writeFrame writes one frame of op with payload p.
func (c *wsConn) writeFrame(op ws.OpCode, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		return errCloseSent
	}
	c.wbuf = c.wbuf[:0]
	c.appendFrameLocked(op, p)
	return c.flushLocked()
}

// writeClose writes our close frame with code (none for 1005, which
// must not be sent), once: later calls do nothing.
func (c *wsConn) writeClose(code ws.StatusCode) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		return nil
	}
	c.closeSent = true
	var body []byte
	if code != ws.StatusNoStatusRcvd {
		body = ws.NewCloseFrameBody(code, "")
	}
	c.wbuf = c.wbuf[:0]
	c.appendFrameLocked(ws.OpClose, body)
	return c.flushLocked()
}

// flushLocked writes wbuf, under wmu.
func (c *wsConn) flushLocked() error {
	c.conn.SetWriteDeadline(time.Now().Add(wsWriteTimeout))
	_, err := c.conn.Write(c.wbuf)
	if cap(c.wbuf) > wsKeepBuffer {
		c.wbuf = nil
	}
	return err
}

// appendFrameLocked appends one unfragmented client frame of op with
// payload p, masked with a fresh key (RFC 6455 §5.3), to wbuf, under
// wmu.
func (c *wsConn) appendFrameLocked(op ws.OpCode, p []byte) {
	h := ws.Header{Fin: true, OpCode: op, Masked: true, Mask: ws.NewMask(), Length: int64(len(p))}
	// gobwas/ws's encoder writes the header through an io.Writer: c.hw,
	// which appends to wbuf (a field, so that passing it allocates
	// nothing).
	c.hw.c = c
	if err := ws.WriteHeaderBuffer(&c.hw, h, c.hw.tmp[:]); err != nil {
		// Only a length beyond 2^63 fails, and p is a slice.
		panic(fmt.Sprintf("websocket header: %v", err))
	}
	start := len(c.wbuf)
	c.wbuf = append(c.wbuf, p...)
	ws.Cipher(c.wbuf[start:], h.Mask, 0)
}

// wbufWriter appends what ws.WriteHeaderBuffer writes to its
// connection's wbuf, under wmu.
type wbufWriter struct {
	c   *wsConn
	tmp [ws.MaxHeaderSize]byte
}

func (w *wbufWriter) Write(p []byte) (int, error) {
	w.c.wbuf = append(w.c.wbuf, p...)
	return len(p), nil
}

// finish ends the WebSocket connection after the XMPP stream has closed:
// our close frame (1000) if not sent yet, then frames are read and
// dropped until the server's close frame or the end of the connection,
// for at most d, and the connection is closed.
func (c *wsConn) finish(d time.Duration) {
	c.writeClose(ws.StatusNormalClosure)
	c.conn.SetReadDeadline(time.Now().Add(d))
	for {
		if _, _, err := c.readMessage(); err != nil {
			break
		}
	}
	c.conn.Close()
}
