package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// Bounds on the flags, so that a typo cannot start an unbounded run.
const (
	maxSessions   = 200000           // highest --sessions
	maxPairRate   = 10000            // highest --rate-per-pair, stanzas per second
	maxQueue      = 1000             // stanzas a chatting session queues before it skips
	maxRate       = 20000            // highest --rate, sessions per second
	maxDuration   = 2 * time.Hour    // longest --duration
	maxWait       = 3600             // highest --wait, seconds
	maxInFlight   = 10000            // highest --max-setup
	maxSettle     = 5 * time.Minute  // longest --settle
	maxRelogin    = 100              // highest --relogin
	minDuration   = time.Second      // shortest --duration
	defaultWait   = 60               // --wait when not given
	defaultSettle = 3 * time.Second  // --settle when not given
	requestSlack  = 10 * time.Second // added to wait for a request's deadline
)

// Transports boshload speaks (--transport).
const (
	transportBOSH      = "bosh"      // XEP-0124 with XEP-0206, over HTTP
	transportWebSocket = "websocket" // RFC 7395, XMPP over WebSocket
)

// Default URLs of each transport, when --url is not given.
const (
	defaultBOSHURL      = "http://127.0.0.1:5280/http-bind"
	defaultWebSocketURL = "ws://127.0.0.1:5280/xmpp-websocket"
)

// config is the validated command line.
type config struct {
	// transport is transportBOSH or transportWebSocket.
	transport string
	url       *url.URL
	domain    string
	sessions  int
	rate      float64
	duration  time.Duration
	// wait is the seconds asked for as wait at a BOSH session's
	// creation; over WebSocket it only bounds each answer awaited, as a
	// BOSH request's deadline does (wait plus requestSlack).
	wait int

	// login is the --login pattern (user%d:password) split in two;
	// loginUser is empty when sessions stay unauthenticated.
	loginUser, loginPass string

	sources   []netip.Addr // local addresses to bind, round-robin; may be empty
	jsonPath  string
	pid       int           // process whose memory is sampled; 0: none
	settle    time.Duration // pause before the "after" memory samples
	maxSetup  int           // sessions being set up at once
	terminate bool          // end sessions with type='terminate' at the end
	// exitAfterSample ends the idle phase once memory has been sampled.
	exitAfterSample bool
	verbose         bool

	hold int // hold asked for at BOSH creation: 1, or 0 for a polling session

	// pairs is the number of chatting pairs (sessions 1&2, 3&4, …);
	// ratePerPair the stanzas per second each pair sends in all (half
	// each way); drain how long before the end of the load sending
	// stops, so that every stanza sent can arrive.
	pairs       int
	ratePerPair float64
	drain       time.Duration
	// poll makes every session send empty requests back to back once
	// all are set up (with --hold 0: a polling session), counting round
	// trips.
	poll bool
	// chatFor, when set, ends the load that long (plus drain) after
	// chatting or polling starts, within --duration.
	chatFor time.Duration
	// alsoPIDs are more processes sampled with pid (the rest of a stack).
	alsoPIDs []int
	// cpuProfile, if set, is where boshload writes its own CPU profile.
	cpuProfile string
	// relogin is how many times a chatting BOSH session that fails
	// (a terminate, an HTTP error, a network error) logs in again and
	// chats on, as a web client does; 0: a failed session is dropped.
	relogin int
	// readyFile, if set, is written once chatting or polling starts,
	// so that a caller knows when to act on the server (an upgrade).
	readyFile string
}

