package bosh

import (
	"fmt"
	"net"
	"net/http"
	"sync"
)

// sessionLimits counts the sessions held, in all and per client IP, against
// max_sessions and max_sessions_per_ip (R-SEC-5). A slot is taken before
// the upstream is dialled and given back when the registry forgets the
// session (session.Params.OnRemove), so ended sessions still answering
// resent requests count until they are gone.
type sessionLimits struct {
	max, maxPerIP int // 0: no limit; immutable

	mu    sync.Mutex
	total int
	perIP map[string]int // only IPs with sessions
}

func newSessionLimits(max, maxPerIP int) *sessionLimits {
	return &sessionLimits{max: max, maxPerIP: maxPerIP, perIP: make(map[string]int)}
}

// acquire takes a slot for a session of ip. It returns the function that
// gives the slot back, which may be called any number of times, or an
// error naming the limit reached.
func (l *sessionLimits) acquire(ip string) (release func(), err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.max > 0 && l.total >= l.max {
		return nil, fmt.Errorf("max_sessions (%d) reached", l.max)
	}
	if l.maxPerIP > 0 && l.perIP[ip] >= l.maxPerIP {
		return nil, fmt.Errorf("max_sessions_per_ip (%d) reached", l.maxPerIP)
	}
	l.total++
	l.perIP[ip]++
	var once sync.Once
	return func() { once.Do(func() { l.release(ip) }) }, nil
}

func (l *sessionLimits) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.perIP[ip]--; l.perIP[ip] <= 0 {
		delete(l.perIP, ip)
	}
}

// counts returns the sessions counted, in all and for ip.
func (l *sessionLimits) counts(ip string) (total, forIP int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total, l.perIP[ip]
}

// clientIP returns the IP address a request comes from, as counted by
// max_sessions_per_ip and logged: the host of r.RemoteAddr. It is where
// X-Forwarded-For from trusted proxies will be honoured.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.String() // one spelling per address
	}
	return host
}
