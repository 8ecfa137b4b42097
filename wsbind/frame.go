package wsbind

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// This file turns client frames into messages and messages into server
// frames (RFC 6455 §5, RFC 7395 §3). It is the only one to know gobwas/ws's
// frame API, so that another frame layer could replace it here alone.

// closeCode is a WebSocket close status code (RFC 6455 §7.4).
type closeCode uint16

// The close codes boshd sends (RFC 6455 §7.4.1; 1012 from IANA's
// WebSocket close code registry).
const (
	closeNormal          closeCode = 1000
	closeProtocolError   closeCode = 1002
	closeUnsupportedData closeCode = 1003
	closeNoStatus        closeCode = 1005 // never sent: a close frame without a code
	closeInvalidPayload  closeCode = 1007
	closePolicyViolation closeCode = 1008
	closeMessageTooBig   closeCode = 1009
	closeInternalError   closeCode = 1011
	closeServiceRestart  closeCode = 1012
)

// maxControlPayload is the largest payload of a control frame (RFC 6455
// §5.5), and so of a close frame's code and reason together.
const maxControlPayload = 125

// A closeError ends a client's WebSocket connection. Returned by
// readMessage, it is either what the client's input calls for (remote
// false: the caller has yet to send the close frame, after a stream error
// if the design asks for one, as for closeMessageTooBig), or the close
// frame the client sent (remote true: already answered).
type closeError struct {
	code   closeCode
	reason string
	remote bool
}

func (e *closeError) Error() string {
	if e.remote {
		return fmt.Sprintf("wsbind: the client closed the WebSocket (%d %q)", e.code, e.reason)
	}
	return fmt.Sprintf("wsbind: closing the WebSocket with %d: %s", e.code, e.reason)
}

// protocolError returns the closeError for a frame that breaks RFC 6455.
func protocolError(why string) *closeError {
	return &closeError{code: closeProtocolError, reason: why}
}

// Framing elements of RFC 7395 §3.3.
const (
	nsFraming = "urn:ietf:params:xml:ns:xmpp-framing"
	// closeMessage is boshd's <close/>, byte for byte the only form
	// Strophe.js recognises as a server's close.
	closeMessage = `<close xmlns="` + nsFraming + `" />`
)

// streamHeader is what boshd's <open/> tells the client: the upstream
// stream header's fields (RFC 7395 §3.4). Empty fields are left out.
type streamHeader struct {
	from, id, version, lang string
}

// appendOpen appends to dst the <open/> element for h, its attribute
// values escaped (characters XML does not allow, and invalid UTF-8,
// become U+FFFD).
func appendOpen(dst []byte, h streamHeader) []byte {
	dst = append(dst, `<open xmlns="`+nsFraming+`"`...)
	for _, a := range [...]struct{ name, value string }{
		{"from", h.from}, {"id", h.id}, {"version", h.version}, {"xml:lang", h.lang},
	} {
		if a.value == "" {
			continue
		}
		dst = append(dst, ' ')
		dst = append(dst, a.name...)
		dst = append(dst, `="`...)
		dst = appendAttr(dst, a.value)
		dst = append(dst, '"')
	}
	return append(dst, " />"...)
}

// appendAttr appends s escaped for a double-quoted XML attribute value.
// Tab, newline and carriage return are written as character references,
// which attribute-value normalisation (XML 1.0 §3.3.3) leaves as they are.
func appendAttr(dst []byte, s string) []byte {
	for _, r := range s {
		switch {
		case r < utf8.RuneSelf && attrEscapes[r] != "":
			dst = append(dst, attrEscapes[r]...)
		case !xmlChar(r): // RuneError for invalid UTF-8 is an XML Char: kept
			dst = utf8.AppendRune(dst, utf8.RuneError)
		default:
			dst = utf8.AppendRune(dst, r)
		}
	}
	return dst
}

