package bosh

import (
	"context"
	"net"
	"sync"
)

// Listener is a net.Listener for the http.Server that serves a Handler. It
// lets the handler park held requests (docs/design/002): take a
// connection whose request waits from net/http, so that waiting costs no
// goroutine of net/http's and none of its buffers, and give it back once
// the response is written, to be served again as a new connection.
//
// Wrap the server's listener, outside any TLS listener, and set the
// server's ConnContext to the Listener's:
//
//	ln := bosh.NewListener(inner) // inner: net.Listen, or tls.NewListener(...)
//	srv := &http.Server{Handler: h, ConnContext: ln.ConnContext}
//	srv.Serve(ln)
//
// A handler served without a Listener holds requests in net/http.
type Listener struct {
	inner    net.Listener
	accepted chan accepted // from the goroutine calling inner.Accept
	back     chan net.Conn // connections given back
	done     chan struct{} // closed by Close
	close    sync.Once
}

type accepted struct {
	conn net.Conn
	err  error
}

// NewListener returns a Listener accepting connections from inner, which
// it starts doing at once, on a goroutine of its own.
func NewListener(inner net.Listener) *Listener {
	l := &Listener{
		inner:    inner,
		accepted: make(chan accepted),
		back:     make(chan net.Conn),
		done:     make(chan struct{}),
	}
	go l.acceptInner()
	return l
}

// Accept returns the next connection: a new one from the inner listener
// or one given back after a parked request was answered. Errors of the
// inner listener are returned as they are.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.back:
		return c, nil
	case a := <-l.accepted:
		return a.conn, a.err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// acceptInner accepts from the inner listener, one connection (or error)
// at a time, until the Listener is closed.
func (l *Listener) acceptInner() {
	for {
		c, err := l.inner.Accept()
		select {
		case l.accepted <- accepted{c, err}:
		case <-l.done:
			if c != nil {
				c.Close()
			}
			return
		}
	}
}

// Close closes the inner listener. Connections given back afterwards are
// closed.
func (l *Listener) Close() error {
	err := net.ErrClosed
	l.close.Do(func() {
		close(l.done)
		err = l.inner.Close()
	})
	return err
}

// Addr returns the inner listener's address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

// giveBack returns c to the server, or closes it if the Listener is
// closed. It blocks until the server accepts c.
func (l *Listener) giveBack(c net.Conn) {
	select {
	case l.back <- c:
	case <-l.done:
		c.Close()
	}
}

// closed reports whether Close has been called.
func (l *Listener) closed() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// ConnContext is for http.Server.ConnContext: it records in the
// connection's context that c came from l, so the handler may park
// requests that arrive on it.
func (l *Listener) ConnContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, &connOrigin{ln: l, conn: c})
}

type connKey struct{}

// connOrigin is a connection served through a Listener.
type connOrigin struct {
	ln   *Listener
	conn net.Conn
}

// originOf returns where the connection of r came from, nil if not from a
// Listener.
func originOf(ctx context.Context) *connOrigin {
	o, _ := ctx.Value(connKey{}).(*connOrigin)
	return o
}
