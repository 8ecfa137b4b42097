package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
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

	held      atomic.Int64 // idle requests in flight now
	stanzas   atomic.Int64 // children received in idle responses
	responses atomic.Int64 // idle responses received

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
	c := newClient(r.cfg, i, r.dials[i%len(r.dials)])
	defer c.close()
	c.endSlots = r.endSlots
	c.onHeld = func() { r.held.Add(1) }
	c.onReleased = func() { r.held.Add(-1) }
	c.onStanzas = func(n int) {
		r.responses.Add(1)
		r.stanzas.Add(int64(n))
	}

	start := time.Now()
	resp, err := c.create(loadCtx)
	if err == nil && r.cfg.loginUser != "" {
		err = c.login(loadCtx, resp.find(isFeatures))
	}
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

	terminated, err := c.idle(loadCtx, runCtx, r.cfg.terminate)
	if err != nil {
		f := asFailure(phaseIdle, err)
		r.mu.Lock()
		if f.phase == phaseIdle {
			r.dropped++
		}
		r.mu.Unlock()
		r.record(f)
		return
	}
	if terminated {
		r.mu.Lock()
		r.terminated++
		r.endLatencies = append(r.endLatencies, c.endLatency)
		r.mu.Unlock()
	}
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
		before, err := sampleMedian(loadCtx, cfg.pid, sampleCount, sampleInterval/2)
		if err != nil {
			res.Errors = append(res.Errors, err.Error())
		} else {
			mem = &memReport{PID: cfg.pid, Before: before}
			fmt.Fprintf(progress, "boshload: pid %d before: VmRSS %d KiB\n", cfg.pid, before.RSS)
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

	select {
	case <-setupAll:
		r.mu.Lock()
		fmt.Fprintf(progress, "boshload: setup done in %.1fs: %d established, %d failed\n",
			time.Since(start).Seconds(), r.established, r.setupFailed)
		r.mu.Unlock()
	case <-loadCtx.Done():
		fmt.Fprintf(progress, "boshload: the run ended before every session was set up\n")
	}

	if mem != nil && loadCtx.Err() == nil {
		select {
		case <-loadCtx.Done():
		case <-time.After(cfg.settle):
		}
		after, err := sampleMedian(loadCtx, cfg.pid, sampleCount, sampleInterval)
		if err != nil {
			res.Errors = append(res.Errors, err.Error())
		} else {
			mem.After = &after
			mem.HeldAtSample = r.held.Load()
			r.mu.Lock()
			mem.LiveAtSample = r.established - r.dropped
			r.mu.Unlock()
			mem.SettleSeconds = cfg.settle.Seconds()
			fmt.Fprintf(progress, "boshload: pid %d after: VmRSS %d KiB with %d requests held\n", cfg.pid, after.RSS, mem.HeldAtSample)
		}
		if cfg.exitAfterSample {
			cancelLoad()
		}
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
	if r.established > 0 {
		res.SetupSeconds = r.lastEstablished.Sub(start).Seconds()
		if res.SetupSeconds > 0 {
			res.SetupRate = float64(r.established) / res.SetupSeconds
		}
		res.Latency = latencySummary(r.latencies)
	}
	res.TerminateLatency = latencySummary(r.endLatencies)
	if mem != nil && mem.After != nil {
		mem.DeltaKiB = mem.After.RSS - mem.Before.RSS
		if mem.LiveAtSample > 0 {
			mem.PerSessionKiB = float64(mem.DeltaKiB) / float64(mem.LiveAtSample)
		}
	}
	res.Memory = mem
	return res
}
