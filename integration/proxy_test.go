package integration

import (
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// tcpProxy forwards TCP connections to a target and counts them. It can
// stop reading from the client side of a connection (boshd's upstream
// writes then fill the socket buffers and block). Its listener has a small
// receive buffer, so that little data is absorbed before a stalled
// connection pushes back.
type tcpProxy struct {
	Addr     string
	ln       net.Listener
	target   string
	accepted atomic.Int64

	mu        sync.Mutex
	conns     []net.Conn
	links     []*proxyLink
	done      chan struct{} // closed by Close
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// proxyLink is one proxied connection.
type proxyLink struct {
	down, up net.Conn
	stall    chan struct{} // closed to stop reading from down
	once     sync.Once
	// forwarded counts bytes copied from down to up.
	mu        sync.Mutex
	forwarded int64
}

// Stall stops reading from the client side of the link: what the client
// writes stays in socket buffers. Reading does not resume.
func (l *proxyLink) Stall() { l.once.Do(func() { close(l.stall) }) }

// Forwarded returns how many bytes went from the client to the target.
func (l *proxyLink) Forwarded() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.forwarded
}

// startProxy listens on 127.0.0.1 and forwards to target until t's
// cleanup.
func startProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			// Accepted sockets inherit it; 4 KiB is doubled by the kernel.
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	sp := &tcpProxy{Addr: ln.Addr().String(), ln: ln, target: target, done: make(chan struct{})}
	sp.wg.Add(1)
	go sp.serve()
	t.Cleanup(sp.Close)
	return sp
}

// Close closes the listener and every connection, and waits for the
// proxy's goroutines. It may be called more than once: a test calls it
// before boshd's cleanup too, so that a boshd blocked writing to a stalled
// connection (were its write timeout broken) is released rather than
// hanging the cleanup.
func (sp *tcpProxy) Close() {
	sp.closeOnce.Do(func() {
		sp.ln.Close()
		close(sp.done)
		sp.mu.Lock()
		for _, c := range sp.conns {
			c.Close()
		}
		sp.mu.Unlock()
	})
	sp.wg.Wait()
}

// Accepted returns how many connections the proxy accepted.
func (sp *tcpProxy) Accepted() int64 { return sp.accepted.Load() }

// Links returns the connections forwarded so far, in order.
func (sp *tcpProxy) Links() []*proxyLink {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return append([]*proxyLink(nil), sp.links...)
}

func (sp *tcpProxy) serve() {
	defer sp.wg.Done()
	for {
		down, err := sp.ln.Accept()
		if err != nil {
			return
		}
		sp.accepted.Add(1)
		up, err := net.DialTimeout("tcp", sp.target, 5*time.Second)
		if err != nil {
			down.Close()
			continue
		}
		l := &proxyLink{down: down, up: up, stall: make(chan struct{})}
		sp.mu.Lock()
		select {
		case <-sp.done: // Close ran while this one was being accepted
			sp.mu.Unlock()
			down.Close()
			up.Close()
			return
		default:
		}
		sp.conns = append(sp.conns, down, up)
		sp.links = append(sp.links, l)
		sp.mu.Unlock()
		sp.wg.Add(2)
		go func() {
			// client → target, until stalled
			defer sp.wg.Done()
			defer up.Close()
			buf := make([]byte, 4096)
			for {
				select {
				case <-l.stall:
					// Keep both connections open without reading
					// until the proxy is closed: what the client
					// writes stays in the socket buffers.
					<-sp.done
					return
				default:
				}
				n, err := down.Read(buf)
				if n > 0 {
					if _, werr := up.Write(buf[:n]); werr != nil {
						return
					}
					l.mu.Lock()
					l.forwarded += int64(n)
					l.mu.Unlock()
				}
				if err != nil {
					return
				}
			}
		}()
		go func() {
			// target → client
			defer sp.wg.Done()
			_, _ = io.Copy(down, up)
			down.Close()
		}()
	}
}
