package xmpp

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/boshd/boshd/internal/netpoll"
)

// bufSize is the size of a Conn's read buffer. rawxml reads byte by byte,
// so a small buffer costs little speed and saves memory per session.
const bufSize = 2 << 10

// bufPool holds the read buffers of idle Conns.
var bufPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, bufSize) }}

// source is the io.ByteReader a Conn's rawxml.Reader reads the server's
// stream through. It is owned by the goroutine reading the stream: the one
// in Dial, then the one calling Next.
//
// On a TCP connection where the platform allows it (see parkable), the
// buffer goes back to bufPool whenever it is empty between two elements,
// and the next read first waits for the socket to become readable, holding
// no buffer while it waits. Over TLS the socket's readiness says nothing
// about bytes tls.Conn has already read and not yet returned, so before
// the buffer goes back, tls.Conn is asked for them without waiting (see
// drained); the socket is awaited only when it has none.
type source struct {
	nc     net.Conn        // the connection read from; TLS after STARTTLS
	br     *bufio.Reader   // nil while released to bufPool
	raw    syscall.RawConn // TCP (under nc) whose readiness can be awaited; else nil
	secure bool            // nc is a tls.Conn over raw

	// wait, if set, is called before a read that may wait for the
	// server: when everything read so far has been consumed.
	wait func()
}

// fill makes sure s has bytes buffered or a buffer to read them into,
// calling s.wait first when the read that follows may wait for the
// server.
func (s *source) fill() error {
	if s.br != nil && s.br.Buffered() > 0 {
		return nil
	}
	if s.wait != nil {
		s.wait()
	}
	if err := s.take(); err != nil {
		return err
	}
	// Read now, so that the wait announced above is the only one.
	_, err := s.br.Peek(1)
	return err
}

// take makes sure s has a buffer, waiting for the socket to become
// readable first if it has none.
func (s *source) take() error {
	if s.br != nil {
		return nil
	}
	if s.raw != nil {
		if err := netpoll.AwaitReadable(s.raw); err != nil {
			return err
		}
	}
	s.br = bufPool.Get().(*bufio.Reader)
	s.br.Reset(s.nc)
	return nil
}

// ReadByte implements io.ByteReader for rawxml.
func (s *source) ReadByte() (byte, error) {
	if s.br == nil || s.br.Buffered() == 0 {
		if err := s.fill(); err != nil {
			return 0, err
		}
	}
	return s.br.ReadByte()
}

// Read implements io.Reader; rawxml only calls ReadByte.
func (s *source) Read(p []byte) (int, error) {
	if err := s.fill(); err != nil {
		return 0, err
	}
	return s.br.Read(p)
}

// skipSpace discards whitespace before the next byte that is not.
func (s *source) skipSpace() error {
	for {
		if err := s.fill(); err != nil {
			return err
		}
		b, err := s.br.Peek(1)
		if err != nil {
			return err
		}
		switch b[0] {
		case ' ', '\t', '\r', '\n':
			s.br.Discard(1)
		default:
			return nil
		}
	}
}

// buffered returns the number of bytes read from the connection but not
// yet consumed.
func (s *source) buffered() int {
	if s.br == nil {
		return 0
	}
	return s.br.Buffered()
}

// idle releases the buffer if the connection allows waiting for it without
// one and nothing is buffered.
func (s *source) idle() {
	if s.raw != nil && s.drained() {
		s.release()
	}
}

// drained reports whether nothing read from the socket is left unconsumed:
// nothing in the buffer and, over TLS, nothing in tls.Conn. To find out,
// it reads from tls.Conn with a read deadline in the past, which returns
// what tls.Conn holds (a whole record already read) without waiting, or
// a timeout that tls.Conn does not keep. Bytes it reads go into the
// buffer, and it reports false; so it does for an error other than the
// timeout, which tls.Conn returns again to the next read.
func (s *source) drained() bool {
	if s.buffered() > 0 {
		return false
	}
	if !s.secure {
		return true
	}
	if s.br == nil {
		// Released when nothing was left, and nobody has read since.
		return true
	}
	if err := s.nc.SetReadDeadline(aLongTimeAgo); err != nil {
		return false
	}
	_, err := s.br.Peek(1)
	if derr := s.nc.SetReadDeadline(time.Time{}); derr != nil {
		return false
	}
	return s.br.Buffered() == 0 && errors.Is(err, os.ErrDeadlineExceeded)
}

// aLongTimeAgo is a deadline that has passed: a read or write with it
// returns at once.
var aLongTimeAgo = time.Unix(1, 0)

// release returns the buffer to bufPool, dropping anything buffered. Use
// it when the stream is over.
func (s *source) release() {
	if s.br == nil {
		return
	}
	s.br.Reset(nil)
	bufPool.Put(s.br)
	s.br = nil
}

// setConn switches s to nc (after STARTTLS), keeping its buffer. Nothing
// may be buffered from the old connection.
func (s *source) setConn(nc net.Conn) {
	s.nc = nc
	tc, secure := nc.(*tls.Conn)
	s.secure = secure
	if secure {
		s.raw = parkable(tc.NetConn())
	} else {
		s.raw = parkable(nc)
	}
	if s.br != nil {
		s.br.Reset(nc)
	}
}

var _ io.ByteReader = (*source)(nil)
