// Command wslib measures what an idle WebSocket connection costs a Go
// server with each candidate library, for docs/design/003-websocket.md:
// RSS, live heap, stacks and goroutines per idle connection, and CPU per
// small message echoed.
//
// Run without -serve it is the client and the driver: for each library
// and size it starts itself again with -serve LIB as the server (so the
// server's memory is measured alone), opens N WebSocket connections to it
// on 127.0.0.1 with the subprotocol "xmpp", exchanges one text message on
// each, leaves them idle and asks the server for its figures; then it
// echoes -msgs small messages over -busy of the connections, one at a
// time on each, and asks for the server's CPU time.
//
// Servers:
//
//	coder   github.com/coder/websocket as documented: the handler's
//	        goroutine reads the connection for its life.
//	gorilla github.com/gorilla/websocket as documented: the same.
//	gobwas  github.com/gobwas/ws's low-level frame API; the idle
//	        connection is parked in internal/netpoll (no goroutine, no
//	        buffer), and its readability starts a goroutine that reads the
//	        frames there are with a pooled buffer, answers them, and parks
//	        the connection again.
//	gobwas-wait  the same, but a woken connection waits a second for its
//	        next frame on its goroutine before it is parked again, as
//	        boshd's upstream streams do (xmpp.Conn.Park, park_after).
//	own     the same parking as gobwas, over a frame reader/writer and handshake of
//	        this file's own on the standard library: what writing the frame
//	        layer in-house would give.
package main

import (
	"bufio"
	"context"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	coder "github.com/coder/websocket"
	"github.com/gobwas/ws"
	gorilla "github.com/gorilla/websocket"

	"github.com/boshd/boshd/internal/netpoll"
	"github.com/boshd/boshd/internal/testcert"
)

// useTLS is -tls, in the driver and in the server it starts.
var useTLS bool

const (
	openMsg = `<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="example.com" version="1.0"/>`
	chatMsg = `<message to="bob@example.com" type="chat"><body>hello</body></message>`
	maxMsg  = 64 << 10
)

func main() {
	serve := flag.String("serve", "", "run as the server with this library (coder, gorilla, gobwas, gobwas-wait, own)")
	libs := flag.String("libs", "coder,gorilla,gobwas,gobwas-wait,own", "libraries to measure, comma-separated")
	sizes := flag.String("n", "1000,5000", "numbers of idle connections, comma-separated")
	runs := flag.Int("runs", 2, "runs of each library and size")
	msgs := flag.Int("msgs", 50000, "messages echoed for the CPU figure")
	busy := flag.Int("busy", 100, "connections the messages are spread over")
	settle := flag.Duration("settle", 2*time.Second, "wait after the connections are idle, before sampling")
	flag.BoolVar(&useTLS, "tls", false, "WebSocket over TLS (wss://, a self-signed certificate) instead of plain ws://")
	flag.Parse()
	raiseNOFILE()
	if *serve != "" {
		if err := server(*serve); err != nil {
			fmt.Fprintln(os.Stderr, "wslib server:", err)
			os.Exit(1)
		}
		return
	}
	fmt.Printf("%-11s %6s %4s %10s %10s %10s %8s %8s\n", "library", "conns", "run", "RSS KiB/c", "heap KiB/c", "stack KiB/c", "gor/c", "µs/msg")
	for _, lib := range strings.Split(*libs, ",") {
		for _, s := range strings.Split(*sizes, ",") {
			n, err := strconv.Atoi(s)
			if err != nil {
				fmt.Fprintln(os.Stderr, "wslib: -n:", err)
				os.Exit(2)
			}
			for r := 1; r <= *runs; r++ {
				res, err := measure(lib, n, *msgs, min(*busy, n), *settle)
				if err != nil {
					fmt.Fprintf(os.Stderr, "wslib: %s n=%d run %d: %v\n", lib, n, r, err)
					os.Exit(1)
				}
				fmt.Printf("%-11s %6d %4d %10.2f %10.2f %11.2f %8.3f %8.1f\n", lib, n, r, res.rss, res.heap, res.stack, res.gor, res.usPerMsg)
			}
		}
	}
}

