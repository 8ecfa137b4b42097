package bosh

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boshd/boshd/config"
	"github.com/boshd/boshd/internal/netpoll"
	"github.com/boshd/boshd/internal/testcert"
	"github.com/boshd/boshd/internal/wait"
	"github.com/boshd/boshd/internal/xmpptest"
)

// addrConn is a net.Conn of a given remote address for the tests of
// connLimits, which touch nothing else of it but Close.
type addrConn struct {
	net.Conn // nil: not read or written
	remote   net.Addr

	mu     sync.Mutex
	closes int // guarded by mu
}

func (c *addrConn) RemoteAddr() net.Addr { return c.remote }

func (c *addrConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closes++
	return nil
}

func (c *addrConn) closed() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closes
}

func tcpAddr(s string) net.Addr { return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s)) }

func TestConnLimitsAdmit(t *testing.T) {
	// Each step admits a connection from an address, or closes the
	// connection admitted at an earlier step; the counts are checked
	// after each.
	type step struct {
		remote net.Addr
		close  int  // > 0: close the connection of step close (1-based) instead
		ok     bool // admitted
	}
	unix := &net.UnixAddr{Name: "@boshd", Net: "unix"}
	for _, tc := range []struct {
		name    string
		max     int
		proxies []string
		steps   []step
		want    map[string]int // connections counted per address at the end
	}{
		{"up to the cap, per address", 2, nil, []step{
			{remote: tcpAddr("192.0.2.1:1000"), ok: true},
			{remote: tcpAddr("192.0.2.1:1001"), ok: true},
			{remote: tcpAddr("192.0.2.1:1002"), ok: false},
			{remote: tcpAddr("192.0.2.2:1000"), ok: true},
		}, map[string]int{"192.0.2.1": 2, "192.0.2.2": 1}},
		{"a closed connection frees its slot", 1, nil, []step{
			{remote: tcpAddr("192.0.2.1:1000"), ok: true},
			{remote: tcpAddr("192.0.2.1:1001"), ok: false},
			{close: 1},
			{remote: tcpAddr("192.0.2.1:1002"), ok: true},
		}, map[string]int{"192.0.2.1": 1}},
		{"closing twice counts out once", 2, nil, []step{
			{remote: tcpAddr("192.0.2.1:1000"), ok: true},
			{remote: tcpAddr("192.0.2.1:1001"), ok: true},
			{close: 1},
			{close: 1},
			{remote: tcpAddr("192.0.2.1:1002"), ok: true},
			{remote: tcpAddr("192.0.2.1:1003"), ok: false},
		}, map[string]int{"192.0.2.1": 2}},
		{"IPv4-mapped IPv6 is the IPv4 address", 1, nil, []step{
			{remote: tcpAddr("192.0.2.1:1000"), ok: true},
			{remote: tcpAddr("[::ffff:192.0.2.1]:1001"), ok: false},
		}, map[string]int{"192.0.2.1": 1}},
		{"IPv6 per address, zones aside", 1, nil, []step{
			{remote: tcpAddr("[2001:db8::1]:1000"), ok: true},
			{remote: tcpAddr("[2001:db8::2]:1000"), ok: true},
			{remote: tcpAddr("[2001:db8:0::1]:1001"), ok: false},
			{remote: tcpAddr("[fe80::1%eth0]:1000"), ok: true},
			{remote: tcpAddr("[fe80::1%eth1]:1000"), ok: false},
		}, map[string]int{"2001:db8::1": 1, "2001:db8::2": 1, "fe80::1": 1}},
		{"loopback like any other", 1, nil, []step{
			{remote: tcpAddr("127.0.0.1:1000"), ok: true},
			{remote: tcpAddr("127.0.0.1:1001"), ok: false},
			{remote: tcpAddr("[::1]:1000"), ok: true},
			{remote: tcpAddr("[::1]:1001"), ok: false},
		}, map[string]int{"127.0.0.1": 1, "::1": 1}},
		{"trusted proxies counted, not capped", 1, []string{"127.0.0.1", "::1"}, []step{
			{remote: tcpAddr("127.0.0.1:1000"), ok: true},
			{remote: tcpAddr("127.0.0.1:1001"), ok: true},
			{remote: tcpAddr("[::ffff:127.0.0.1]:1002"), ok: true},
			{remote: tcpAddr("[::1]:1000"), ok: true},
			{remote: tcpAddr("127.0.0.2:1000"), ok: true},
			{remote: tcpAddr("127.0.0.2:1001"), ok: false},
		}, map[string]int{"127.0.0.1": 3, "::1": 1, "127.0.0.2": 1}},
		{"no limit: counted", 0, nil, []step{
			{remote: tcpAddr("192.0.2.1:1000"), ok: true},
			{remote: tcpAddr("192.0.2.1:1001"), ok: true},
			{remote: tcpAddr("192.0.2.1:1002"), ok: true},
		}, map[string]int{"192.0.2.1": 3}},
		{"not TCP: not counted", 1, nil, []step{
			{remote: unix, ok: true},
			{remote: unix, ok: true},
			{remote: nil, ok: true},
		}, map[string]int{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, h, _ := startRecordedHandler(t, func(cfg *config.Config) { cfg.TrustedProxies = tc.proxies })
			l := newConnLimits(tc.max, h.Gateway(), time.Now)
			var (
				conns    []*addrConn
				admitted []net.Conn
				closes   []int // Close calls made on each step's connection
			)
			for i, s := range tc.steps {
				if s.close > 0 {
					if err := admitted[s.close-1].Close(); err != nil {
						t.Fatal(err)
					}
					closes[s.close-1]++
					conns, admitted, closes = append(conns, nil), append(admitted, nil), append(closes, 0)
					continue
				}
				c := &addrConn{remote: s.remote}
				got, ok := l.admit(c)
				if ok != s.ok {
					t.Fatalf("step %d: admit(%v) = %v, want %v", i+1, s.remote, ok, s.ok)
				}
				if !ok && (got != nil || c.closed() != 1) {
					t.Fatalf("step %d: refused connection returned as %v, closed %d times; want nil, closed once", i+1, got, c.closed())
				}
				conns, admitted, closes = append(conns, c), append(admitted, got), append(closes, 0)
			}
			for i, c := range conns {
				if c != nil && admitted[i] != nil && c.closed() != closes[i] {
					t.Errorf("connection of step %d closed %d times, Close called %d times", i+1, c.closed(), closes[i])
				}
			}
			l.mu.Lock()
			defer l.mu.Unlock()
			if len(l.perIP) != len(tc.want) {
				t.Errorf("counted %v, want %v", l.perIP, tc.want)
			}
			for ip, n := range tc.want {
				if got := l.perIP[netip.MustParseAddr(ip)]; got != n {
					t.Errorf("%d connections counted for %s, want %d (all: %v)", got, ip, n, l.perIP)
				}
			}
		})
	}
}

