package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// maxConns is how many connections a BOSH session opens to the manager
// at most, as a browser tab does (BOSH requests='2'): a request beyond
// them waits for one to be free.
const maxConns = 2

// httpClient is the HTTP/1.1 client of one BOSH session: at most
// maxConns connections to the manager, each kept alive from one request
// to the next and never shared with another session.
//
// It replaces net/http's client, which cost the generator more per
// stanza than boshd spent relaying it (issue 20): there a request went
// through three goroutines (the caller, the connection's writer and its
// reader) and the channels between them, and built a header map each
// way. Here a request is one write and the reads of its answer, on the
// goroutine that posts it. It speaks only what boshload needs: POST with
// a body, answers with Content-Length or chunked, gzip or not, keep-alive.
type httpClient struct {
	// Immutable.
	host   string // the Host header
	target string // the request target: path and query
	addr   string // host:port to dial
	https  bool   // TLS over the connection, verified as net/http would
	sni    string // the server name TLS checks
	dial   dialFunc

	// slots holds a token per connection in use.
	slots chan struct{}
	// resends counts the requests sent again on a new connection.
	resends atomic.Int64

	mu     sync.Mutex
	idle   []*httpConn // kept-alive connections not in use; guarded by mu
	closed bool        // close was called: connections given back are closed; guarded by mu
}

// httpConn is one connection of an httpClient, used by one request at a
// time.
type httpConn struct {
	nc     net.Conn
	br     *bufio.Reader
	wbuf   []byte       // the request being written
	gz     *gzip.Reader // kept for the next gzip body; nil until one
	reused bool         // it has carried a request before
}

// newHTTPClient returns the client of a session posting to u, dialling
// with dial.
func newHTTPClient(u *url.URL, dial dialFunc) *httpClient {
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return &httpClient{
		host:   u.Host,
		target: u.RequestURI(),
		addr:   net.JoinHostPort(u.Hostname(), port),
		https:  u.Scheme == "https",
		sni:    u.Hostname(),
		dial:   dial,
		slots:  make(chan struct{}, maxConns),
	}
}

// httpResult is one answer.
type httpResult struct {
	status int
	body   []byte    // the body, decompressed; owned by the caller
	first  time.Time // when its first byte was read
}

// errBodyTooLong refuses an answer longer than boshload reads.
var errBodyTooLong = fmt.Errorf("response body longer than %d bytes", maxResponseBytes)

// post sends body as a POST and returns the answer. The request is
// bounded by ctx: its deadline, and its cancellation, which closes the
// connection (a held request abandoned). A kept-alive connection the
// server has closed in the meantime gives an error before any byte of
// an answer; the request is then sent once more on a new connection, as
// a BOSH client resends a request lost to the network (XEP-0124 §14.3).
func (c *httpClient) post(ctx context.Context, body string) (httpResult, error) {
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return httpResult{}, ctx.Err()
	}
	defer func() { <-c.slots }()
	for {
		hc, err := c.conn(ctx)
		if err != nil {
			return httpResult{}, err
		}
		res, keep, answered, err := c.roundTrip(ctx, hc, body)
		if err == nil && keep {
			c.put(hc)
		} else {
			hc.nc.Close()
		}
		if err != nil && hc.reused && !answered && ctx.Err() == nil {
			c.resends.Add(1)
			continue // the server had closed it: once more on a new one
		}
		return res, err
	}
}

// conn returns an idle connection, or a new one.
func (c *httpClient) conn(ctx context.Context) (*httpConn, error) {
	c.mu.Lock()
	if n := len(c.idle); n > 0 {
		hc := c.idle[n-1]
		c.idle = c.idle[:n-1]
		c.mu.Unlock()
		return hc, nil
	}
	c.mu.Unlock()
	nc, err := c.dial(ctx, "tcp", c.addr)
	if err != nil {
		return nil, err
	}
	if c.https {
		tc := tls.Client(nc, &tls.Config{ServerName: c.sni})
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, err
		}
		nc = tc
	}
	return &httpConn{nc: nc, br: bufio.NewReaderSize(nc, 4<<10)}, nil
}

// put keeps hc for the next request, or closes it if the client is
// closed.
func (c *httpClient) put(hc *httpConn) {
	hc.reused = true
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || len(c.idle) >= maxConns {
		hc.nc.Close()
		return
	}
	c.idle = append(c.idle, hc)
}

// close closes the idle connections, and those in use as they are given
// back.
func (c *httpClient) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for _, hc := range c.idle {
		hc.nc.Close()
	}
	c.idle = nil
}

// aLongTimeAgo is a deadline in the past: I/O with it fails at once.
var aLongTimeAgo = time.Unix(1, 0)