// raiseNOFILE lifts the soft open-file limit to the hard one.
func raiseNOFILE() {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil && rl.Cur < rl.Max {
		rl.Cur = rl.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
}

// ---- the driver and client ----

type result struct{ rss, heap, stack, gor, usPerMsg float64 }

type stats struct {
	rssKiB, heapInuse, stackInuse, goroutines, cpuNS int64
}

// srv is a server process, asked for its figures through its stdin.
type srv struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
	addr string
}

func startServer(lib string) (*srv, error) {
	cmd := exec.Command(os.Args[0], "-serve", lib, "-tls="+strconv.FormatBool(useTLS))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &srv{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	line, err := s.line()
	if err != nil {
		s.stop()
		return nil, err
	}
	s.addr = strings.TrimPrefix(line, "addr ")
	return s, nil
}

func (s *srv) line() (string, error) {
	done := make(chan bool, 1)
	go func() { done <- s.out.Scan() }()
	select {
	case ok := <-done:
		if !ok {
			return "", fmt.Errorf("server ended: %v", s.out.Err())
		}
		return s.out.Text(), nil
	case <-time.After(60 * time.Second):
		return "", errors.New("server did not answer in 60 s")
	}
}

func (s *srv) stats() (st stats, err error) {
	if _, err := io.WriteString(s.in, "stats\n"); err != nil {
		return st, err
	}
	line, err := s.line()
	if err != nil {
		return st, err
	}
	_, err = fmt.Sscan(line, &st.rssKiB, &st.heapInuse, &st.stackInuse, &st.goroutines, &st.cpuNS)
	return st, err
}

func (s *srv) stop() {
	s.in.Close()
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
}

func measure(lib string, n, msgs, busy int, settle time.Duration) (res result, err error) {
	s, err := startServer(lib)
	if err != nil {
		return res, err
	}
	defer s.stop()
	before, err := s.stats()
	if err != nil {
		return res, err
	}
	conns, err := dialAll(s.addr, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	if err != nil {
		return res, err
	}
	time.Sleep(settle)
	idle, err := s.stats()
	if err != nil {
		return res, err
	}
	fn := float64(n)
	res.rss = float64(idle.rssKiB-before.rssKiB) / fn
	res.heap = float64(idle.heapInuse-before.heapInuse) / 1024 / fn
	res.stack = float64(idle.stackInuse-before.stackInuse) / 1024 / fn
	res.gor = float64(idle.goroutines-before.goroutines) / fn

	if err := echoMany(conns[:busy], msgs); err != nil {
		return res, err
	}
	after, err := s.stats()
	if err != nil {
		return res, err
	}
	res.usPerMsg = float64(after.cpuNS-idle.cpuNS) / 1000 / float64(msgs)
	return res, nil
}

// dialAll opens n connections, 32 at a time, each with the handshake and
// one message echoed.
func dialAll(addr string, n int) ([]*gorilla.Conn, error) {
	conns := make([]*gorilla.Conn, n)
	d := gorilla.Dialer{
		// Loopback only, to a certificate made for this run.
		TLSClientConfig:  &tls.Config{InsecureSkipVerify: true},
		Subprotocols:     []string{"xmpp"},
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   512,
		WriteBufferSize:  512,
	}
	var next atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				c, err := dialOne(&d, addr)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("connection %d: %w", i, err)
					}
					mu.Unlock()
					return
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	return conns, firstErr
}

func dialOne(d *gorilla.Dialer, addr string) (*gorilla.Conn, error) {
	scheme := "ws://"
	if useTLS {
		scheme = "wss://"
	}
	c, resp, err := d.Dial(scheme+addr+"/xmpp-websocket", nil)
	if err != nil {
		return nil, err
	}
	if c.Subprotocol() != "xmpp" {
		c.Close()
		return nil, fmt.Errorf("subprotocol %q selected (status %d)", c.Subprotocol(), resp.StatusCode)
	}
	if err := echo(c, openMsg); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func echo(c *gorilla.Conn, msg string) error {
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := c.WriteMessage(gorilla.TextMessage, []byte(msg)); err != nil {
		return err
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	mt, b, err := c.ReadMessage()
	if err != nil {
		return err
	}
	if mt != gorilla.TextMessage || string(b) != msg {
		return fmt.Errorf("echo: got type %d %q", mt, b)
	}
	return nil
}

// echoMany sends msgs messages over conns, one outstanding per connection.
func echoMany(conns []*gorilla.Conn, msgs int) error {
	per := msgs / len(conns)
	errs := make(chan error, len(conns))
	for _, c := range conns {
		go func() {
			for i := 0; i < per; i++ {
				if err := echo(c, chatMsg); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	var first error
	for range conns {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// ---- the server ----

func server(lib string) error {
	var h http.Handler
	switch lib {
	case "coder":
		h = http.HandlerFunc(serveCoder)
	case "gorilla":
		h = http.HandlerFunc(serveGorilla)
	case "gobwas", "gobwas-wait", "own":
		p, err := netpoll.New()
		if err != nil {
			return err
		}
		h = &parking{poller: p, own: lib == "own"}
		if lib == "gobwas-wait" {
			h = &parking{poller: p, parkAfter: time.Second}
		}
	default:
		return fmt.Errorf("unknown library %q", lib)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	if useTLS {
		cert, err := testcert.SelfSigned("127.0.0.1")
		if err != nil {
			return err
		}
		cfg := cert.ServerConfig()
		cfg.NextProtos = []string{"http/1.1"}
		ln = tls.NewListener(ln, cfg)
	}
	mux := http.NewServeMux()
	mux.Handle("/xmpp-websocket", h)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	fmt.Printf("addr %s\n", ln.Addr())
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if in.Text() != "stats" {
			continue
		}
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		cpu := ru.Utime.Nano() + ru.Stime.Nano()
		fmt.Printf("%d %d %d %d %d\n", vmRSS(), ms.HeapInuse, ms.StackInuse, runtime.NumGoroutine(), cpu)
	}
	return nil // stdin closed: the driver is done
}

func vmRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v
		}
	}
	return -1
}

func serveCoder(w http.ResponseWriter, r *http.Request) {
	c, err := coder.Accept(w, r, &coder.AcceptOptions{Subprotocols: []string{"xmpp"}})
	if err != nil {
		return
	}
	if c.Subprotocol() != "xmpp" {
		c.Close(coder.StatusPolicyViolation, "the xmpp subprotocol is required")
		return
	}
	c.SetReadLimit(maxMsg)
	ctx := context.Background()
	for {
		typ, b, err := c.Read(ctx)
		if err != nil {
			return
		}
		if err := c.Write(ctx, typ, b); err != nil {
			return
		}
	}
}

var gorillaUp = gorilla.Upgrader{Subprotocols: []string{"xmpp"}}

func serveGorilla(w http.ResponseWriter, r *http.Request) {
	c, err := gorillaUp.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer c.Close()
	if c.Subprotocol() != "xmpp" {
		return
	}
	c.SetReadLimit(maxMsg)
	for {
		typ, b, err := c.ReadMessage()
		if err != nil {
			return
		}
		if err := c.WriteMessage(typ, b); err != nil {
			return
		}
	}
}

// parking serves WebSocket connections that wait in a netpoll.Poller
// between messages.
type parking struct {
	poller *netpoll.Poller
	own    bool // own frame layer instead of gobwas/ws
	// parkAfter is how long a woken connection waits for its next frame
	// on its goroutine (in the runtime poller, with no buffer) before it
	// is parked, as xmpp.Conn.Park does; 0 parks it at once.
	parkAfter time.Duration
}

var gobwasUp = ws.HTTPUpgrader{Protocol: func(p string) bool { return p == "xmpp" }}

// pconn is a parked connection: all it holds between messages.
type pconn struct {
	p  *parking
	nc net.Conn
	rc syscall.RawConn
}

var (
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}
	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4096) }}
)

func (p *parking) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var nc net.Conn
	var br *bufio.Reader
	if p.own {
		var err error
		if nc, br, err = ownUpgrade(w, r); err != nil {
			return
		}
	} else {
		conn, rw, hs, err := gobwasUp.Upgrade(r, w)
		if err != nil {
			return
		}
		if hs.Protocol != "xmpp" {
			conn.Close()
			return
		}
		nc, br = conn, rw.Reader
	}
	sock := nc
	if tc, ok := nc.(*tls.Conn); ok {
		sock = tc.NetConn()
	}
	tc, ok := sock.(*net.TCPConn)
	if !ok {
		nc.Close()
		return
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		nc.Close()
		return
	}
	c := &pconn{p: p, nc: nc, rc: rc}
	if br.Buffered() > 0 { // the client did not wait for the handshake's answer
		if !c.frames(br) {
			nc.Close()
			return
		}
	}
	c.park() // net/http's buffers for this connection are garbage from here
}

