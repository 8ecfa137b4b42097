package handoff

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// A Parent is, in a child, the process that started it: the sockets it
// handed over and the pair to it. A process started otherwise has none
// (FromEnv returns nil).
type Parent struct {
	pair   *net.UnixConn // the child's end
	socket string        // the parent's handoff socket; "" for none

	mu        sync.Mutex
	listeners map[string]inherited // not yet taken by Listen; guarded by mu
}

type inherited struct {
	addr string
	f    *os.File
}

// FromEnv returns the Parent environ (as os.Environ gives it) describes,
// or nil and no error if it describes none: the process was not started
// by Start. It takes over the inherited descriptors; call it once.
func FromEnv(environ []string) (*Parent, error) {
	var fds, socket string
	for _, kv := range environ {
		if v, ok := cutVar(kv, EnvFDs); ok {
			fds = v
		}
		if v, ok := cutVar(kv, EnvSocket); ok {
			socket = v
		}
	}
	if fds == "" {
		return nil, nil
	}
	list, err := parseFDs(fds)
	if err != nil {
		return nil, err
	}
	pf := os.NewFile(uintptr(list.pair), "handoff-pair")
	if pf == nil {
		return nil, fmt.Errorf("handoff: descriptor %d of the pair is not open", list.pair)
	}
	fc, err := net.FileConn(pf)
	pf.Close()
	if err != nil {
		return nil, fmt.Errorf("handoff: the pair: %w", err)
	}
	pair, ok := fc.(*net.UnixConn)
	if !ok {
		fc.Close()
		return nil, fmt.Errorf("handoff: descriptor %d is a %T, not the pair", list.pair, fc)
	}
	p := &Parent{pair: pair, socket: socket, listeners: make(map[string]inherited)}
	for key, la := range list.listeners {
		p.listeners[key] = inherited{addr: la.addr, f: os.NewFile(uintptr(la.fd), key)}
	}
	return p, nil
}

func cutVar(kv, name string) (string, bool) {
	if len(kv) > len(name) && kv[:len(name)] == name && kv[len(name)] == '=' {
		return kv[len(name)+1:], true
	}
	return "", false
}

// Socket returns the parent's handoff socket, where it serves what its
// successor forwards; "" if it named none.
func (p *Parent) Socket() string { return p.socket }

// Listen returns the socket the parent handed over for key, if it was
// opened for addr; else (addr changed, or none handed over) it listens on
// addr anew, and inherited is false. A socket handed over for another
// address is closed.
func (p *Parent) Listen(key, addr string) (ln net.Listener, inherited bool, err error) {
	p.mu.Lock()
	in, ok := p.listeners[key]
	delete(p.listeners, key)
	p.mu.Unlock()
	if ok && in.addr == addr {
		ln, err = net.FileListener(in.f)
		in.f.Close()
		if err != nil {
			return nil, false, fmt.Errorf("handoff: %s: %w", key, err)
		}
		return ln, true, nil
	}
	if ok {
		in.f.Close()
	}
	ln, err = net.Listen("tcp", addr)
	return ln, false, err
}

// CloseUnused closes the sockets handed over that Listen did not take
// (a key the child's configuration leaves unset), and returns their keys.
func (p *Parent) CloseUnused() []string {
	p.mu.Lock()
	left := p.listeners
	p.listeners = make(map[string]inherited)
	p.mu.Unlock()
	keys := make([]string, 0, len(left))
	for key, in := range left {
		in.f.Close()
		keys = append(keys, key)
	}
	slices.Sort(keys)
	return keys
}

// Ready tells the parent that this process serves, and where its own
// handoff socket is.
func (p *Parent) Ready(socket string) error {
	return p.send([]byte(verbReady + " " + socket))
}

// Fail tells the parent why this process cannot serve; the parent logs
// it. Send it before exiting.
func (p *Parent) Fail(reason string) error { return p.send(failedMessage(reason)) }

func (p *Parent) send(m []byte) error {
	p.pair.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := p.pair.Write(m); err != nil {
		return fmt.Errorf("handoff: telling the parent: %w", err)
	}
	return nil
}

// Watch calls status with each status the parent sends, and returns when
// the parent has closed the pair (it exited) or Close was called.
func (p *Parent) Watch(status func(Status)) error {
	buf := make([]byte, maxMessage)
	moving := false // what the last "moving" said; it comes before its status
	for {
		n, err := p.pair.Read(buf)
		if err != nil || n == 0 {
			if err == nil || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		verb, rest := splitMessage(buf[:n])
		switch verb {
		case verbMoving:
			moving = strings.TrimSpace(rest) == "1"
		case verbStatus:
			if s, err := decodeStatus(strings.Fields(rest)); err == nil {
				s.Moving = moving
				status(s)
			}
		}
	}
}

// Close closes the pair and any socket not taken.
func (p *Parent) Close() error {
	p.CloseUnused()
	return p.pair.Close()
}
