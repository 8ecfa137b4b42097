package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Memory sampling: the median of sampleCount readings, sampleInterval
// apart.
const (
	sampleCount    = 5
	sampleInterval = 500 * time.Millisecond
)

// maxTerminateGrace bounds the part of --duration kept for ending the
// sessions with type='terminate'.
const maxTerminateGrace = 5 * time.Second

// dialFunc dials a connection, as http.Transport.DialContext.
type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// runner is one load run. Its counters are shared by the session
// goroutines: the atomics directly, the rest under mu.
type runner struct {
	cfg   *config
	log   io.Writer // where failures are logged: the first of each reason, or all with -v
	dials []dialFunc
	// endSlots bounds the terminate requests in flight at the end of
	// the run, as --max-setup bounds setups.
	endSlots chan struct{}

	hub *hub // chat and poll modes; nil otherwise

	held      atomic.Int64 // idle requests in flight now
	stanzas   atomic.Int64 // children received in idle responses
	responses atomic.Int64 // idle responses received
	relogins  atomic.Int64 // chatting sessions logged in again (--relogin)
	resends   atomic.Int64 // BOSH requests sent again on a new connection

	mu              sync.Mutex
	launched        int
	established     int
	setupFailed     int
	unfinished      int // setup cut short by the end of the run
	dropped         int // established, then ended by a failure
	terminated      int // ended cleanly with type='terminate'
	failures        map[string]int
	examples        map[string]string // first error of each reason
	latencies       []time.Duration   // creation (and login) time of each established session
	endLatencies    []time.Duration   // terminate request time of each terminated session
	lastEstablished time.Time
}

func newRunner(cfg *config, log io.Writer) *runner {
	r := &runner{
		cfg:      cfg,
		log:      log,
		failures: make(map[string]int),
		examples: make(map[string]string),
		endSlots: make(chan struct{}, cfg.maxSetup),
	}
	if cfg.pairs > 0 || cfg.poll {
		r.hub = newHub(cfg)
	}
	sources := cfg.sources
	if len(sources) == 0 {
		sources = []netip.Addr{{}} // the kernel picks
	}
	for _, src := range sources {
		d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
		if src.IsValid() {
			d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
		}
		r.dials = append(r.dials, loopbackOnly(d.DialContext))
	}
	return r
}

// loopbackOnly wraps dial so that a connection whose peer is not a
// loopback address is closed at once: whatever a name resolves to,
// boshload loads only its own machine.
func loopbackOnly(dial dialFunc) dialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if ta, ok := conn.RemoteAddr().(*net.TCPAddr); !ok || !ta.IP.IsLoopback() {
			conn.Close()
			return nil, fmt.Errorf("dial %s: peer %v is not a loopback address", addr, conn.RemoteAddr())
		}
		return conn, nil
	}
}

// record counts a failure of a session.
func (r *runner) record(f *failure) {
	reason := f.reason()
	r.mu.Lock()
	r.failures[reason]++
	first := r.examples[reason] == ""
	if first {
		r.examples[reason] = f.Error()
	}
	r.mu.Unlock()
	if first || r.cfg.verbose {
		fmt.Fprintf(r.log, "boshload: %s\n", f.Error())
	}
}

// asFailure returns err as a *failure, wrapping an unexpected error.
func asFailure(phase string, err error) *failure {
	if f, ok := err.(*failure); ok {
		return f
	}
	return protocolFailure(phase, "internal", err)
}