func (c *pconn) park() {
	if _, err := c.p.poller.Watch(c.rc, netpoll.Readable, func() { go c.wake() }); err != nil {
		c.nc.Close()
	}
}

// wake reads and answers the frames there are, then parks again.
func (c *pconn) wake() {
	br := readers.Get().(*bufio.Reader)
	br.Reset(c.nc)
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	ok := c.frames(br)
	c.nc.SetReadDeadline(time.Time{})
	br.Reset(nil)
	readers.Put(br)
	for ok && c.p.parkAfter > 0 {
		c.nc.SetReadDeadline(time.Now().Add(c.p.parkAfter))
		err := netpoll.AwaitReadable(c.rc)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			c.nc.SetReadDeadline(time.Time{})
			break
		}
		if err != nil {
			ok = false
			break
		}
		br = readers.Get().(*bufio.Reader)
		br.Reset(c.nc)
		c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		ok = c.frames(br)
		c.nc.SetReadDeadline(time.Time{})
		br.Reset(nil)
		readers.Put(br)
	}
	if ok {
		c.park()
	} else {
		c.nc.Close()
	}
}

// frameHeader is what the server needs of a client frame's header.
type frameHeader struct {
	fin    bool
	op     byte
	masked bool
	mask   [4]byte
	length int64
}