// roundTrip writes the request on hc and reads the answer. keep reports
// whether hc may carry another request; answered whether any byte of an
// answer was read.
func (c *httpClient) roundTrip(ctx context.Context, hc *httpConn, body string) (res httpResult, keep, answered bool, err error) {
	deadline, _ := ctx.Deadline() // zero: none
	if err := hc.nc.SetDeadline(deadline); err != nil {
		return res, false, false, err
	}
	// Cancelling ctx unblocks the read of a held request.
	stop := context.AfterFunc(ctx, func() { hc.nc.SetDeadline(aLongTimeAgo) })
	defer func() {
		if !stop() {
			// ctx ended during the request: its error says why (the
			// read's own is the deadline that ended it, not a timeout).
			keep = false
			if err != nil {
				err = fmt.Errorf("%w (%v)", ctx.Err(), err)
			}
		}
	}()

	b := append(hc.wbuf[:0], "POST "...)
	b = append(b, c.target...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, c.host...)
	b = append(b, "\r\nUser-Agent: boshload\r\nContent-Type: text/xml; charset=utf-8\r\nAccept-Encoding: gzip\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n\r\n"...)
	b = append(b, body...)
	if cap(b) <= 64<<10 {
		hc.wbuf = b
	}
	if _, err := hc.nc.Write(b); err != nil {
		return res, false, false, err
	}
	if _, err := hc.br.Peek(1); err != nil {
		return res, false, false, err
	}
	res.first = time.Now()
	res.status, res.body, keep, err = hc.readResponse()
	return res, keep, true, err
}

// readResponse reads a response to a POST.
func (hc *httpConn) readResponse() (status int, body []byte, keep bool, err error) {
	var h header
	for {
		if h, err = readHeader(hc.br); err != nil {
			return 0, nil, false, err
		}
		if h.status >= 200 {
			break
		}
		// 1xx: an interim answer, then the real one.
	}
	var r io.Reader
	switch {
	case h.chunked:
		r = httputil.NewChunkedReader(hc.br)
	case h.length >= 0:
		if h.length > maxResponseBytes {
			return 0, nil, false, errBodyTooLong
		}
		if !h.gzip {
			// The common case: read the body at once.
			body = make([]byte, h.length)
			if _, err := io.ReadFull(hc.br, body); err != nil {
				return 0, nil, false, err
			}
			return h.status, body, h.keep, nil
		}
		r = io.LimitReader(hc.br, h.length)
	default:
		h.keep = false // delimited by the end of the connection
		r = hc.br
	}
	raw := r
	if h.gzip {
		if hc.gz == nil {
			hc.gz, err = gzip.NewReader(r)
		} else {
			err = hc.gz.Reset(r)
		}
		if err != nil {
			return 0, nil, false, fmt.Errorf("gzip body: %w", err)
		}
		r = hc.gz
	}
	body, err = io.ReadAll(io.LimitReader(r, maxResponseBytes+1))
	if err != nil {
		return 0, nil, false, err
	}
	if len(body) > maxResponseBytes {
		return 0, nil, false, errBodyTooLong
	}
	// Whatever gzip left of the body, then a chunked body's trailer.
	if _, err := io.Copy(io.Discard, io.LimitReader(raw, maxResponseBytes)); err != nil {
		return 0, nil, false, err
	}
	if h.chunked {
		for {
			line, err := readLine(hc.br)
			if err != nil {
				return 0, nil, false, err
			}
			if len(line) == 0 {
				break
			}
		}
	}
	return h.status, body, h.keep, nil
}

// header is what boshload reads of a response's header.
type header struct {
	status  int
	length  int64 // Content-Length; -1 if none
	chunked bool  // Transfer-Encoding: chunked
	gzip    bool  // Content-Encoding: gzip
	keep    bool  // the connection may carry another request
}

// readHeader reads a response's status line and header fields.
func readHeader(br *bufio.Reader) (header, error) {
	h := header{length: -1}
	line, err := readLine(br)
	if err != nil {
		return h, err
	}
	// HTTP/1.x SP 3DIGIT SP reason
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return h, fmt.Errorf("malformed status line %q", clip(line))
	}
	h.keep = line[7] == '1' // HTTP/1.1 keeps alive unless told otherwise
	if h.status, err = strconv.Atoi(string(line[9:12])); err != nil || h.status < 100 {
		return h, fmt.Errorf("malformed status line %q", clip(line))
	}
	for {
		line, err := readLine(br)
		if err != nil {
			return h, err
		}
		if len(line) == 0 {
			return h, nil
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return h, fmt.Errorf("malformed header field %q", clip(line))
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 {
				return h, fmt.Errorf("malformed Content-Length %q", clip(value))
			}
			h.length = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			h.chunked = bytes.EqualFold(value, []byte("chunked"))
			if !h.chunked {
				return h, fmt.Errorf("unsupported Transfer-Encoding %q", clip(value))
			}
		case bytes.EqualFold(name, []byte("Content-Encoding")):
			h.gzip = bytes.EqualFold(value, []byte("gzip"))
			if !h.gzip && !bytes.EqualFold(value, []byte("identity")) {
				return h, fmt.Errorf("unsupported Content-Encoding %q", clip(value))
			}
		case bytes.EqualFold(name, []byte("Connection")):
			for _, opt := range bytes.Split(value, []byte(",")) {
				switch opt = bytes.TrimSpace(opt); {
				case bytes.EqualFold(opt, []byte("close")):
					h.keep = false
				case bytes.EqualFold(opt, []byte("keep-alive")):
					h.keep = true
				}
			}
		}
	}
}

// readLine returns the next line of a header without its line end. It
// is valid until the next read.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return nil, errors.New("header line too long")
	}
	if err != nil {
		if errors.Is(err, io.EOF) && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	line = bytes.TrimSuffix(line[:len(line)-1], []byte("\r"))
	return line, nil
}