// attrEscapes holds what appendAttr writes for the ASCII characters it
// escapes.
var attrEscapes = [utf8.RuneSelf]string{
	'&':  "&amp;",
	'<':  "&lt;",
	'>':  "&gt;",
	'"':  "&quot;",
	'\t': "&#x9;",
	'\n': "&#xA;",
	'\r': "&#xD;",
}

// xmlChar reports whether r is a Char of XML 1.0 §2.2.
func xmlChar(r rune) bool {
	return r == 0x9 || r == 0xA || r == 0xD ||
		(r >= 0x20 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= 0x10FFFF)
}

// readMessage reads what the client sends next from br, which reads its
// connection: a text message, its fragments reassembled and appended to
// dst (ok true), or a ping or pong between messages (ok false: msg is
// dst, and the caller may park the connection if nothing more is
// buffered). A ping is answered with a pong through w, a pong ignored; a
// close frame is answered with a close frame echoing its code (unless w
// has sent one already) and returned as a *closeError with remote set.
// Control frames between a message's fragments are handled the same way,
// and the message read on.
//
// A message whose fragments add up to more than limit bytes is refused,
// from the header of the frame that would pass it, before its payload is
// read: a *closeError with closeMessageTooBig. Input that breaks RFC 6455
// or RFC 7395 §3.2 is a *closeError too: closeProtocolError for an
// unmasked frame, reserved bits, an unknown opcode, a continuation out of
// order, or a control frame fragmented or over 125 bytes;
// closeUnsupportedData for a binary message; closeInvalidPayload for a
// text message that is not UTF-8 (checked once the message is whole).
// Other errors are the connection's, wrapped: io.EOF between messages,
// io.ErrUnexpectedEOF within one, or a read deadline passed
// (os.ErrDeadlineExceeded), which is how the caller bounds a message
// still incomplete when the socket has nothing more (design 003: 30 s,
// then close 1008). msg never holds more than limit bytes beyond dst, and holds
// valid UTF-8 when ok.
//
// The payload is read as it arrives, never allocated from a declared
// length: dst grows with what has been read. br's buffer must hold
// minReadBuffer bytes at least (bufio's default holds 4096).
func readMessage(br *bufio.Reader, w *writer, limit int, dst []byte) (msg []byte, ok bool, err error) {
	if br.Size() < minReadBuffer {
		return dst, false, fmt.Errorf("wsbind: a read buffer of %d bytes, under %d", br.Size(), minReadBuffer)
	}
	start := len(dst)
	msg = dst
	fragmented := false
	for {
		h, err := readHeader(br)
		if err != nil {
			if fragmented && errors.Is(err, io.EOF) {
				err = fmt.Errorf("wsbind: the connection ended within a message: %w", io.ErrUnexpectedEOF)
			}
			return dst, false, err
		}
		state := ws.StateServerSide
		if fragmented {
			state = state.Set(ws.StateFragmented)
		}
		if err := ws.CheckHeader(h, state); err != nil {
			return dst, false, protocolError(err.Error())
		}
		if h.OpCode.IsControl() {
			// At most 125 bytes: read in br's own buffer, unmasked there.
			payload, err := br.Peek(int(h.Length))
			if err != nil {
				return dst, false, fmt.Errorf("wsbind: reading a control frame: %w", unexpected(err))
			}
			ws.Cipher(payload, h.Mask, 0)
			err = control(w, h.OpCode, payload)
			br.Discard(len(payload))
			if err != nil {
				return dst, false, err
			}
			if !fragmented {
				return dst, false, nil
			}
			continue
		}
		if h.OpCode == ws.OpBinary {
			return dst, false, &closeError{code: closeUnsupportedData, reason: "binary frames are not XMPP (RFC 7395 §3.2)"}
		}
		if h.Length > int64(limit-(len(msg)-start)) {
			return dst, false, &closeError{code: closeMessageTooBig, reason: fmt.Sprintf("message over %d bytes", limit)}
		}
		off := len(msg)
		msg, err = readPayload(br, msg, int(h.Length))
		if err != nil {
			return dst, false, fmt.Errorf("wsbind: reading a data frame: %w", unexpected(err))
		}
		ws.Cipher(msg[off:], h.Mask, 0)
		if !h.Fin {
			fragmented = true
			continue
		}
		if !utf8.Valid(msg[start:]) {
			return dst, false, &closeError{code: closeInvalidPayload, reason: "text message not in UTF-8"}
		}
		return msg, true, nil
	}
}

