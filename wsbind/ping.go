package wsbind

import (
	"sync"
	"time"
)

// A pinger keeps idle WebSocket connections alive and finds the dead
// ones (RFC 7395 §3.8: WebSocket pings, not whitespace), with one
// goroutine and no timer per session (design 003, "Pings").
//
// Sessions are spread over buckets, one visited each second, so that
// every session is visited once per half interval. A visit pings a
// session boshd has written nothing to for half an interval (so that at
// most one interval passes between two frames from boshd, which is what
// a proxy's read timeout counts) and ends, as lost, one whose client has
// sent nothing, pong included, for two intervals.
type pinger struct {
	interval time.Duration // immutable
	done     chan struct{} // closed by stop

	// mu guards buckets, next and tick; a leaf, never held while calling
	// into a session.
	mu      sync.Mutex
	buckets []map[*session]struct{}
	next    int // the bucket the next session added goes to
	tick    int // the bucket the next visit visits
	stopped bool
}

// newPinger returns a pinger for interval (at least a second), its
// goroutine running until stop.
func newPinger(interval time.Duration) *pinger {
	p := newPingerBuckets(interval)
	go p.run()
	return p
}

// newPingerBuckets returns a pinger with no goroutine: tests call visit.
func newPingerBuckets(interval time.Duration) *pinger {
	n := max(1, int(interval/time.Second)/2)
	p := &pinger{interval: interval, done: make(chan struct{}), buckets: make([]map[*session]struct{}, n)}
	for i := range p.buckets {
		p.buckets[i] = make(map[*session]struct{})
	}
	return p
}

func (p *pinger) run() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case now := <-t.C:
			p.visit(now)
		case <-p.done:
			return
		}
	}
}

// add puts s in the next bucket.
func (p *pinger) add(s *session) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s.bucket = p.next
	p.buckets[p.next][s] = struct{}{}
	p.next = (p.next + 1) % len(p.buckets)
}

// remove takes s out of its bucket.
func (p *pinger) remove(s *session) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.buckets[s.bucket], s)
}

// stop ends the goroutine.
func (p *pinger) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.stopped {
		p.stopped = true
		close(p.done)
	}
}

// visit visits the next bucket at now: it pings the sessions due, and
// ends those whose client is silent for too long, each on a goroutine of
// its own.
func (p *pinger) visit(now time.Time) {
	p.mu.Lock()
	b := p.buckets[p.tick]
	p.tick = (p.tick + 1) % len(p.buckets)
	var ping, dead []*session
	for s := range b {
		switch {
		case now.Sub(s.lastRead()) >= 2*p.interval:
			dead = append(dead, s)
		case now.Sub(s.lastWrite()) >= p.interval/2:
			ping = append(ping, s)
		}
	}
	p.mu.Unlock()
	for _, s := range dead {
		go s.end(endPingTimeout, nil)
	}
	for _, s := range ping {
		go s.ping()
	}
}
