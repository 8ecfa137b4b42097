package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/boshd/boshd/admin"
	"github.com/boshd/boshd/bosh"
	"github.com/boshd/boshd/internal/handoff"
	"github.com/boshd/boshd/internal/sdnotify"
	"github.com/boshd/boshd/metrics"
	"github.com/boshd/boshd/wsbind"
)

// upgrader is one process's side of live upgrades
// (docs/design/005-live-upgrade.md): the sockets it listens on, taken
// over from its parent if an upgrade started it; its handoff socket;
// on SIGUSR2, the new process it starts and hands over to; and, after
// that, serving its sessions to their end before it exits.
type upgrader struct {
	self    string   // immutable; the binary, resolved at start
	args    []string // immutable; the command line, without the program name
	environ []string // immutable
	parent  *handoff.Parent
	notify  *sdnotify.Notifier // immutable; nil without systemd
	log     *slog.Logger       // immutable
	metrics *metrics.Metrics   // set by setHandlers
	h       *bosh.Handler      // set by setHandlers
	wsh     *wsbind.Handler    // set by setHandlers; nil without WebSocket

	// opened are the listening sockets, by configuration key, handed
	// to a child. Owned by serve's goroutine.
	opened []handoff.Listener
	// socket is this process's handoff socket, served by socketSrv,
	// made when this process first takes part in an upgrade. Owned by
	// serve's goroutine.
	socket    *handoff.Socket
	socketSrv *http.Server
	// bln is the BOSH listener, through which sessions moved here are
	// served; moveLn is the move socket their old process sends them
	// over (move.go). Set by serve's goroutine before serving.
	bln    *bosh.Listener
	moveLn *net.UnixListener
	// moving brings what the hand-over moved, while it runs, and
	// stopMoving stops it; owned by serve's goroutine.
	moving     <-chan moveResult
	stopMoving context.CancelFunc

	// The upgrade this process started, owned by serve's goroutine:
	// child is the new process (under way, or handed over to once
	// handedOff), and exitBy when this one exits at the latest. spares
	// are copies of the sockets handed over, for accepting again if the
	// child dies first (takeBack); childGone is set once the child has
	// exited and this process has acted on it.
	child     *handoff.Child
	handedOff bool
	exitBy    time.Time
	spares    *handoff.Spares
	childGone bool

	// deferred is set when SIGUSR2 came while the old process was
	// still moving its sessions here: the upgrade starts once settled is
	// closed. Owned by serve's goroutine.
	deferred bool

	// old is what the old process (the parent) last said, oldOK
	// whether there is one still, and oldMoving whether it may still be
	// moving sessions here (until it says it is done, or exits), settled
	// closed when it no longer may; guarded by mu. oldGone is closed
	// once the old process has exited; made with settled, immutable
	// after.
	mu        sync.Mutex
	old       admin.OldProcess
	oldOK     bool
	oldMoving bool
	settled   chan struct{}
	oldGone   chan struct{}
}

// upgradeResult is how an upgrade ended: the child's handoff socket, or
// why it did not become ready.
type upgradeResult struct {
	socket string
	err    error
}

// setHandlers gives u what it serves and counts. In a process started by
// an upgrade, h forwards requests for sessions it does not hold to the
// old process from the start: this process accepts before it says it is
// ready.
func (u *upgrader) setHandlers(h *bosh.Handler, wsh *wsbind.Handler) {
	u.h, u.wsh, u.metrics = h, wsh, h.Gateway().Metrics()
	if u.parent != nil {
		h.SetPredecessor(u.parent.Socket())
	}
}

