package netpoll

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
)

// Events is what a Watch waits for.
type Events uint32

const (
	// HangUp is the peer closing its side of the connection, or an error
	// on the socket.
	HangUp Events = syscall.EPOLLRDHUP | syscall.EPOLLHUP | syscall.EPOLLERR
	// Readable is data to read, as well as HangUp.
	Readable Events = syscall.EPOLLIN | HangUp
)

// ErrClosed is returned by Watch once the Poller is closed.
var ErrClosed = errors.New("netpoll: poller closed")

// Poller is an epoll instance and the goroutine waiting on it.
//
// The goroutine does not block in epoll_wait on a thread of its own: the
// epoll descriptor is itself registered with Go's runtime poller (an epoll
// set is readable while it has events ready), so the goroutine is woken by
// the scheduler like any goroutine waiting on a socket, and then collects
// the events without blocking. A thread blocked in a system call would
// have to be scheduled by the kernel first, which on a busy machine adds
// milliseconds to a wakeup.
type Poller struct {
	file *os.File        // the epoll descriptor, in the runtime poller
	raw  syscall.RawConn // file's, for waiting and for epoll_ctl
	wake [2]int          // a pipe; writing to it ends the loop

	mu      sync.Mutex
	next    uint64
	watches map[uint64]*Watch
	closed  bool
	done    chan struct{} // closed when the loop has ended
}

// wakeID is the event data of the wake pipe; watches count from 1.
const wakeID = 0

// New returns a Poller with its goroutine running. Close it to end the
// goroutine and release its descriptors.
func New() (*Poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("netpoll: epoll_create1: %w", err)
	}
	if err := syscall.SetNonblock(epfd, true); err != nil {
		syscall.Close(epfd)
		return nil, fmt.Errorf("netpoll: epoll descriptor: %w", err)
	}
	p := &Poller{file: os.NewFile(uintptr(epfd), "netpoll"), watches: make(map[uint64]*Watch), done: make(chan struct{})}
	if p.raw, err = p.file.SyscallConn(); err != nil {
		p.file.Close()
		return nil, fmt.Errorf("netpoll: epoll descriptor: %w", err)
	}
	if err := syscall.Pipe2(p.wake[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		p.file.Close()
		return nil, fmt.Errorf("netpoll: pipe2: %w", err)
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN}
	setID(&ev, wakeID)
	if err := p.ctl(syscall.EPOLL_CTL_ADD, p.wake[0], &ev); err != nil {
		p.closeFDs()
		return nil, fmt.Errorf("netpoll: epoll_ctl: %w", err)
	}
	go p.loop()
	return p, nil
}