// frames handles frames from br until it holds no more; false ends the
// connection.
func (c *pconn) frames(br *bufio.Reader) bool {
	for {
		h, err := c.readHeader(br)
		if err != nil {
			return false
		}
		if !h.masked || h.length > maxMsg || !h.fin {
			c.closeWith(1002) // protocol error; 1009 for size in the real thing
			return false
		}
		payload := make([]byte, h.length)
		if _, err := io.ReadFull(br, payload); err != nil {
			return false
		}
		if c.p.own {
			unmask(payload, h.mask)
		} else {
			ws.Cipher(payload, h.mask, 0)
		}
		switch h.op {
		case 0x1: // text
			if !c.write(0x1, payload) {
				return false
			}
		case 0x9: // ping
			if !c.write(0xA, payload) {
				return false
			}
		case 0xA: // pong
		case 0x8: // close
			c.write(0x8, payload)
			return false
		default:
			c.closeWith(1003)
			return false
		}
		if br.Buffered() == 0 && c.drained(br) {
			return true
		}
	}
}

// drained reports whether nothing is left to read without waiting: over
// TLS, tls.Conn may hold a record, or part of one, that the socket says
// nothing more about; a read with a deadline already past returns it, or
// a timeout that tls.Conn does not keep (as xmpp/source.go does).
func (c *pconn) drained(br *bufio.Reader) bool {
	if _, ok := c.nc.(*tls.Conn); !ok {
		return true
	}
	c.nc.SetReadDeadline(time.Unix(1, 0))
	_, err := br.Peek(1)
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	return errors.Is(err, os.ErrDeadlineExceeded)
}

func (c *pconn) readHeader(br *bufio.Reader) (frameHeader, error) {
	if c.p.own {
		return ownReadHeader(br)
	}
	h, err := ws.ReadHeader(br)
	return frameHeader{fin: h.Fin, op: byte(h.OpCode), masked: h.Masked, mask: h.Mask, length: h.Length}, err
}