// minReadBuffer is the smallest buffer readMessage reads through: a
// frame header (14 bytes at most) and a control frame's payload (125)
// are read in the buffer itself.
const minReadBuffer = 128

// readHeader reads a frame header from br's own buffer: ws.ReadHeader
// would allocate a buffer for each frame.
func readHeader(br *bufio.Reader) (h ws.Header, err error) {
	b, err := br.Peek(2)
	if err != nil {
		if len(b) > 0 {
			err = unexpected(err)
		}
		return h, fmt.Errorf("wsbind: reading a frame header: %w", err)
	}
	h.Fin = b[0]&0x80 != 0
	h.Rsv = (b[0] & 0x70) >> 4
	h.OpCode = ws.OpCode(b[0] & 0x0f)
	h.Masked = b[1]&0x80 != 0
	n := 2
	switch b[1] & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if h.Masked {
		n += 4
	}
	if b, err = br.Peek(n); err != nil {
		return h, fmt.Errorf("wsbind: reading a frame header: %w", unexpected(err))
	}
	p := b[2:]
	switch l := b[1] & 0x7f; l {
	case 126:
		h.Length = int64(binary.BigEndian.Uint16(p))
		p = p[2:]
	case 127:
		u := binary.BigEndian.Uint64(p)
		if u>>63 != 0 { // RFC 6455 §5.2: the most significant bit must be 0
			return h, protocolError("frame length over 2^63")
		}
		h.Length = int64(u)
		p = p[8:]
	default:
		h.Length = int64(l)
	}
	if h.Masked {
		copy(h.Mask[:], p)
	}
	br.Discard(n)
	return h, nil
}

// unexpected turns io.EOF, met within a frame, into io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readPayload appends n bytes from br to b. b grows as bytes arrive (in
// steps of at most max(cap(b), 512) bytes), so that a declared length
// the client does not send costs nothing.
func readPayload(br *bufio.Reader, b []byte, n int) ([]byte, error) {
	for n > 0 {
		if cap(b) == len(b) {
			b = slices.Grow(b, min(n, max(cap(b), 512)))
		}
		k := min(n, cap(b)-len(b))
		m, err := io.ReadFull(br, b[len(b):len(b)+k])
		b = b[:len(b)+m]
		if err != nil {
			return b, err
		}
		n -= m
	}
	return b, nil
}

// control handles a client's control frame, its payload unmasked.
func control(w *writer, op ws.OpCode, payload []byte) error {
	switch op {
	case ws.OpPing:
		err := w.writeFrame(ws.OpPong, payload, "")
		if errors.Is(err, errCloseSent) {
			return nil // closing: the client's close frame is what is awaited
		}
		return err
	case ws.OpPong:
		return nil
	}
	// A close frame: RFC 6455 §5.5.1 and §7.4.
	if len(payload) == 0 {
		err := w.writeClose(0, "")
		if err != nil && !errors.Is(err, errCloseSent) {
			return err
		}
		return &closeError{code: closeNoStatus, remote: true}
	}
	if len(payload) == 1 {
		return protocolError("close frame with a 1-byte payload")
	}
	code := closeCode(binary.BigEndian.Uint16(payload))
	reason := payload[2:]
	if !validCloseCode(code) {
		return protocolError(fmt.Sprintf("close code %d may not be sent", code))
	}
	if !utf8.Valid(reason) {
		return &closeError{code: closeInvalidPayload, reason: "close reason not in UTF-8"}
	}
	err := w.writeClose(code, "")
	if err != nil && !errors.Is(err, errCloseSent) {
		return err
	}
	return &closeError{code: code, reason: string(reason), remote: true}
}