func TestConnLimitsNotTCPUncounted(t *testing.T) {
	// A connection without an IP address is returned as it is, so that
	// net/http sees what it would without counting.
	_, h, _ := startRecordedHandler(t, nil)
	l := newConnLimits(1, h.Gateway(), time.Now)
	c := &addrConn{remote: &net.UnixAddr{Name: "/run/boshd.sock", Net: "unix"}}
	got, ok := l.admit(c)
	if !ok || got != net.Conn(c) {
		t.Fatalf("admit(unix) = %v, %v; want the connection itself", got, ok)
	}
}

func TestConnLimitsMetrics(t *testing.T) {
	_, h, _ := startRecordedHandler(t, nil)
	l := newConnLimits(2, h.Gateway(), time.Now)
	var open []net.Conn
	for i := range 5 {
		if c, ok := l.admit(&addrConn{remote: tcpAddr(fmt.Sprintf("192.0.2.1:%d", 1000+i))}); ok {
			open = append(open, c)
		}
	}
	if c, ok := l.admit(&addrConn{remote: tcpAddr("192.0.2.2:1000")}); ok {
		open = append(open, c)
	}
	open[0].Close()
	open[0].Close()
	out := scrape(t, h)
	for _, want := range []string{
		"boshd_connections_open 2\n",
		`boshd_connections_refused_total{reason="per_ip"} 3` + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if t.Failed() {
		t.Log(out)
	}
}

func TestConnLimitsRefusalLog(t *testing.T) {
	// A refusal is logged at warn with the address and the limit, then
	// at most one line per refusalLogInterval, which says how many were
	// not logged.
	_, h, logs := startRecordedHandler(t, nil)
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var now time.Time
	l := newConnLimits(1, h.Gateway(), func() time.Time { return now })
	if _, ok := l.admit(&addrConn{remote: tcpAddr("192.0.2.1:1000")}); !ok {
		t.Fatal("first connection refused")
	}
	for _, tc := range []struct {
		after      time.Duration // since start
		remote     string
		logged     bool
		suppressed string
	}{
		{0, "192.0.2.1:1001", true, "0"},
		{time.Second, "192.0.2.1:1002", false, ""},
		{refusalLogInterval - 1, "192.0.2.1:1003", false, ""},
		{refusalLogInterval, "192.0.2.1:1004", true, "2"},
		{refusalLogInterval + time.Second, "192.0.2.1:1005", false, ""},
		{3 * refusalLogInterval, "[::ffff:192.0.2.1]:1006", true, "1"},
	} {
		now = start.Add(tc.after)
		before := len(logs.find("connection refused"))
		if _, ok := l.admit(&addrConn{remote: tcpAddr(tc.remote)}); ok {
			t.Fatalf("%s admitted over the limit", tc.remote)
		}
		recs := logs.find("connection refused")
		if !tc.logged {
			if len(recs) != before {
				t.Errorf("refusal at +%v logged: %v", tc.after, recs[len(recs)-1])
			}
			continue
		}
		if len(recs) != before+1 {
			t.Fatalf("refusal at +%v: %d lines, want %d", tc.after, len(recs), before+1)
		}
		r := recs[len(recs)-1]
		a := attrsOf(r)
		if r.Level != slog.LevelWarn || !strings.Contains(r.Message, "max_conns_per_ip") || a["ip"] != "192.0.2.1" || a["limit"] != "1" || a["suppressed"] != tc.suppressed || !strings.Contains(a["hint"], "trusted_proxies") {
			t.Errorf("refusal at +%v logged %v %q %v; want warn naming max_conns_per_ip, ip=192.0.2.1 limit=1 suppressed=%s, a hint at trusted_proxies", tc.after, r.Level, r.Message, a, tc.suppressed)
		}
	}
}

func TestNewListenerWithRefusesNegative(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	ln, err := NewListenerWith(tcp, ListenerOptions{MaxConnsPerIP: -1})
	if err == nil || !strings.Contains(err.Error(), "max_conns_per_ip") || ln != nil {
		t.Fatalf("NewListenerWith(MaxConnsPerIP -1) = %v, %v; want an error naming max_conns_per_ip", ln, err)
	}
}

// connEnv is a handler served through a Listener made by NewListenerWith
// on 127.0.0.1, with its fake upstream.
type connEnv struct {
	up    *xmpptest.Server
	h     *Handler
	logs  *logRecords
	ln    *Listener
	addr  string         // host:port
	tls   *tls.Config    // the server's, or nil for plain HTTP
	roots *x509.CertPool // what clients trust, with tls
}

// newConnEnv starts a connEnv capped at max connections per address,
// serving TLS if useTLS, its configuration changed by mutate if not nil.
// No proxy is trusted, whatever the default, and only the first refusal
// is logged.
func newConnEnv(t *testing.T, max int, useTLS bool, mutate func(*config.Config)) *connEnv {
	t.Helper()
	env := &connEnv{}
	env.up, env.h, env.logs = startRecordedHandler(t, func(cfg *config.Config) {
		cfg.TrustedProxies = nil
		cfg.MaxConnsPerIP = max
		if mutate != nil {
			mutate(cfg)
		}
	})
	tcp, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts := ListenerOptions{Gateway: env.h.Gateway()}
	if useTLS {
		env.tls, env.roots = testServerTLS(t)
		opts.TLSConfig = env.tls
	}
	// A clock that stands still: refusals are logged once, however
	// long the test takes.
	start := time.Now()
	env.ln = newListener(tcp, opts, func() time.Time { return start })
	srv := &http.Server{Handler: env.h, ConnContext: env.ln.ConnContext, TLSConfig: env.tls}
	go srv.Serve(env.ln)
	t.Cleanup(func() { srv.Close() })
	env.addr = tcp.Addr().String()
	return env
}

// testServerTLS returns a server TLS config for 127.0.0.1, offering
// HTTP/2 as boshd does, and the roots its clients trust.
func testServerTLS(t *testing.T) (*tls.Config, *x509.CertPool) {
	cfg, roots := testcert.Server(t, "127.0.0.1")
	cfg.NextProtos = []string{"h2", "http/1.1"}
	return cfg, roots
}

// dial opens a connection to env from local (127.0.0.1 if nil), over TLS
// if env serves it, and returns it as a rawClient.
func (env *connEnv) dial(t *testing.T, local net.IP) (*rawClient, error) {
	t.Helper()
	d := &net.Dialer{Timeout: 10 * time.Second}
	if local != nil {
		d.LocalAddr = &net.TCPAddr{IP: local}
	}
	conn, err := d.Dial("tcp4", env.addr)
	if err != nil {
		return nil, err
	}
	if env.tls != nil {
		tc := tls.Client(conn, &tls.Config{RootCAs: env.roots, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}})
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			conn.Close()
			return nil, err
		}
		tc.SetDeadline(time.Time{})
		conn = tc
	}
	t.Cleanup(func() { conn.Close() })
	return &rawClient{t: t, conn: conn, br: bufio.NewReader(conn), host: env.addr}, nil
}