func unmask(b []byte, mask [4]byte) {
	for i := range b {
		b[i] ^= mask[i&3]
	}
}

func (c *pconn) write(op byte, payload []byte) bool {
	bw := writers.Get().(*bufio.Writer)
	bw.Reset(c.nc)
	c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	var err error
	if c.p.own {
		err = ownWriteFrame(bw, op, payload)
	} else {
		err = ws.WriteFrame(bw, ws.NewFrame(ws.OpCode(op), true, payload))
	}
	if err == nil {
		err = bw.Flush()
	}
	bw.Reset(nil)
	writers.Put(bw)
	return err == nil
}

func (c *pconn) closeWith(code uint16) {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], code)
	c.write(0x8, b[:])
}

// ---- the in-house frame layer (RFC 6455 §4.2.2, §5.2), for comparison ----

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

func ownUpgrade(w http.ResponseWriter, r *http.Request) (net.Conn, *bufio.Reader, error) {
	key := r.Header.Get("Sec-WebSocket-Key")
	if r.Method != http.MethodGet || !headerHas(r.Header, "Connection", "upgrade") ||
		!headerHas(r.Header, "Upgrade", "websocket") || r.Header.Get("Sec-WebSocket-Version") != "13" || key == "" {
		http.Error(w, "not a WebSocket handshake", http.StatusBadRequest)
		return nil, nil, errors.New("bad handshake")
	}
	if !headerHas(r.Header, "Sec-WebSocket-Protocol", "xmpp") {
		http.Error(w, "the xmpp subprotocol is required", http.StatusBadRequest)
		return nil, nil, errors.New("no xmpp subprotocol")
	}
	nc, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, nil, err
	}
	sum := sha1.Sum([]byte(key + wsGUID))
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(sum[:]) + "\r\n" +
		"Sec-WebSocket-Protocol: xmpp\r\n\r\n"
	nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(nc, resp); err != nil {
		nc.Close()
		return nil, nil, err
	}
	nc.SetWriteDeadline(time.Time{})
	return nc, rw.Reader, nil
}

// headerHas reports whether a comma-separated header lists token.
func headerHas(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

func ownReadHeader(br *bufio.Reader) (h frameHeader, err error) {
	var b [14]byte
	if _, err = io.ReadFull(br, b[:2]); err != nil {
		return h, err
	}
	if b[0]&0x70 != 0 {
		return h, errors.New("reserved bits set")
	}
	h.fin = b[0]&0x80 != 0
	h.op = b[0] & 0x0f
	h.masked = b[1]&0x80 != 0
	n := int64(b[1] & 0x7f)
	switch n {
	case 126:
		if _, err = io.ReadFull(br, b[:2]); err != nil {
			return h, err
		}
		n = int64(binary.BigEndian.Uint16(b[:2]))
	case 127:
		if _, err = io.ReadFull(br, b[:8]); err != nil {
			return h, err
		}
		u := binary.BigEndian.Uint64(b[:8])
		if u > 1<<62 {
			return h, errors.New("length out of range")
		}
		n = int64(u)
	}
	h.length = n
	if h.op >= 0x8 && (n > 125 || !h.fin) {
		return h, errors.New("bad control frame")
	}
	if h.masked {
		if _, err = io.ReadFull(br, h.mask[:]); err != nil {
			return h, err
		}
	}
	return h, nil
}

func ownWriteFrame(bw *bufio.Writer, op byte, payload []byte) error {
	var b [10]byte
	b[0] = 0x80 | op
	n := len(payload)
	hl := 2
	switch {
	case n < 126:
		b[1] = byte(n)
	case n <= 0xffff:
		b[1] = 126
		binary.BigEndian.PutUint16(b[2:], uint16(n))
		hl = 4
	default:
		b[1] = 127
		binary.BigEndian.PutUint64(b[2:], uint64(n))
		hl = 10
	}
	bw.Write(b[:hl])
	_, err := bw.Write(payload)
	return err
}