// validCloseCode reports whether a close frame may carry code (RFC 6455
// §7.4; 1012 to 1014 from IANA's registry, since ws.CheckCloseFrameData
// refuses them, and boshd sends 1012 itself, which a client echoes).
func validCloseCode(code closeCode) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// errCloseSent is the error of a write after the close frame.
var errCloseSent = errors.New("wsbind: close frame already sent")

// writers holds the buffers frames are written through: a writer takes
// one for a write and gives it back, so that an idle connection holds
// none.
var writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4096) }}

// A writer writes server frames to a client connection, one at a time.
// It holds no buffer between writes.
type writer struct {
	conn net.Conn
	// timeout bounds each write; 0: none.
	timeout time.Duration

	// mu is held across one write (a leaf, and the one lock of a session
	// held across I/O: it orders the frames). It guards the fields below.
	mu        sync.Mutex
	closeSent bool
	frozen    bool  // the session is being moved: nothing is written (freeze)
	err       error // the first write error, returned by every later write
}

// errFrozen is the error of a write to the client of a session being
// moved to another process: nothing was written.
var errFrozen = errors.New("wsbind: the session is being moved")

// freeze has every write from now on write nothing and fail with
// errFrozen, once a write under way is over; thaw undoes it.
func (w *writer) freeze() { w.setFrozen(true) }

// thaw undoes freeze.
func (w *writer) thaw() { w.setFrozen(false) }

func (w *writer) setFrozen(f bool) {
	w.mu.Lock()
	w.frozen = f
	w.mu.Unlock()
}

// writeText writes msg as one text message: an unfragmented, unmasked
// text frame.
func (w *writer) writeText(msg []byte) error {
	return w.writeFrame(ws.OpText, msg, "")
}

// writePing writes a ping with payload, at most 125 bytes.
func (w *writer) writePing(payload []byte) error {
	if len(payload) > maxControlPayload {
		return fmt.Errorf("wsbind: ping payload of %d bytes, over %d", len(payload), maxControlPayload)
	}
	return w.writeFrame(ws.OpPing, payload, "")
}

// writeClose writes a close frame with code and reason (cut at a UTF-8
// boundary to fit in 125 bytes), or with no payload if code is 0. Nothing
// can be written after it: later writes return errCloseSent, and so does
// a second writeClose.
func (w *writer) writeClose(code closeCode, reason string) error {
	if code == 0 {
		return w.writeFrame(ws.OpClose, nil, "")
	}
	if len(reason) > maxControlPayload-2 {
		n := maxControlPayload - 2
		for n > 0 && !utf8.RuneStart(reason[n]) {
			n--
		}
		reason = reason[:n]
	}
	var c [2]byte
	binary.BigEndian.PutUint16(c[:], uint16(code))
	return w.writeFrame(ws.OpClose, c[:], reason)
}

// writeFrame writes one final, unmasked frame of op whose payload is p
// followed by s, through a pooled bufio.Writer given back once flushed.
func (w *writer) writeFrame(op ws.OpCode, p []byte, s string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	if w.frozen {
		return errFrozen
	}
	if w.closeSent {
		return errCloseSent
	}
	if op == ws.OpClose {
		w.closeSent = true
	}
	if w.timeout > 0 {
		w.conn.SetWriteDeadline(time.Now().Add(w.timeout))
	}
	bw := writers.Get().(*bufio.Writer)
	bw.Reset(w.conn)
	h := ws.Header{Fin: true, OpCode: op, Length: int64(len(p) + len(s))}
	// The header is built in bw's own buffer (AvailableBuffer is at least
	// 14 bytes in a fresh 4 KiB writer): no allocation.
	err := ws.WriteHeaderBuffer(bw, h, bw.AvailableBuffer())
	if err == nil {
		_, err = bw.Write(p)
	}
	if err == nil {
		_, err = bw.WriteString(s)
	}
	if err == nil {
		err = bw.Flush()
	}
	bw.Reset(nil)
	writers.Put(bw)
	if err != nil {
		w.err = fmt.Errorf("wsbind: writing to the client: %w", err)
		return w.err
	}
	return nil
}