// parseFlags parses and validates the command line. It returns
// flag.ErrHelp after printing usage for -h.
func parseFlags(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("boshload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		tport   = fs.String("transport", transportBOSH, "`bosh` (XEP-0206) or websocket (RFC 7395)")
		rawURL  = fs.String("url", "", "BOSH (http, https) or WebSocket (ws, wss) `URL`, loopback hosts only (default "+defaultBOSHURL+", or "+defaultWebSocketURL+" with --transport websocket)")
		domain  = fs.String("domain", "localhost", "XMPP `DOMAIN` sent as to= at creation")
		n       = fs.Int("sessions", 100, fmt.Sprintf("number of sessions `N` to open (at most %d)", maxSessions))
		rate    = fs.Float64("rate", 200, fmt.Sprintf("sessions started per second (at most %d)", maxRate))
		dur     = fs.Duration("duration", 60*time.Second, "total run time; the run always stops by itself")
		wait    = fs.Int("wait", defaultWait, "`seconds` asked for as wait at creation")
		login   = fs.String("login", "", "log in with SASL PLAIN as `user%d:password` (%d is the session index from 1)")
		sources = fs.String("sources", "", "comma-separated local loopback `ADDRS` to bind client sockets to, round-robin")
		jsonOut = fs.String("json", "", "write the results as JSON to `FILE`")
		pid     = fs.Int("pid", 0, "sample the RSS of process `PID` before and after the sessions are established")
		settle  = fs.Duration("settle", defaultSettle, "wait this long once sessions are idle before sampling memory")
		setup   = fs.Int("max-setup", 256, "sessions being set up at once, at most")
		term    = fs.Bool("terminate", true, "end each session with type='terminate' when the run ends")
		early   = fs.Bool("exit-after-sample", false, "with --pid, end the run once the memory after setup is sampled")
		verbose = fs.Bool("v", false, "log each session failure")
		hold    = fs.Int("hold", 1, "hold asked for at creation (1, or 0 for polling sessions); BOSH only")
		pairs   = fs.Int("pairs", 0, "chatting pairs `P`: sessions 2k-1 and 2k send each other messages (needs --login)")
		perPair = fs.Float64("rate-per-pair", 1, "stanzas per second each chatting pair sends in all, half each way")
		drain   = fs.Duration("drain", 0, "stop sending this long before the load ends (default: a tenth of --duration, 1-5 s)")
		poll    = fs.Bool("poll", false, "once all sessions are set up, send empty requests back to back and count round trips; BOSH only")
		chatFor = fs.Duration("chat-for", 0, "with --pairs or --poll: end the load this long (plus --drain) after chatting starts (0: at --duration)")
		also    = fs.String("also-pid", "", "comma-separated `PIDS` sampled with --pid (the rest of the stack)")
		cpuProf = fs.String("cpuprofile", "", "write boshload's own CPU profile of the whole run to `FILE` (go tool pprof)")
		relogin = fs.Int("relogin", 0, "with --pairs: a chatting session that fails logs in again and chats on, at most `N` times (counted as relogins); BOSH only")
		ready   = fs.String("ready-file", "", "write `FILE` once every session is set up and chatting or polling starts")
	)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: boshload [flags]\n\n"+
			"boshload opens BOSH sessions (or XMPP over WebSocket connections) against a\n"+
			"loopback connection manager and keeps them idle (a BOSH request held in each)\n"+
			"or chatting, reporting setup rate, failures, push latency and the server's RSS.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}

	c := &config{
		transport:       *tport,
		domain:          strings.TrimSpace(*domain),
		sessions:        *n,
		rate:            *rate,
		duration:        *dur,
		wait:            *wait,
		jsonPath:        *jsonOut,
		pid:             *pid,
		settle:          *settle,
		maxSetup:        *setup,
		terminate:       *term,
		exitAfterSample: *early,
		verbose:         *verbose,
		hold:            *hold,
		pairs:           *pairs,
		ratePerPair:     *perPair,
		drain:           *drain,
		poll:            *poll,
		chatFor:         *chatFor,
		cpuProfile:      *cpuProf,
		relogin:         *relogin,
		readyFile:       *ready,
	}
	set := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch c.transport {
	case transportBOSH:
		if *rawURL == "" {
			*rawURL = defaultBOSHURL
		}
	case transportWebSocket:
		if *rawURL == "" {
			*rawURL = defaultWebSocketURL
		}
		// What only BOSH has: a held request, and polling.
		for _, name := range []string{"hold", "poll", "relogin"} {
			if set[name] {
				return nil, fmt.Errorf("--%s is BOSH only, not for --transport websocket", name)
			}
		}
	default:
		return nil, fmt.Errorf("--transport: %q is not %s or %s", c.transport, transportBOSH, transportWebSocket)
	}
	var err error
	if c.url, err = parseLoopbackURL(*rawURL, c.transport); err != nil {
		return nil, fmt.Errorf("--url: %w", err)
	}
	if c.domain == "" || strings.ContainsAny(c.domain, "@/'\"<>& ") {
		return nil, fmt.Errorf("--domain: %q is not a domain", *domain)
	}
	if c.sessions < 1 || c.sessions > maxSessions {
		return nil, fmt.Errorf("--sessions: %d is not in [1, %d]", c.sessions, maxSessions)
	}
	if !(c.rate > 0 && c.rate <= maxRate) { // also refuses NaN
		return nil, fmt.Errorf("--rate: %g is not in (0, %d]", c.rate, maxRate)
	}
	if c.duration < minDuration || c.duration > maxDuration {
		return nil, fmt.Errorf("--duration: %v is not in [%v, %v]", c.duration, minDuration, maxDuration)
	}
	if c.wait < 1 || c.wait > maxWait {
		return nil, fmt.Errorf("--wait: %d is not in [1, %d]", c.wait, maxWait)
	}
	if *login != "" {
		if c.loginUser, c.loginPass, err = parseLogin(*login); err != nil {
			return nil, fmt.Errorf("--login: %w", err)
		}
	}
	if c.sources, err = parseSources(*sources); err != nil {
		return nil, fmt.Errorf("--sources: %w", err)
	}
	if c.pid < 0 {
		return nil, fmt.Errorf("--pid: %d is not a process id", c.pid)
	}
	if c.settle < 0 || c.settle > maxSettle {
		return nil, fmt.Errorf("--settle: %v is not in [0, %v]", c.settle, maxSettle)
	}
	if c.maxSetup < 1 || c.maxSetup > maxInFlight {
		return nil, fmt.Errorf("--max-setup: %d is not in [1, %d]", c.maxSetup, maxInFlight)
	}
	if c.hold != 0 && c.hold != 1 {
		return nil, fmt.Errorf("--hold: %d is not 0 or 1", c.hold)
	}
	if c.pairs < 0 || 2*c.pairs > c.sessions {
		return nil, fmt.Errorf("--pairs: %d pairs need %d sessions, --sessions is %d", c.pairs, 2*c.pairs, c.sessions)
	}
	if c.pairs > 0 && c.loginUser == "" {
		return nil, errors.New("--pairs needs --login: messages go between bound full JIDs")
	}
	if c.relogin < 0 || c.relogin > maxRelogin {
		return nil, fmt.Errorf("--relogin: %d is not in [0, %d]", c.relogin, maxRelogin)
	}
	if c.relogin > 0 && c.pairs == 0 {
		return nil, errors.New("--relogin needs --pairs: only chatting sessions log in again")
	}
	if c.pairs > 0 && c.poll {
		return nil, errors.New("--pairs and --poll exclude each other")
	}
	if !(c.ratePerPair > 0 && c.ratePerPair <= maxPairRate) {
		return nil, fmt.Errorf("--rate-per-pair: %g is not in (0, %d]", c.ratePerPair, maxPairRate)
	}
	if c.drain == 0 {
		c.drain = min(max(c.duration/10, time.Second), 5*time.Second, c.duration/2)
	}
	if c.drain < 0 || c.drain >= c.duration {
		return nil, fmt.Errorf("--drain: %v is not in [0, --duration)", c.drain)
	}
	if c.chatFor < 0 || c.chatFor > maxDuration {
		return nil, fmt.Errorf("--chat-for: %v is not in [0, %v]", c.chatFor, maxDuration)
	}
	if c.hold == 0 && !c.poll {
		return nil, errors.New("--hold 0 (polling) needs --poll")
	}
	for _, f := range strings.Split(*also, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		var p int
		if _, err := fmt.Sscan(f, &p); err != nil || p <= 0 {
			return nil, fmt.Errorf("--also-pid: %q is not a process id", f)
		}
		c.alsoPIDs = append(c.alsoPIDs, p)
	}
	return c, nil
}

