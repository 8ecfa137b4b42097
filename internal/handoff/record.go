package handoff

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"syscall"
	"time"
)

// This file is the channel sessions move over in a live upgrade
// (docs/design/005-live-upgrade.md, "What moves"): the old process dials
// the new one's move socket, a SOCK_SEQPACKET Unix socket beside its
// handoff socket, and sends records, each bytes the caller encoded and
// the descriptors that go with them (SCM_RIGHTS); the new one answers
// each with a record of its own (an acknowledgement, without
// descriptors).
//
// A record is one message, or several when its bytes do not fit in one
// (a SOCK_SEQPACKET message must fit in the socket's send buffer): the
// first carries a header, the descriptors and the first bytes, the others
// the rest, in order. The header says how many bytes and descriptors the
// record has, so that a record cut short, or with a descriptor missing,
// is an error rather than a different record.

// moveSocketName is the name of a process's move socket in its handoff
// socket's directory.
const moveSocketName = "move.sock"

// Record framing.
const (
	recordFirst = 'R' // the first message of a record
	recordMore  = 'C' // a continuation
	recordV1    = 1   // the version of the framing
	// headerLen is the first message's header: kind, version, the
	// number of descriptors, and the record's length.
	headerLen = 1 + 1 + 1 + 4
	// chunk is the most bytes of a record in one message: well under a
	// Unix socket's default send buffer.
	chunk = 32 << 10
	// readBuffer is the receiving buffer, above the largest message, so
	// that a message cut by the kernel (MSG_TRUNC) is never one we sent.
	readBuffer = 2 * chunk
	// MaxRecordFDs is the most descriptors a record carries.
	MaxRecordFDs = 64
	// MaxRecord is the most bytes a record carries.
	MaxRecord = 64 << 20
)

// ErrRecord is the error of a malformed record: cut short, too large,
// with descriptors missing or where none may be. Every descriptor
// received with it has been closed.
var ErrRecord = errors.New("handoff: malformed record")

// MoveSocket returns the path of the move socket of the process whose
// handoff socket is at socket.
func MoveSocket(socket string) string {
	return filepath.Join(filepath.Dir(socket), moveSocketName)
}

// ListenMoves listens on the move socket beside s, for the old process
// of an upgrade to dial and send its sessions over. The socket goes with
// s's directory when s is closed.
func (s *Socket) ListenMoves() (*net.UnixListener, error) {
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: filepath.Join(s.dir, moveSocketName), Net: "unixpacket"})
	if err != nil {
		return nil, fmt.Errorf("handoff: %w", err)
	}
	return ln, nil
}

// A Channel is one end of a move socket's connection: records go each
// way, one at a time each way.
type Channel struct {
	c *net.UnixConn
}

// DialMoves connects to the move socket at path (MoveSocket).
func DialMoves(path string) (*Channel, error) {
	c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		return nil, fmt.Errorf("handoff: %w", err)
	}
	return &Channel{c: c}, nil
}

// NewChannel returns the Channel of a connection accepted on a move
// socket (or one end of a SOCK_SEQPACKET pair).
func NewChannel(c *net.UnixConn) *Channel { return &Channel{c: c} }

// SetDeadline bounds the sends and receives to come.
func (ch *Channel) SetDeadline(t time.Time) error { return ch.c.SetDeadline(t) }

// Close closes the connection.
func (ch *Channel) Close() error { return ch.c.Close() }

// Send sends a record: data, and duplicates of fds, which stay the
// caller's to close.
func (ch *Channel) Send(data []byte, fds []int) error {
	switch {
	case len(fds) > MaxRecordFDs:
		return fmt.Errorf("handoff: a record of %d descriptors, at most %d", len(fds), MaxRecordFDs)
	case len(data) > MaxRecord:
		return fmt.Errorf("handoff: a record of %d bytes, at most %d", len(data), MaxRecord)
	}
	first := min(len(data), chunk)
	msg := make([]byte, headerLen, headerLen+first)
	msg[0], msg[1], msg[2] = recordFirst, recordV1, byte(len(fds))
	binary.BigEndian.PutUint32(msg[3:], uint32(len(data)))
	msg = append(msg, data[:first]...)
	var oob []byte
	if len(fds) > 0 {
		oob = syscall.UnixRights(fds...)
	}
	if _, _, err := ch.c.WriteMsgUnix(msg, oob, nil); err != nil {
		return fmt.Errorf("handoff: sending a record: %w", err)
	}
	msg = make([]byte, 1+chunk)
	for rest := data[first:]; len(rest) > 0; {
		n := min(len(rest), chunk)
		msg = append(msg[:1], rest[:n]...)
		msg[0] = recordMore
		if _, err := ch.c.Write(msg); err != nil {
			return fmt.Errorf("handoff: sending a record: %w", err)
		}
		rest = rest[n:]
	}
	return nil
}

