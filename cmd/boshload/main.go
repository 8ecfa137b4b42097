// Command boshload is a BOSH (XEP-0124, XEP-0206) and XMPP over
// WebSocket (RFC 7395) load generator for boshd and other connection
// managers on the same machine.
//
// It opens --sessions sessions at --rate per second, optionally logs each
// in (SASL PLAIN, stream restart, resource binding, initial presence),
// and then keeps exactly one request held in each: an idle long-poll that
// is posted again with the next rid whenever a response comes back. It
// reports how many sessions were established, the failures by phase and
// reason (a terminal condition, an HTTP status, a network error), the
// setup rate achieved and, with --pid, how much the server's resident
// memory grew per session.
//
// Usage:
//
//	boshload --url http://127.0.0.1:5280/http-bind --domain localhost \
//		--sessions 5000 --rate 500 --duration 60s [--pid PID] [--json FILE]
//
// With --pairs P (and --login), sessions 2k-1 and 2k (k ≤ P) chat once
// every session is set up (and memory sampled): each sends the other's
// bound full JID --rate-per-pair/2 messages per second, numbered and
// timestamped, at most two requests in flight as Strophe.js does; the
// receiver checks exactly-once, in-order delivery per pair and reports
// push latency end to end (p50, p90, p99, max), from the sender's stamp,
// taken as the request is made, to the first byte of the response that
// carries the message. With --hold 0 --poll every
// session sends empty requests back to back and round trips are counted.
// See chat.go.
//
// Across a live upgrade of the server (issue 18), chat with --chat-for
// and --ready-file (written once chatting starts, so that the caller
// upgrades then): the report counts terminates, HTTP errors and network
// errors (each ends a session), the requests resent on a new connection
// after the server closed a kept-alive one (no failure), and, with
// --relogin N, the chatting sessions that logged in again after a
// failure and chatted on, as a web client does. Its chat part has a
// timeline: the messages received in each second since chatting started
// and the longest push latency among them, with the start's wall-clock
// time, so that a caller reads what clients saw at the moment it acted.
//
// With --transport websocket, each session is an XMPP over WebSocket
// connection (RFC 7395, subprotocol xmpp, a ws:// or wss:// --url): the
// same login, each stanza a message of its own, a restart with a new
// <open/>, and <close/> at the end. Idle sessions read their connection
// (a goroutine each, blocked); chatting sessions send each message when
// it is due, and the push latency ends when the message's first frame
// header is read. The report is the same, so that the transports
// compare; --hold and --poll are BOSH only. See wsclient.go and wsrun.go.
//
// boshload runs with GOGC=400 unless GOGC is set, and --cpuprofile FILE
// writes its own CPU profile: the generator must cost less per stanza
// than the server it loads, or it, not the server, bounds a comparison on
// a machine they share.
//
// Each BOSH session has its own HTTP/1.1 client (httpclient.go) limited
// to two connections, as a browser tab has, and binds its sockets to one
// of --sources in turn, so that more than one address's ephemeral ports
// can be used. Only loopback
// URLs are accepted, and every run stops by itself after --duration; the
// last tenth of it, at most 5 s, is kept for ending the sessions with
// type='terminate'.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"syscall"
)

func main() {
	if os.Getenv("GOGC") == "" {
		// The generator must cost less per stanza than the server it
		// loads: a collection a quarter as often, for memory nobody
		// measures. GOGC in the environment still decides.
		debug.SetGCPercent(generatorGOGC)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// generatorGOGC is boshload's GOGC unless the environment sets one.
const generatorGOGC = 400

// run is boshload's main, returning the exit status: 0 when every session
// was established, 1 when some were not, 2 for a usage error.
func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if isHelp(err) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "boshload:", err)
		return 2
	}
	if err := checkFileLimit(cfg.sessions); err != nil {
		fmt.Fprintln(stderr, "boshload:", err)
		return 2
	}

	if cfg.cpuProfile != "" {
		stopProfile, err := startCPUProfile(cfg.cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "boshload:", err)
			return 2
		}
		defer stopProfile()
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	res := newRunner(cfg, stderr).run(ctx, stderr)
	res.print(stdout)
	if cfg.jsonPath != "" {
		if err := res.writeJSON(cfg.jsonPath); err != nil {
			fmt.Fprintln(stderr, "boshload:", err)
			return 1
		}
	}
	if res.Established < cfg.sessions {
		return 1
	}
	return 0
}

// startCPUProfile starts profiling boshload's CPU into the file path and
// returns the function that stops it and closes the file.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// checkFileLimit refuses a run that cannot hold a socket per session
// (Go raises the soft limit to the hard one at start-up).
func checkFileLimit(sessions int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("reading the open file limit: %w", err)
	}
	const spare = 64
	if need := uint64(sessions) + spare; lim.Cur < need {
		return fmt.Errorf("%d sessions need at least %d open files, the limit is %d: raise ulimit -n", sessions, need, lim.Cur)
	}
	return nil
}