// get sends GET / on c and reports whether it was answered 200; an error
// says the connection was refused (closed at once by the server).
func (c *rawClient) get() error {
	c.conn.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.conn.SetDeadline(time.Time{})
	if _, err := io.WriteString(c.conn, "GET / HTTP/1.1\r\nHost: "+c.host+"\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// served dials env from local and reports whether a GET is answered on
// the connection, which it closes.
func (env *connEnv) served(t *testing.T, local net.IP) error {
	t.Helper()
	c, err := env.dial(t, local)
	if err != nil {
		return err
	}
	defer c.conn.Close()
	return c.get()
}

// waitOpen waits until env counts n connections open from ip.
func (env *connEnv) waitOpen(t *testing.T, ip string, n int) {
	t.Helper()
	addr := netip.MustParseAddr(ip)
	wait.Until(t, func() bool { return env.ln.conns.open(addr) == n }, "%d connections open from %s", n, ip)
}

// session creates a session on c and has one request answered by the
// upstream on it: the client is served.
func (env *connEnv) session(t *testing.T, c *rawClient, rid int) {
	t.Helper()
	sid := c.create(rid, 60)
	c.send(emptyBody(sid, rid+1))
	env.up.Push(t, fmt.Sprintf("<message><body>%d</body></message>", rid))
	if _, body := c.receive(); !strings.Contains(body, fmt.Sprintf("<body>%d</body>", rid)) {
		t.Fatalf("rid %d answered %s", rid+1, body)
	}
}

// secondLoopback is 127.0.0.2, the flooding address of the tests, or
// skips t where it cannot be used.
func secondLoopback(t *testing.T) net.IP {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no second loopback address: %v", err)
	}
	ln.Close()
	return net.IPv4(127, 0, 0, 2)
}

func TestListenerConnFlood(t *testing.T) {
	// Issue 15: one address opening connections without end gets
	// max_conns_per_ip of them; the others are closed at once and
	// counted, while another address is served as usual. Once the
	// flood's connections are closed, the address is served again.
	const limit, extra = 4, 12
	flooder := secondLoopback(t)
	for _, useTLS := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "TLS"}[useTLS], func(t *testing.T) {
			env := newConnEnv(t, limit, useTLS, nil)
			var flood []*rawClient
			refused := 0
			for range limit + extra {
				c, err := env.dial(t, flooder)
				if err == nil {
					err = c.get()
					flood = append(flood, c)
				}
				if err != nil {
					refused++
				}
			}
			if refused != extra {
				t.Fatalf("%d of %d connections from 127.0.0.2 refused, want %d", refused, limit+extra, extra)
			}
			env.waitOpen(t, "127.0.0.2", limit)
			if err := env.served(t, flooder); err == nil {
				t.Fatal("a new connection from 127.0.0.2 served during the flood")
			}

			// Another address: a session made and a request answered.
			good, err := env.dial(t, nil)
			if err != nil {
				t.Fatal(err)
			}
			env.session(t, good, 100)

			for _, c := range flood {
				c.conn.Close()
			}
			env.waitOpen(t, "127.0.0.2", 0)
			again, err := env.dial(t, flooder)
			if err != nil {
				t.Fatalf("127.0.0.2 after the flood: %v", err)
			}
			env.session(t, again, 200)

			out := scrape(t, env.h)
			for _, want := range []string{
				fmt.Sprintf(`boshd_connections_refused_total{reason="per_ip"} %d`+"\n", extra+1),
				"boshd_connections_open 2\n", // good and again
			} {
				if !strings.Contains(out, want) {
					t.Errorf("metrics lack %q", want)
				}
			}
			if recs := env.logs.find("connection refused"); len(recs) != 1 || attrsOf(recs[0])["ip"] != "127.0.0.2" {
				t.Errorf("refusals logged as %v, want one line for 127.0.0.2", recs)
			}
		})
	}
}