// listen returns a listening socket for the configuration key set to
// addr: the parent's, if it handed one over for the same address, else a
// new one.
func (u *upgrader) listen(key, addr string) (net.Listener, error) {
	var ln net.Listener
	var err error
	if u.parent != nil {
		var inherited bool
		ln, inherited, err = u.parent.Listen(key, addr)
		if err == nil && !inherited {
			u.log.Info("upgrade: listening on a socket of its own: the old process had none for this address", "key", key, "addr", addr)
		}
	} else {
		ln, err = net.Listen("tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	u.opened = append(u.opened, handoff.Listener{Key: key, Addr: addr, L: ln})
	return ln, nil
}

// serving is called once every listener serves: a child tells its parent
// it is ready (the parent then tells systemd), a process started
// otherwise tells systemd itself.
func (u *upgrader) serving() error {
	if u.parent == nil {
		if err := u.notify.Ready(); err != nil {
			u.log.Warn("systemd not told READY=1", "err", err)
		}
		return nil
	}
	if unused := u.parent.CloseUnused(); len(unused) > 0 {
		u.log.Info("upgrade: sockets of the old process not used: their keys are unset now", "keys", unused)
	}
	if err := u.serveSocket(); err != nil {
		return err
	}
	if u.bln != nil {
		// The old process moves its sessions here once this one is
		// ready; without the socket, it serves them to their end.
		if ln, err := u.socket.ListenMoves(); err != nil {
			u.log.Warn("upgrade: no move socket: the old process serves its sessions to their end", "err", err)
		} else {
			u.moveLn = ln
			go u.receiveMoves(ln, u.bln)
		}
	}
	u.mu.Lock()
	u.old, u.oldOK, u.oldMoving = admin.OldProcess{PID: os.Getppid()}, true, true
	u.settled, u.oldGone = make(chan struct{}), make(chan struct{})
	u.mu.Unlock()
	if err := u.parent.Ready(u.socket.Path()); err != nil {
		return err
	}
	go u.watchParent(u.parent)
	return nil
}

// watchParent follows what the old process says until it exits; then
// requests for sessions this process does not hold are no longer sent
// to it.
func (u *upgrader) watchParent(p *handoff.Parent) {
	err := p.Watch(u.heard)
	u.h.SetPredecessor("")
	u.mu.Lock()
	pid := u.old.PID
	u.oldOK = false
	u.settle()
	close(u.oldGone)
	u.mu.Unlock()
	u.metrics.OldProcess(0, 0, time.Time{})
	p.Close()
	u.log.Info("upgrade: the old process has exited", "pid", pid, "err", err)
}

// heard takes in what the old process said.
func (u *upgrader) heard(s handoff.Status) {
	u.mu.Lock()
	u.old.BOSH, u.old.WebSocket, u.old.Exit = s.BOSH, s.WebSocket, s.Exit
	if !s.Moving {
		u.settle()
	}
	u.mu.Unlock()
	u.metrics.OldProcess(s.BOSH, s.WebSocket, s.Exit)
}

// settle notes that the old process moves nothing more here; called with
// mu held.
func (u *upgrader) settle() {
	if u.oldMoving {
		u.oldMoving = false
		close(u.settled)
	}
}

// whenSettled returns what is closed once the old process moves nothing
// more here, if an upgrade waits for that; nil otherwise.
func (u *upgrader) whenSettled() <-chan struct{} {
	if !u.deferred {
		return nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.settled
}

// oldExited reports whether the old process has exited, waiting up to
// d for it to: a process that dies closes its move socket and its pair
// at once, and the pair's end may be seen a moment later. A process not
// started by an upgrade has none, taken as gone.
func (u *upgrader) oldExited(d time.Duration) bool {
	u.mu.Lock()
	gone := u.oldGone
	u.mu.Unlock()
	if gone == nil {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-gone:
		return true
	case <-t.C:
		return false
	}
}

// oldProcess is admin.Options.OldProcess.
func (u *upgrader) oldProcess() (admin.OldProcess, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.old, u.oldOK
}

// receiving reports whether the old process may still be moving its
// sessions here: from the start until it says it is done, or exits.
func (u *upgrader) receiving() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.oldOK && u.oldMoving
}

// oldServing reports the sessions the old processes still serve.
func (u *upgrader) oldServing() (bosh, websocket int) {
	old, ok := u.oldProcess()
	if !ok {
		return 0, 0
	}
	return old.BOSH, old.WebSocket
}

// serveSocket makes and serves this process's handoff socket, if it has
// none yet.
func (u *upgrader) serveSocket() error {
	if u.socket != nil {
		return nil
	}
	s, err := handoff.ListenSocket("")
	if err != nil {
		return err
	}
	u.socket = s
	u.socketSrv = &http.Server{
		Handler:           u.h.HandoffHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(u.log.Handler(), slog.LevelInfo),
	}
	go u.socketSrv.Serve(s)
	return nil
}

// start starts an upgrade on SIGUSR2, and returns the channel its
// outcome comes on; nil if it was refused or deferred (logged).
func (u *upgrader) start(ctx context.Context, readyTimeout time.Duration) <-chan upgradeResult {
	switch {
	case u.handedOff:
		u.metrics.Upgraded(metrics.UpgradeRefused)
		u.log.Warn("upgrade refused: this process has handed over already", "to", u.child.Pid())
		return nil
	case u.child != nil:
		u.metrics.Upgraded(metrics.UpgradeRefused)
		u.log.Warn("upgrade refused: one is under way", "new_pid", u.child.Pid())
		return nil
	case u.receiving():
		// Sessions that arrived after this process took its list
		// would stay here, served to their end instead of moving on:
		// the upgrade starts once the old process has moved them all
		// (whenSettled).
		if !u.deferred {
			u.deferred = true
			u.log.Info("upgrade deferred: the sessions of the old process are still arriving; it starts once they have")
		}
		return nil
	case u.moving != nil:
		// Taken back from a new process that died while sessions
		// moved to it (takeBack stopped the moves): they end at once.
		u.moved(<-u.moving)
	}
	if err := u.notify.Reloading(); err != nil {
		u.log.Warn("systemd not told RELOADING=1", "err", err)
	}
	fail := func(err error) <-chan upgradeResult {
		c := make(chan upgradeResult, 1)
		c <- upgradeResult{err: err}
		return c
	}
	if err := u.serveSocket(); err != nil {
		return fail(err)
	}
	child, err := handoff.Start(handoff.Options{
		Path: u.self, Args: u.args, Env: u.environ,
		Listeners: u.opened,
		Socket:    u.socket.Path(),
		Stdout:    os.Stdout, Stderr: os.Stderr,
	})
	if err != nil {
		return fail(err)
	}
	u.child = child
	u.log.Info("upgrade: new process started, waiting for it to be ready", "binary", u.self, "new_pid", child.Pid(), "timeout", readyTimeout)
	done := make(chan upgradeResult, 1)
	go func() {
		socket, err := child.WaitReady(ctx, readyTimeout)
		done <- upgradeResult{socket, err}
	}()
	return done
}

// finish applies the outcome of an upgrade: on failure this process goes
// on as before; once the child is ready, it stops accepting (stop closes
// the sockets the child now accepts on), sends the child the requests
// for sessions it does not hold, tells systemd the child is the main
// process, starts moving its sessions to the child (bound: how long busy
// ones are tried again; the outcome comes on u.moving), and serves those
// that stay to their end, at most drain.
func (u *upgrader) finish(ctx context.Context, r upgradeResult, drain, bound time.Duration, stop func()) {
	if r.err != nil {
		u.child = nil
		u.metrics.Upgraded(metrics.UpgradeFailed)
		u.log.Error("upgrade failed: this process goes on serving", "err", r.err)
		if err := u.notify.Ready(); err != nil {
			u.log.Warn("systemd not told READY=1", "err", err)
		}
		return
	}
	u.handedOff = true
	u.exitBy = time.Now().Add(drain)
	// The child accepts already, and may hold sessions whose requests
	// come on connections open to this process.
	u.h.SetSuccessor(r.socket)
	// Copies of the sockets, made before stop closes them, keep them
	// listening should the child die while this process runs.
	spares, err := handoff.Keep(u.opened)
	if err != nil {
		u.log.Warn("upgrade: no copy of the listening sockets kept: if the new process dies, nothing accepts until boshd is restarted", "err", err)
	}
	u.spares, u.childGone = spares, false
	stop()
	u.metrics.Upgraded(metrics.UpgradeReady)
	if err := u.notify.MainPID(u.child.Pid()); err != nil {
		u.log.Warn("systemd not told MAINPID", "err", err)
	}
	nb, ws := u.serves()
	u.log.Info("upgrade: handed over; moving the sessions, serving the rest to their end", "new_pid", u.child.Pid(), "sessions", nb, "websocket", ws, "exit_by", u.exitBy.UTC().Format(time.RFC3339))
	moving := make(chan moveResult, 1)
	mctx, cancel := context.WithCancel(ctx)
	u.moving, u.stopMoving = moving, cancel
	go func() { moving <- u.move(mctx, r.socket, u.bln, bound) }()
	u.tell()
}

// moved logs what the hand-over moved, once it is done.
func (u *upgrader) moved(res moveResult) {
	u.moving = nil
	u.stopMoving()
	nb, ws := u.serves()
	u.log.Info("upgrade: sessions moved to the new process", "moved", res.Moved, "failed", res.Failed, "kept", res.Kept, "connections", res.Conns,
		"websocket_moved", res.WebSocket.Moved, "websocket_failed", res.WebSocket.Failed, "websocket_kept", res.WebSocket.Kept,
		"took", res.Took.Round(time.Millisecond), "serving", nb, "websocket", ws)
	if u.child != nil && u.handedOff {
		u.tell()
	}
}

// successorExited returns what is closed once the process this one
// handed over to has exited; nil before a hand-over, and once acted on
// (takeBack).
func (u *upgrader) successorExited() <-chan struct{} {
	if !u.handedOff || u.childGone {
		return nil
	}
	return u.child.Exited()
}

// takeBack is called once the process this one handed over to has
// exited. If it stopped cleanly (exit status 0: a stop its service
// manager asked for), this one goes on serving its sessions to their end.
// Otherwise (killed, crashed) nothing would accept on the service's
// sockets: this process takes the copies it kept, has resume accept on
// them, forwards nothing more to the dead process, tells systemd it is
// the main process again, and may start another upgrade. The sessions
// the dead process held are lost with it; their clients are told
// item-not-found. It reports whether this process took accepting back.
func (u *upgrader) takeBack(resume func([]handoff.Listener)) bool {
	u.childGone = true
	pid, exit := u.child.Pid(), u.child.Err()
	u.h.SetSuccessor("")
	if u.stopMoving != nil {
		u.stopMoving() // the sessions not moved yet stay
	}
	if exit == nil {
		u.spares.Close()
		u.spares = nil
		u.log.Info("upgrade: the new process stopped; this one serves its sessions to their end", "new_pid", pid)
		return false
	}
	if u.spares == nil {
		u.log.Error("upgrade: the new process died after the hand-over, and no copy of the listening sockets was kept: nothing accepts until boshd is restarted", "new_pid", pid, "exit", exit)
		return false
	}
	ls, err := u.spares.Take()
	u.spares = nil
	if err != nil {
		u.log.Error("upgrade: some listening sockets could not be taken back", "err", err)
	}
	// The sockets handed to the next child are the copies taken back;
	// a key not taken back is opened anew by that child.
	var opened []handoff.Listener
	for _, o := range u.opened {
		for _, l := range ls {
			if l.Key == o.Key {
				opened = append(opened, l)
			}
		}
	}
	u.opened = opened
	resume(ls)
	u.child.Close()
	u.child, u.handedOff, u.exitBy = nil, false, time.Time{}
	u.metrics.Upgraded(metrics.UpgradeTakenBack)
	if err := u.notify.MainPID(os.Getpid()); err != nil {
		u.log.Warn("systemd not told MAINPID", "err", err)
	}
	bosh, ws := u.serves()
	u.log.Error("upgrade: the new process died after the hand-over; this process accepts again", "new_pid", pid, "exit", exit, "sessions", bosh, "websocket", ws)
	return true
}

// serves returns the sessions this process and its old ones serve.
func (u *upgrader) serves() (bosh, websocket int) {
	bosh = int(u.h.Stats().Live)
	if u.wsh != nil {
		websocket = int(u.wsh.Stats().Live)
	}
	ob, ow := u.oldServing()
	return bosh + ob, websocket + ow
}

// tell sends the child what this process serves and when it exits.
func (u *upgrader) tell() {
	bosh, ws := u.serves()
	u.child.SendStatus(handoff.Status{BOSH: bosh, WebSocket: ws, Exit: u.exitBy, Moving: u.moving != nil})
}

// drained reports, after a hand-over, whether this process may exit, and
// why: empty, it serves no session and neither do its own old processes
// (requests for their sessions come through this one); or exitBy has
// passed.
func (u *upgrader) drained(now time.Time) (done, empty bool, why string) {
	if !u.handedOff || u.moving != nil {
		return false, false, ""
	}
	u.tell()
	bosh, ws := u.serves()
	switch {
	case bosh == 0 && ws == 0:
		return true, true, "no session left"
	case !now.Before(u.exitBy):
		return true, false, fmt.Sprintf("upgrade_drain_timeout: %d BOSH and %d WebSocket sessions told system-shutdown", bosh, ws)
	}
	return false, false, ""
}

// quiesce waits, until ctx ends, for the requests the handoff socket is
// serving to be answered, and serves no more on it: a process leaving
// after a hand-over calls it before its handler stops forwarding.
func (u *upgrader) quiesce(ctx context.Context) {
	if u.socketSrv != nil {
		u.socketSrv.Shutdown(ctx)
	}
}

// close stops serving the handoff socket and, after a hand-over, lets the
// child see this process gone.
func (u *upgrader) close(ctx context.Context) {
	u.spares.Close()
	if u.moveLn != nil {
		u.moveLn.Close()
	}
	if u.socketSrv != nil {
		if err := u.socketSrv.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
			u.socketSrv.Close()
		}
		u.socket.Close()
	}
	if u.child != nil {
		if u.handedOff {
			u.child.Close()
		} else {
			u.child.Kill()
		}
	}
}
