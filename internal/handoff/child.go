package handoff

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// A Listener is a listening socket handed to the child.
type Listener struct {
	// Key is the configuration key the socket was opened for, such as
	// listen or admin_listen; Addr is that key's value, as configured.
	// The child takes the socket over only if its own configuration
	// gives the key the same value.
	Key, Addr string
	// L is the socket: a *net.TCPListener or *net.UnixListener (any
	// listener with a File method). The parent keeps it; the child
	// gets a copy.
	L net.Listener
}

// Options say how Start starts the child.
type Options struct {
	// Path is the binary: the parent's own, as resolved when it started.
	Path string
	// Args are its arguments, without the program name.
	Args []string
	// Env is its environment, as os.Environ gives it; a previous
	// hand-off's variables are removed and this one's added.
	Env []string
	// Listeners are handed over, each by its key; no two with one key.
	Listeners []Listener
	// Socket is the parent's handoff socket (EnvSocket).
	Socket string
	// Stdout and Stderr are the child's, shared with the parent (the
	// service's journal): never a pipe the parent reads, which would
	// break under the child once the parent exits. Nil is /dev/null.
	Stdout, Stderr *os.File
}

// A Child is a new process started by Start.
type Child struct {
	proc *os.Process
	pair *net.UnixConn // the parent's end

	msgs   chan []byte   // messages from the child, until it closes the pair
	exited chan struct{} // closed once the child is reaped
	err    error         // its exit status; read after exited is closed

	sendMu sync.Mutex // one status at a time
}

// dupListener returns a duplicate of l's socket, close-on-exec (Dup).
func dupListener(l net.Listener) (int, error) {
	sc, ok := l.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("a %T cannot be handed over", l)
	}
	return Dup(sc)
}

// Start starts the child: opts.Path with opts.Args, inheriting the
// listeners, one end of a new socket pair (SOCK_SEQPACKET) and opts's
// stdout and stderr. It returns once the child runs; WaitReady waits for
// it to be ready.
func Start(opts Options) (*Child, error) {
	// Close-on-exec before any other fork can see them, as os/exec
	// does (SOCK_CLOEXEC is not everywhere).
	syscall.ForkLock.RLock()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET, 0)
	if err == nil {
		syscall.CloseOnExec(fds[0])
		syscall.CloseOnExec(fds[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, fmt.Errorf("handoff: socketpair: %w", err)
	}
	mine, theirs := os.NewFile(uintptr(fds[0]), "handoff-parent"), os.NewFile(uintptr(fds[1]), "handoff-child")
	defer theirs.Close()
	fc, err := net.FileConn(mine)
	mine.Close()
	if err != nil {
		return nil, fmt.Errorf("handoff: the pair: %w", err)
	}
	pair := fc.(*net.UnixConn)
	fail := func(err error) (*Child, error) {
		pair.Close()
		return nil, err
	}

	// files[i] is descriptor i in the child: stdin (/dev/null),
	// stdout, stderr, the pair, then the listeners. The listeners are
	// raw duplicates, never *os.File: os.File.Fd, which os/exec calls,
	// would put the socket, shared with this process's listener, in
	// blocking mode, and an Accept under way would then block in the
	// kernel, out of Close's reach.
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		return fail(fmt.Errorf("handoff: %w", err))
	}
	defer devNull.Close()
	out, errOut := opts.Stdout, opts.Stderr
	if out == nil {
		out = devNull
	}
	if errOut == nil {
		errOut = devNull
	}
	files := []uintptr{devNull.Fd(), out.Fd(), errOut.Fd(), theirs.Fd()}
	list := fdList{pair: 3, listeners: make(map[string]fdAddr)}
	var order []string
	var dups []int
	defer func() {
		for _, fd := range dups {
			syscall.Close(fd)
		}
	}()
	for _, l := range opts.Listeners {
		if _, dup := list.listeners[l.Key]; dup {
			return fail(fmt.Errorf("handoff: %s handed over twice", l.Key))
		}
		fd, err := dupListener(l.L)
		if err != nil {
			return fail(fmt.Errorf("handoff: %s: %w", l.Key, err))
		}
		dups = append(dups, fd)
		list.listeners[l.Key] = fdAddr{fd: len(files), addr: l.Addr}
		files = append(files, uintptr(fd))
		order = append(order, l.Key)
	}
	env := append(withoutHandoff(opts.Env), EnvFDs+"="+list.format(order))
	if opts.Socket != "" {
		env = append(env, EnvSocket+"="+opts.Socket)
	}
	pid, err := syscall.ForkExec(opts.Path, append([]string{opts.Path}, opts.Args...), &syscall.ProcAttr{Env: env, Files: files})
	if err != nil {
		return fail(fmt.Errorf("handoff: starting %s: %w", opts.Path, err))
	}
	proc, err := os.FindProcess(pid) // always succeeds on Unix
	if err != nil {
		return fail(err)
	}
	c := &Child{proc: proc, pair: pair, msgs: make(chan []byte, 4), exited: make(chan struct{})}
	go func() {
		st, err := proc.Wait()
		if err == nil && !st.Success() {
			err = &exec.ExitError{ProcessState: st}
		}
		c.err = err
		close(c.exited)
	}()
	go c.read()
	return c, nil
}