func TestListenerCountsParkedConnections(t *testing.T) {
	// A connection counts for its socket, from accept to close, whoever
	// holds it: net/http, a parked request (taken from net/http), the
	// Listener between requests. With max_conns_per_ip at 1, a second
	// connection is refused all along, and the first is counted out
	// exactly once when the client hangs up on a parked request.
	for _, useTLS := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "TLS"}[useTLS], func(t *testing.T) {
			env := newConnEnv(t, 1, useTLS, func(cfg *config.Config) { cfg.ParkHeld, cfg.ParkAfter = true, 0 })
			if env.h.poller == nil {
				t.Skip("parking unavailable here")
			}
			c, err := env.dial(t, nil)
			if err != nil {
				t.Fatal(err)
			}
			sid := c.create(100, 60)
			for rid := 101; rid <= 103; rid++ {
				c.send(emptyBody(sid, rid))
				waitParked(t, env.h, 1)
				if err := env.served(t, nil); err == nil {
					t.Fatalf("rid %d parked: a second connection was served", rid)
				}
				env.waitOpen(t, "127.0.0.1", 1)
				if rid == 103 {
					break
				}
				env.up.Push(t, fmt.Sprintf("<message><body>%d</body></message>", rid))
				if _, body := c.receive(); !strings.Contains(body, fmt.Sprintf("<body>%d</body>", rid)) {
					t.Fatalf("rid %d answered %s", rid, body)
				}
			}
			c.conn.Close() // hangs up on the parked request
			env.waitOpen(t, "127.0.0.1", 0)
			waitParked(t, env.h, 0)
			if out := scrape(t, env.h); !strings.Contains(out, "boshd_connections_open 0\n") {
				t.Fatalf("connections still counted open:\n%s", out)
			}
			if err := env.served(t, nil); err != nil {
				t.Fatalf("a new connection after the hang-up: %v", err)
			}
		})
	}
}

