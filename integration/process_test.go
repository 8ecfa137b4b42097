package integration

import (
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// process is a program a test runs: Prosody, nginx, scripts/demo, run.mjs
// and its Chromium, the boshd binary. It runs in a process group of its
// own, so that a signal reaches whatever it spawned, and it is killed if
// the test binary dies before its cleanups run.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd.Wait has returned

	done atomic.Bool // set just before exited is closed
	mu   sync.Mutex
	err  error // cmd.Wait's, once exited is closed
}

// startProcess starts cmd (its output already directed) as a process.
func startProcess(cmd *exec.Cmd) (*process, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		p.done.Store(true)
		close(p.exited)
	}()
	return p, nil
}

// Pid returns the process id.
func (p *process) Pid() int { return p.cmd.Process.Pid }

// Exited returns a channel closed once the process has exited and been
// reaped (and its output copied).
func (p *process) Exited() <-chan struct{} { return p.exited }

// Running reports whether the process has not exited yet.
func (p *process) Running() bool { return !p.done.Load() }

// Err returns how the process ended (nil for status 0); only meaningful
// once Exited is closed.
func (p *process) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Signal sends sig to the process group, unless the process has exited.
func (p *process) Signal(sig syscall.Signal) {
	if p.Running() {
		// Negative pid: the whole process group (Setpgid made it the
		// process's).
		_ = syscall.Kill(-p.Pid(), sig)
	}
}

// WaitExit waits up to timeout for the process to exit and reports
// whether it did.
func (p *process) WaitExit(timeout time.Duration) bool {
	select {
	case <-p.exited:
		return true
	case <-time.After(timeout):
		return false
	}
}

// Stop sends sig and waits up to timeout for the process to exit; then it
// is killed, and Stop reports false. It waits until the process has been
// reaped either way, up to killTimeout after SIGKILL.
func (p *process) Stop(sig syscall.Signal, timeout time.Duration) bool {
	p.Signal(sig)
	if p.WaitExit(timeout) {
		return true
	}
	p.Kill()
	return false
}

// Kill sends SIGKILL and reports whether the process has been reaped
// within killTimeout.
func (p *process) Kill() bool {
	p.Signal(syscall.SIGKILL)
	return p.WaitExit(killTimeout)
}

// killTimeout bounds the wait for a process to be reaped after SIGKILL.
const killTimeout = 15 * time.Second