// Receive returns the next record: its bytes and its descriptors, which
// are the caller's (close-on-exec). A record that is malformed is an
// error matching ErrRecord, and no descriptor of it is left open; the
// connection's end is io.EOF.
func (ch *Channel) Receive() (data []byte, fds []int, err error) {
	buf := make([]byte, readBuffer)
	oob := make([]byte, syscall.CmsgSpace(4*MaxRecordFDs))
	defer func() {
		if err != nil {
			closeFDs(fds)
			fds = nil
		}
	}()
	n, oobn, flags, _, err := ch.c.ReadMsgUnix(buf, oob)
	if oobn > 0 {
		// Whatever else is wrong, the descriptors that came are ours to
		// close.
		var perr error
		fds, perr = parseRights(oob[:oobn])
		if err == nil && perr != nil {
			err = perr
		}
	}
	switch {
	case err != nil:
		return nil, fds, err
	case n == 0:
		return nil, fds, errEOF()
	case flags&(syscall.MSG_TRUNC|syscall.MSG_CTRUNC) != 0:
		return nil, fds, fmt.Errorf("%w: a message cut short by the kernel (flags %#x)", ErrRecord, flags)
	case n < headerLen || buf[0] != recordFirst:
		return nil, fds, fmt.Errorf("%w: not the start of a record", ErrRecord)
	case buf[1] != recordV1:
		return nil, fds, fmt.Errorf("%w: framing version %d, want %d", ErrRecord, buf[1], recordV1)
	case int(buf[2]) != len(fds):
		return nil, fds, fmt.Errorf("%w: %d descriptors, %d came", ErrRecord, buf[2], len(fds))
	}
	total := int(binary.BigEndian.Uint32(buf[3:]))
	if total > MaxRecord {
		return nil, fds, fmt.Errorf("%w: %d bytes, at most %d", ErrRecord, total, MaxRecord)
	}
	data = make([]byte, 0, total)
	data = append(data, buf[headerLen:n]...)
	for len(data) < total {
		n, oobn, flags, _, err = ch.c.ReadMsgUnix(buf, oob)
		if oobn > 0 {
			more, _ := parseRights(oob[:oobn])
			closeFDs(more)
			return nil, fds, fmt.Errorf("%w: descriptors in a continuation", ErrRecord)
		}
		switch {
		case err != nil:
			return nil, fds, fmt.Errorf("%w: %d of %d bytes: %v", ErrRecord, len(data), total, err)
		case n == 0:
			return nil, fds, fmt.Errorf("%w: %d of %d bytes, then the end", ErrRecord, len(data), total)
		case flags&syscall.MSG_TRUNC != 0 || buf[0] != recordMore:
			return nil, fds, fmt.Errorf("%w: a bad continuation", ErrRecord)
		}
		data = append(data, buf[1:n]...)
	}
	if len(data) != total {
		return nil, fds, fmt.Errorf("%w: %d bytes, %d announced", ErrRecord, len(data), total)
	}
	return data, fds, nil
}

// parseRights returns the descriptors in a control message; on error,
// those it found.
func parseRights(oob []byte) ([]int, error) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("%w: control message: %v", ErrRecord, err)
	}
	var fds []int
	var errs []error
	for i := range msgs {
		got, err := syscall.ParseUnixRights(&msgs[i])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fds = append(fds, got...)
	}
	if len(errs) > 0 {
		return fds, fmt.Errorf("%w: %v", ErrRecord, errors.Join(errs...))
	}
	return fds, nil
}

// closeFDs closes raw descriptors.
func closeFDs(fds []int) {
	for _, fd := range fds {
		syscall.Close(fd)
	}
}

// CloseFDs closes the descriptors of a record not used.
func CloseFDs(fds []int) { closeFDs(fds) }

// errEOF is the end of the connection.
func errEOF() error { return fmt.Errorf("handoff: the move socket: %w", io.EOF) }