func TestListenerTLSInnerNotCounted(t *testing.T) {
	// An inner listener serving TLS itself hands over *tls.Conn, which
	// cannot be wrapped: connections are served uncounted, and that is
	// logged once, at error.
	_, h, logs := startRecordedHandler(t, func(cfg *config.Config) {
		cfg.TrustedProxies = nil
		cfg.MaxConnsPerIP = 1
	})
	tcp, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serverTLS, roots := testServerTLS(t)
	ln, err := NewListenerWith(tls.NewListener(tcp, serverTLS), ListenerOptions{Gateway: h.Gateway()})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ConnContext: ln.ConnContext, TLSConfig: serverTLS}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	env := &connEnv{h: h, ln: ln, addr: tcp.Addr().String(), tls: serverTLS, roots: roots}
	var conns []*rawClient
	for i := range 3 {
		c, err := env.dial(t, nil)
		if err == nil {
			err = c.get()
		}
		if err != nil {
			t.Fatalf("connection %d: %v", i+1, err)
		}
		conns = append(conns, c)
	}
	recs := logs.find("not counted")
	if len(recs) != 1 || recs[0].Level != slog.LevelError || !strings.Contains(recs[0].Message, "TLSConfig") {
		t.Fatalf("logged %v, want one error pointing at ListenerOptions.TLSConfig", recs)
	}
	if n := ln.conns.open(netip.MustParseAddr("127.0.0.1")); n != 0 {
		t.Fatalf("%d connections counted", n)
	}
}