// parseLoopbackURL parses the URL of a transport's endpoint (http or
// https for BOSH, ws or wss for WebSocket) and refuses any whose host is
// not localhost, an address in 127.0.0.0/8 or ::1: boshload never loads
// a machine other than its own.
func parseLoopbackURL(raw, transport string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	schemes := [2]string{"http", "https"}
	if transport == transportWebSocket {
		schemes = [2]string{"ws", "wss"}
	}
	if u.Scheme != schemes[0] && u.Scheme != schemes[1] {
		return nil, fmt.Errorf("%q: scheme must be %s or %s for %s", raw, schemes[0], schemes[1], transport)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%q: user information is not supported", raw)
	}
	host := u.Hostname()
	if !isLoopbackHost(host) {
		return nil, fmt.Errorf("%q: host %q is not a loopback address (127.0.0.0/8, ::1 or localhost)", raw, host)
	}
	return u, nil
}

// isLoopbackHost reports whether host is localhost or a loopback IP
// address. It resolves no name: localhost is the only name accepted.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	addr, err := netip.ParseAddr(host)
	if err != nil || addr.Zone() != "" {
		return false
	}
	return addr.Unmap().IsLoopback()
}

// parseLogin splits a --login value user%d:password. The user part must
// contain exactly one %d and no other verb.
func parseLogin(s string) (user, pass string, err error) {
	user, pass, ok := strings.Cut(s, ":")
	if !ok || user == "" || pass == "" {
		return "", "", fmt.Errorf("%q is not user%%d:password", s)
	}
	if strings.Count(user, "%") != 1 || !strings.Contains(user, "%d") {
		return "", "", fmt.Errorf("user %q must contain %%d exactly once and no other %%", user)
	}
	if strings.ContainsAny(user, "@/ ") {
		return "", "", fmt.Errorf("user %q must be a bare localpart pattern", user)
	}
	return user, pass, nil
}

// userName returns the user name of session index i (from 1).
func (c *config) userName(i int) string {
	return fmt.Sprintf(c.loginUser, i)
}

// parseSources parses a comma-separated list of loopback addresses.
func parseSources(s string) ([]netip.Addr, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []netip.Addr
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		addr, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", f, err)
		}
		if addr.Zone() != "" || !addr.Unmap().IsLoopback() {
			return nil, fmt.Errorf("%q is not a loopback address", f)
		}
		out = append(out, addr.Unmap())
	}
	return out, nil
}

// isHelp reports whether err asks for usage only.
func isHelp(err error) bool { return errors.Is(err, flag.ErrHelp) }