// read passes the child's messages to msgs until the pair ends.
func (c *Child) read() {
	defer close(c.msgs)
	for {
		buf := make([]byte, maxMessage)
		n, err := c.pair.Read(buf)
		if err != nil || n == 0 {
			return
		}
		c.msgs <- buf[:n]
	}
}

// lastFailure returns the reason of a failed message the child sent
// before it exited, or "": it reads what is left on the pair until the
// pair ends (the child's end closed with its exit), for a second at most.
func (c *Child) lastFailure() (reason string) {
	bound := time.NewTimer(time.Second)
	defer bound.Stop()
	for c.msgs != nil {
		select {
		case m, ok := <-c.msgs:
			if !ok {
				c.msgs = nil
				break
			}
			if verb, rest := splitMessage(m); verb == verbFailed {
				reason = strings.TrimSpace(rest)
			}
		case <-bound.C:
			return reason
		}
	}
	return reason
}

// Pid returns the child's process id.
func (c *Child) Pid() int { return c.proc.Pid }

// Exited is closed once the child has exited and been reaped.
func (c *Child) Exited() <-chan struct{} { return c.exited }

// Err returns how the child exited once Exited is closed: nil for exit
// status 0 (a clean stop), else an *exec.ExitError or the error of
// waiting for it. Before that it returns nil.
func (c *Child) Err() error {
	select {
	case <-c.exited:
		return c.err
	default:
		return nil
	}
}

// ErrNotReady is the error of a child that did not become ready; the
// error WaitReady returns wraps it with why.
var ErrNotReady = errors.New("the new process did not become ready")

// WaitReady waits until the child says it is ready and returns its
// handoff socket, at most timeout or until ctx ends. A child that fails,
// exits or is late is killed and reaped, and the error says why, with
// what it sent or its exit status.
func (c *Child) WaitReady(ctx context.Context, timeout time.Duration) (socket string, err error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var reason string
	for reason == "" {
		select {
		case m, ok := <-c.msgs:
			if !ok {
				c.msgs = nil // closed the pair: its exit says why
				continue
			}
			switch verb, rest := splitMessage(m); verb {
			case verbReady:
				return rest, nil
			case verbFailed:
				reason = strings.TrimSpace(rest)
			default:
				reason = fmt.Sprintf("unexpected message %q", m)
			}
		case <-c.exited:
			// A failure it sent just before exiting comes first: it
			// may not have been read off the pair yet.
			if r := c.lastFailure(); r != "" {
				reason = r
				continue
			}
			reason = fmt.Sprintf("exited (%v)", c.err)
		case <-timer.C:
			reason = fmt.Sprintf("not ready within %v", timeout)
		case <-ctx.Done():
			reason = ctx.Err().Error()
		}
	}
	c.Kill()
	return "", fmt.Errorf("%w: pid %d: %s", ErrNotReady, c.Pid(), reason)
}

// Kill kills the child, if it still runs, and waits until it is reaped;
// it closes the pair.
func (c *Child) Kill() {
	select {
	case <-c.exited:
	default:
		c.proc.Kill()
		<-c.exited
	}
	c.pair.Close()
}

// SendStatus tells the child how many sessions the parent still serves
// and when it will exit. It never blocks for long: a child that does not
// read is not waited for.
func (c *Child) SendStatus(s Status) error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	c.pair.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := c.pair.Write(s.encodeMoving()); err != nil {
		return err
	}
	_, err := c.pair.Write(s.encode())
	return err
}

// Close closes the parent's end of the pair, leaving the child running:
// the child sees its parent gone.
func (c *Child) Close() error { return c.pair.Close() }