func TestCountedConnPassesThrough(t *testing.T) {
	// What net/http and parking look for on a *net.TCPConn works through
	// the wrapper: the socket, half-close, ReadFrom; and on a connection
	// that has none of them, they fail cleanly or fall back.
	ln, accept := listenLoopback(t, ListenerOptions{MaxConnsPerIP: 1})
	client, c := accept()
	defer c.Close()
	if _, ok := c.(*countedConn); !ok {
		t.Fatalf("accepted a %T, want a *countedConn", c)
	}
	l := ln.conns
	if netpoll.RawConnOf(c) == nil {
		t.Error("no socket under a counted connection")
	}
	if netpoll.RawConnOf(tls.Server(c, &tls.Config{})) == nil {
		t.Error("no socket under TLS over a counted connection")
	}
	if n, err := c.(io.ReaderFrom).ReadFrom(strings.NewReader("hello")); n != 5 || err != nil {
		t.Fatalf("ReadFrom = %d, %v", n, err)
	}
	if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
	got, err := io.ReadAll(client)
	if string(got) != "hello" || err != nil {
		t.Fatalf("client read %q, %v; want hello, then EOF after CloseWrite", got, err)
	}

	p1, p2 := net.Pipe()
	defer p1.Close()
	defer p2.Close()
	piped := &countedConn{Conn: &addrConn{Conn: p1, remote: tcpAddr("192.0.2.1:1")}, limits: l, ip: netip.MustParseAddr("192.0.2.1")}
	l.take(piped.ip, false)
	if _, err := piped.SyscallConn(); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("SyscallConn on a pipe: %v, want ErrUnsupported", err)
	}
	if netpoll.RawConnOf(piped) != nil {
		t.Error("a socket found under a pipe")
	}
	if err := piped.CloseWrite(); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("CloseWrite on a pipe: %v, want ErrUnsupported", err)
	}
	go io.Copy(io.Discard, p2)
	if n, err := piped.ReadFrom(strings.NewReader("hello")); n != 5 || err != nil {
		t.Errorf("ReadFrom on a pipe = %d, %v", n, err)
	}
	piped.Close()
	if n := l.open(piped.ip); n != 0 {
		t.Errorf("%d connections counted after Close", n)
	}
}

func TestNewListenerWithCapFromGateway(t *testing.T) {
	// With a Gateway, the cap is its max_conns_per_ip: the option is for
	// Listeners without one, and setting both is refused.
	_, h, _ := startRecordedHandler(t, func(cfg *config.Config) { cfg.MaxConnsPerIP = 3 })
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	ln, err := NewListenerWith(tcp, ListenerOptions{MaxConnsPerIP: 1, Gateway: h.Gateway()})
	if err == nil || !strings.Contains(err.Error(), "max_conns_per_ip") || ln != nil {
		t.Fatalf("NewListenerWith(MaxConnsPerIP and Gateway) = %v, %v; want an error naming max_conns_per_ip", ln, err)
	}
	ln, err = NewListenerWith(tcp, ListenerOptions{Gateway: h.Gateway()})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if ln.conns == nil || ln.conns.max != 3 {
		t.Fatalf("conns = %+v, want the gateway's max_conns_per_ip, 3", ln.conns)
	}
}

func TestListenerTLSInnerAndTLSConfig(t *testing.T) {
	// An inner listener serving TLS itself, and TLSConfig set too: the
	// *tls.Conn it hands over is served as it is, not wrapped in TLS
	// again, which would fail every handshake; it is not counted, and
	// that is logged once.
	_, h, logs := startRecordedHandler(t, func(cfg *config.Config) {
		cfg.TrustedProxies = nil
		cfg.MaxConnsPerIP = 1
	})
	tcp, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serverTLS, roots := testServerTLS(t)
	ln, err := NewListenerWith(tls.NewListener(tcp, serverTLS), ListenerOptions{TLSConfig: serverTLS, Gateway: h.Gateway()})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ConnContext: ln.ConnContext, TLSConfig: serverTLS}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	env := &connEnv{h: h, ln: ln, addr: tcp.Addr().String(), tls: serverTLS, roots: roots}
	for i := range 2 {
		c, err := env.dial(t, nil)
		if err == nil {
			err = c.get()
		}
		if err != nil {
			t.Fatalf("connection %d: %v", i+1, err)
		}
	}
	if recs := logs.find("not counted"); len(recs) != 1 {
		t.Fatalf("logged %v, want one line saying connections are not counted", recs)
	}
}