// session runs session index i from creation to the end of the run.
// setupDone is called once creation (and login) has succeeded or failed.
// loadCtx ends the idle phase; runCtx bounds the final terminate.
func (r *runner) session(loadCtx, runCtx context.Context, i int, setupDone func()) {
	c := newSession(r.cfg, i, r.dials[i%len(r.dials)])
	defer c.close()
	*c.hooks() = sessionHooks{
		endSlots:   r.endSlots,
		onHeld:     func() { r.held.Add(1) },
		onReleased: func() { r.held.Add(-1) },
		onStanzas: func(n int) {
			r.responses.Add(1)
			r.stanzas.Add(int64(n))
		},
		onResends: func(n int64) { r.resends.Add(n) },
	}

	start := time.Now()
	err := c.setup(loadCtx)
	took := time.Since(start)
	r.mu.Lock()
	switch {
	case err == nil:
		r.established++
		r.latencies = append(r.latencies, took)
		r.lastEstablished = time.Now()
	case loadCtx.Err() != nil:
		r.unfinished++
	default:
		r.setupFailed++
	}
	r.mu.Unlock()
	setupDone()
	if err != nil {
		if loadCtx.Err() == nil {
			r.record(asFailure(phaseCreate, err))
		}
		return
	}

	var terminated bool
	switch {
	case i <= 2*r.cfg.pairs:
		terminated, err = r.chat(loadCtx, runCtx, c)
	case r.cfg.poll:
		terminated, err = c.poll(loadCtx, runCtx, r.hub, r.cfg.terminate)
	default:
		terminated, err = c.idle(loadCtx, runCtx, r.cfg.terminate)
	}
	if err != nil {
		f := asFailure(phaseIdle, err)
		r.mu.Lock()
		if f.phase != phaseTerminate { // the idle phase, or a relogin's setup
			r.dropped++
		}
		r.mu.Unlock()
		r.record(f)
		return
	}
	if terminated {
		r.mu.Lock()
		r.terminated++
		r.endLatencies = append(r.endLatencies, c.terminateLatency())
		r.mu.Unlock()
	}
}

// chat runs session c's chat phase. With --relogin, a BOSH session that
// fails before the end of the load, its failure counted, logs in again
// (a new BOSH session as the same user and resource) and chats on, up to
// --relogin times; a relogin that fails ends it.
func (r *runner) chat(loadCtx, runCtx context.Context, c loadSession) (terminated bool, err error) {
	for n := 0; ; n++ {
		terminated, err = c.chat(loadCtx, runCtx, r.hub, r.cfg.terminate)
		bc, ok := c.(*client)
		if err == nil || !ok || n >= r.cfg.relogin || loadCtx.Err() != nil {
			return terminated, err
		}
		if f := asFailure(phaseIdle, err); f.phase != phaseIdle {
			return terminated, err // the end of the run's own terminate
		}
		r.record(asFailure(phaseIdle, err))
		r.relogins.Add(1)
		if err := bc.relogin(loadCtx); err != nil {
			if loadCtx.Err() != nil {
				return false, nil
			}
			return false, err
		}
	}
}

// writeReadyFile writes path, saying when chatting or polling started.
// It appears whole (written beside it, then renamed), so that a caller
// waiting for it never reads it half written.
func writeReadyFile(path string, at time.Time) error {
	data := fmt.Sprintf("started %s\nstart_unix_ms %d\n", at.UTC().Format(time.RFC3339Nano), at.UnixMilli())
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		return fmt.Errorf("--ready-file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("--ready-file: %w", err)
	}
	return nil
}