// AwaitReadable blocks the calling goroutine until rc has something to
// read: data, the end of the stream or an error (which the following read
// reports). It returns early with an error when rc's read deadline passes
// or it is closed. Nothing is read or buffered.
//
// It waits in Go's runtime poller, whose readiness is edge-triggered and
// may have been consumed already, so it looks at the socket itself with a
// non-blocking MSG_PEEK rather than trusting an earlier wakeup.
func AwaitReadable(rc syscall.RawConn) error {
	var one [1]byte
	return rc.Read(func(fd uintptr) bool {
		for {
			_, _, err := syscall.Recvfrom(int(fd), one[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			switch err {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false
			}
			return true
		}
	})
}

// ctl is epoll_ctl on the poller's set; it fails once the set is closed,
// and the set cannot be closed while it runs.
func (p *Poller) ctl(op, fd int, ev *syscall.EpollEvent) error {
	var ctlErr error
	err := p.raw.Control(func(epfd uintptr) {
		ctlErr = syscall.EpollCtl(int(epfd), op, fd, ev)
	})
	if err != nil {
		return err
	}
	return ctlErr
}

// Watch is one socket waited on.
type Watch struct {
	p     *Poller
	id    uint64
	rc    syscall.RawConn
	fn    func()
	ended atomic.Bool // set by whichever of Stop and the event wins
}

// Watch calls fn once rc shows one of events. fn runs on the poller's
// goroutine and must not block.
func (p *Poller) Watch(rc syscall.RawConn, events Events, fn func()) (*Watch, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	p.next++
	w := &Watch{p: p, id: p.next, rc: rc, fn: fn}
	p.watches[w.id] = w
	p.mu.Unlock()

	ev := syscall.EpollEvent{Events: uint32(events) | syscall.EPOLLONESHOT}
	setID(&ev, w.id)
	var ctlErr error
	err := rc.Control(func(fd uintptr) {
		ctlErr = p.ctl(syscall.EPOLL_CTL_ADD, int(fd), &ev)
	})
	if err == nil {
		err = ctlErr
	}
	if err != nil {
		p.forget(w.id)
		return nil, fmt.Errorf("netpoll: watching a socket: %w", err)
	}
	return w, nil
}

// WatchReadable is Watch for Readable, with Stop as a function: it lets
// a Poller serve as an xmpp.Watcher.
func (p *Poller) WatchReadable(rc syscall.RawConn, fn func()) (stop func() bool, err error) {
	w, err := p.Watch(rc, Readable, fn)
	if err != nil {
		return nil, err
	}
	return w.Stop, nil
}

// Stop ends w. It reports true if w's function has not been called and
// now never will be; false if the event came first.
func (w *Watch) Stop() bool {
	if !w.ended.CompareAndSwap(false, true) {
		return false
	}
	w.remove()
	return true
}

// remove takes w's socket out of the epoll set and forgets w. A socket
// closed meanwhile has left the set by itself, and Control then fails.
func (w *Watch) remove() {
	w.rc.Control(func(fd uintptr) {
		w.p.ctl(syscall.EPOLL_CTL_DEL, int(fd), nil)
	})
	w.p.forget(w.id)
}

func (p *Poller) forget(id uint64) {
	p.mu.Lock()
	delete(p.watches, id)
	p.mu.Unlock()
}

// loop waits for events and calls the functions of the watches they are
// for, until Close.
func (p *Poller) loop() {
	defer close(p.done)
	events := make([]syscall.EpollEvent, 128)
	stop := false
	for !stop {
		// Read calls the function at once, and again each time the
		// runtime poller sees the set readable, until it returns true.
		// The set is drained before the function returns false, as
		// the runtime poller's edge-triggered wakeups require.
		err := p.raw.Read(func(epfd uintptr) bool {
			n, err := syscall.EpollWait(int(epfd), events, 0)
			if err == syscall.EINTR {
				return true // and call again
			}
			if n <= 0 {
				return false
			}
			stop = p.dispatch(events[:n])
			return true
		})
		if err != nil {
			return // the set was closed
		}
	}
}

// dispatch calls the functions of the watches events are for; it reports
// true when the loop is to end.
func (p *Poller) dispatch(events []syscall.EpollEvent) (stop bool) {
	for _, ev := range events {
		id := getID(&ev)
		if id == wakeID {
			stop = true
			continue
		}
		p.mu.Lock()
		w := p.watches[id]
		p.mu.Unlock()
		if w == nil || !w.ended.CompareAndSwap(false, true) {
			continue // stopped meanwhile
		}
		w.remove()
		w.fn()
	}
	return stop
}

// Close ends the poller's goroutine and closes its descriptors. Watches
// not yet fired never fire.
func (p *Poller) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	p.closed = true
	p.mu.Unlock()
	syscall.Write(p.wake[1], []byte{1})
	<-p.done
	p.closeFDs()
	return nil
}

func (p *Poller) closeFDs() {
	syscall.Close(p.wake[0])
	syscall.Close(p.wake[1])
	p.file.Close()
}

// setID and getID keep a watch's id in the event's 64 bits of user data,
// which syscall.EpollEvent splits into Fd and Pad.
func setID(ev *syscall.EpollEvent, id uint64) {
	ev.Fd = int32(uint32(id))
	ev.Pad = int32(uint32(id >> 32))
}

func getID(ev *syscall.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}