// run opens the sessions at the configured rate, samples memory when
// asked, and returns when every session has ended: at most --duration
// after it starts.
func (r *runner) run(ctx context.Context, progress io.Writer) *results {
	cfg := r.cfg
	runCtx, cancelRun := context.WithTimeout(ctx, cfg.duration)
	defer cancelRun()
	grace := time.Duration(0)
	if cfg.terminate {
		grace = min(maxTerminateGrace, cfg.duration/10)
	}
	loadCtx, cancelLoad := context.WithTimeout(runCtx, cfg.duration-grace)
	defer cancelLoad()

	res := &results{
		Transport: cfg.transport,
		URL:       cfg.url.String(),
		Domain:    cfg.domain,
		Login:     cfg.loginUser != "",
		Requested: cfg.sessions,
		Rate:      cfg.rate,
		Wait:      cfg.wait,
		Sources:   len(cfg.sources),
	}
	var mem *memReport
	if cfg.pid > 0 {
		all, err := sampleAll(loadCtx, append([]int{cfg.pid}, cfg.alsoPIDs...), sampleInterval/2)
		if err != nil {
			res.Errors = append(res.Errors, err.Error())
		} else {
			mem = &memReport{PID: cfg.pid, Before: all[0]}
			for k, p := range cfg.alsoPIDs {
				mem.Others = append(mem.Others, otherMem{PID: p, Before: all[k+1]})
			}
			fmt.Fprintf(progress, "boshload: pid %d before: VmRSS %d KiB\n", cfg.pid, all[0].RSS)
		}
	}

	start := time.Now()
	var sessions, setup sync.WaitGroup
	sem := make(chan struct{}, cfg.maxSetup)
	launcherDone := make(chan struct{})
	go func() {
		defer close(launcherDone)
		timer := time.NewTimer(0)
		defer timer.Stop()
		<-timer.C
		for i := 1; i <= cfg.sessions; i++ {
			at := start.Add(time.Duration(float64(i-1) / cfg.rate * float64(time.Second)))
			if d := time.Until(at); d > 0 {
				timer.Reset(d)
				select {
				case <-loadCtx.Done():
					return
				case <-timer.C:
				}
			}
			select {
			case <-loadCtx.Done():
				return
			case sem <- struct{}{}:
			}
			r.mu.Lock()
			r.launched++
			r.mu.Unlock()
			sessions.Add(1)
			setup.Add(1)
			go func() {
				defer sessions.Done()
				r.session(loadCtx, runCtx, i, func() {
					<-sem
					setup.Done()
				})
			}()
		}
	}()
	setupAll := make(chan struct{})
	go func() {
		<-launcherDone
		setup.Wait()
		close(setupAll)
	}()

	setupOK := false
	select {
	case <-setupAll:
		r.mu.Lock()
		fmt.Fprintf(progress, "boshload: setup done in %.1fs: %d established, %d failed\n",
			time.Since(start).Seconds(), r.established, r.setupFailed)
		r.mu.Unlock()
		setupOK = true
	case <-loadCtx.Done():
		fmt.Fprintf(progress, "boshload: the run ended before every session was set up\n")
	}

	if mem != nil && loadCtx.Err() == nil {
		select {
		case <-loadCtx.Done():
		case <-time.After(cfg.settle):
		}
		all, err := sampleAll(loadCtx, append([]int{cfg.pid}, cfg.alsoPIDs...), sampleInterval)
		if err != nil {
			res.Errors = append(res.Errors, err.Error())
		} else {
			after := all[0]
			mem.After = &after
			for k := range mem.Others {
				mem.Others[k].After = all[k+1].RSS
			}
			mem.HeldAtSample = r.held.Load()
			r.mu.Lock()
			mem.LiveAtSample = r.established - r.dropped
			r.mu.Unlock()
			mem.SettleSeconds = cfg.settle.Seconds()
			held := "requests held"
			if cfg.transport == transportWebSocket {
				held = "connections read"
			}
			fmt.Fprintf(progress, "boshload: pid %d after: VmRSS %d KiB with %d %s\n", cfg.pid, after.RSS, mem.HeldAtSample, held)
		}
		if cfg.exitAfterSample {
			cancelLoad()
		}
	}

	// Chatting or polling starts once every session is set up and
	// memory, if asked, has been sampled with every session idle.
	if h := r.hub; h != nil && setupOK && loadCtx.Err() == nil {
		deadline, _ := loadCtx.Deadline()
		h.startAt = time.Now()
		if cfg.chatFor > 0 && h.startAt.Add(cfg.chatFor+cfg.drain).Before(deadline) {
			deadline = h.startAt.Add(cfg.chatFor + cfg.drain)
			time.AfterFunc(time.Until(deadline), cancelLoad)
		}
		h.stopAt = deadline
		if cfg.pairs > 0 {
			h.stopAt = deadline.Add(-cfg.drain)
		}
		if cfg.pid > 0 {
			h.cpuPIDs = append([]int{cfg.pid}, cfg.alsoPIDs...)
		}
		h.cpuPIDs = append(h.cpuPIDs, 0)
		h.cpuStart = h.readCPUs()
		go func() {
			<-loadCtx.Done()
			h.cpuEnd = h.readCPUs()
			close(h.cpuDone)
		}()
		h.startNanos.Store(h.since(h.startAt))
		close(h.start)
		if cfg.readyFile != "" {
			if err := writeReadyFile(cfg.readyFile, h.startAt); err != nil {
				res.Errors = append(res.Errors, err.Error())
			}
		}
		fmt.Fprintf(progress, "boshload: %s for %.1fs\n", map[bool]string{true: "chatting", false: "polling"}[cfg.pairs > 0],
			h.stopAt.Sub(h.startAt).Seconds())
		go r.progress(loadCtx, progress)
	}

	<-launcherDone
	sessions.Wait()
	res.RunSeconds = time.Since(start).Seconds()

	r.mu.Lock()
	defer r.mu.Unlock()
	res.Launched = r.launched
	res.Established = r.established
	res.SetupFailed = r.setupFailed
	res.Unfinished = r.unfinished
	res.Dropped = r.dropped
	res.Terminated = r.terminated
	res.Failures = r.failures
	res.Examples = r.examples
	res.Stanzas = r.stanzas.Load()
	res.IdleResponses = r.responses.Load()
	res.Relogins = r.relogins.Load()
	res.Resends = r.resends.Load()
	res.countKinds()
	if r.established > 0 {
		res.SetupSeconds = r.lastEstablished.Sub(start).Seconds()
		if res.SetupSeconds > 0 {
			res.SetupRate = float64(r.established) / res.SetupSeconds
		}
		res.Latency = latencySummary(r.latencies)
	}
	res.TerminateLatency = latencySummary(r.endLatencies)
	if r.hub != nil {
		r.hub.report(cfg, res)
	}
	if mem != nil && mem.After != nil {
		mem.DeltaKiB = mem.After.RSS - mem.Before.RSS
		if mem.LiveAtSample > 0 {
			mem.PerSessionKiB = float64(mem.DeltaKiB) / float64(mem.LiveAtSample)
		}
		if len(mem.Others) > 0 {
			delta := mem.DeltaKiB
			for k := range mem.Others {
				o := &mem.Others[k]
				o.DeltaKiB = o.After - o.Before.RSS
				delta += o.DeltaKiB
			}
			mem.StackDeltaKiB = delta
			if mem.LiveAtSample > 0 {
				mem.StackPerSessionKiB = float64(delta) / float64(mem.LiveAtSample)
			}
		}
	}
	res.Memory = mem
	return res
}

// sampleAll samples the memory of every pid at once, each the median of
// sampleCount readings interval apart.
func sampleAll(ctx context.Context, pids []int, interval time.Duration) ([]memSample, error) {
	out := make([]memSample, len(pids))
	errs := make([]error, len(pids))
	var wg sync.WaitGroup
	for k, p := range pids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[k], errs[k] = sampleMedian(ctx, p, sampleCount, interval)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// progress prints the chat or poll counters every few seconds.
func (r *runner) progress(ctx context.Context, w io.Writer) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	h := r.hub
	var lastRecv, lastRT int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		recv, rt := h.received.Load(), h.roundTrips.Load()
		if r.cfg.pairs > 0 {
			fmt.Fprintf(w, "boshload: %.0fs: sent %d, received %d (%.0f/s), skipped %d, held %d\n",
				time.Since(h.startAt).Seconds(), h.sent.Load(), recv, float64(recv-lastRecv)/5, h.skipped.Load(), r.held.Load())
		} else {
			fmt.Fprintf(w, "boshload: %.0fs: %d round trips (%.0f/s)\n", time.Since(h.startAt).Seconds(), rt, float64(rt-lastRT)/5)
		}
		lastRecv, lastRT = recv, rt
	}
}
