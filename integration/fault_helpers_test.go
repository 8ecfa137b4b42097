package integration

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/boshd/boshd/internal/wait"
)

// Helpers for the fault tests (fault_test.go): process-wide goroutine and
// file descriptor accounting, a direct XMPP watcher, restarting a killed
// Prosody on its port, and raw HTTP requests that vanish. The TCP proxy
// that can stop reading is in proxy_test.go.

// boshdPackages are the stack frame prefixes of boshd's own code: a
// goroutine with one of them in its stack belongs to boshd (a session's
// reader, a request being handled, a write upstream). The test fixtures
// under internal/ (wait, xmpptest, ...) are not boshd's: the test
// goroutine waiting in internal/wait must not count.
var boshdPackages = []string{
	"github.com/boshd/boshd/session.",
	"github.com/boshd/boshd/xmpp.",
	"github.com/boshd/boshd/bosh.",
	"github.com/boshd/boshd/internal/rawxml.",
	"github.com/boshd/boshd/internal/netpoll.",
}

// procState is a snapshot of the test process.
type procState struct {
	goroutines int            // runtime.NumGoroutine
	boshd      int            // goroutines running boshd code
	fds        map[int]string // open file descriptors and what they are
}

// String summarises the snapshot.
func (s procState) String() string {
	return fmt.Sprintf("%d goroutines (%d in boshd packages), %d fds", s.goroutines, s.boshd, len(s.fds))
}

// takeProcState snapshots the process.
func takeProcState() procState {
	stacks := boshdStacks()
	return procState{goroutines: runtime.NumGoroutine(), boshd: len(stacks), fds: openFDs()}
}

// allStacks returns every goroutine's stack, one string each.
func allStacks() []string {
	buf := make([]byte, 1<<20)
	for range 6 {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	return strings.Split(strings.TrimSpace(string(buf)), "\n\n")
}

// serverStacks mark the goroutines that live as long as the server, like
// net/http's accept loop: the two accepting connections for a
// bosh.Listener, and the handler's netpoll.Poller waiting on epoll.
var serverStacks = []string{
	"github.com/boshd/boshd/bosh.(*Listener).Accept",
	"github.com/boshd/boshd/bosh.(*Listener).acceptInner",
	"github.com/boshd/boshd/internal/netpoll.(*Poller).loop",
}

// boshdStacks returns the stacks of the goroutines running boshd code,
// except the server's own (serverStacks).
func boshdStacks() []string {
	var out []string
stacks:
	for _, g := range allStacks() {
		for _, s := range serverStacks {
			if strings.Contains(g, s) {
				continue stacks
			}
		}
		for _, pkg := range boshdPackages {
			if strings.Contains(g, pkg) {
				out = append(out, g)
				break
			}
		}
	}
	return out
}

// openFDs lists the process's file descriptors with their readlink
// targets (socket:[inode], a path, anon_inode:[pidfd]...). The descriptor
// used to read /proc/self/fd itself is left out.
func openFDs() map[int]string {
	dir, err := os.Open("/proc/self/fd")
	if err != nil {
		return nil
	}
	defer dir.Close()
	names, _ := dir.Readdirnames(-1)
	self := int(dir.Fd())
	fds := make(map[int]string, len(names))
	for _, name := range names {
		n, err := strconv.Atoi(name)
		if err != nil || n == self {
			continue
		}
		target, err := os.Readlink(filepath.Join("/proc/self/fd", name))
		if err != nil {
			continue // closed meanwhile
		}
		fds[n] = target
	}
	return fds
}

// socketsTo counts the process's TCP sockets whose remote end is port on
// 127.0.0.1 (boshd's upstream connections to a Prosody, say), by matching
// the socket inodes of /proc/self/fd with /proc/net/tcp.
func socketsTo(port int) int {
	inodes := make(map[string]bool)
	for _, target := range openFDs() {
		if inode, ok := strings.CutPrefix(target, "socket:["); ok {
			inodes[strings.TrimSuffix(inode, "]")] = true
		}
	}
	n := 0
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 {
				continue
			}
			_, remPort, ok := strings.Cut(f[2], ":")
			if !ok {
				continue
			}
			p, err := strconv.ParseInt(remPort, 16, 32)
			if err == nil && int(p) == port && inodes[f[9]] {
				n++
			}
		}
	}
	return n
}

// settleCheck is one condition waitSettled waits for.
type settleCheck struct {
	what string
	ok   func(procState) bool
}

// waitSettled polls the process state until every check holds or timeout
// passes (goroutines and descriptors go away asynchronously: a reader
// goroutine sees its socket closed, net/http notices a closed
// connection). On timeout it fails t with the state, the stacks of
// goroutines running boshd code and the descriptors opened since base.
func waitSettled(t *testing.T, base procState, timeout time.Duration, checks ...settleCheck) procState {
	t.Helper()
	var st procState
	var failed []string
	if wait.For(timeout, func() bool {
		st, failed = takeProcState(), nil
		for _, c := range checks {
			if !c.ok(st) {
				failed = append(failed, c.what)
			}
		}
		return len(failed) == 0
	}) {
		return st
	}
	var extra []string
	for fd, target := range st.fds {
		if base.fds[fd] != target {
			extra = append(extra, fmt.Sprintf("%d -> %s", fd, target))
		}
	}
	sort.Strings(extra)
	t.Fatalf("not settled within %v: %s\nbaseline: %s\nnow: %s\nfds not in the baseline:\n%s\ngoroutines running boshd code:\n%s",
		timeout, strings.Join(failed, "; "), base, st, strings.Join(extra, "\n"), strings.Join(boshdStacks(), "\n\n"))
	return st
}

// restart starts Prosody again with the same configuration, data and
// port, after it was killed. A new listener on the port can be refused
// briefly while the kernel still holds the old one; restart then tries
// again, up to prosodyStartTimeout in all.
func (p *prosody) restart(t *testing.T) {
	t.Helper()
	if p.Running() {
		t.Fatal("prosody restart: it is still running")
	}
	bin := prosodyBinary()
	deadline := time.Now().Add(prosodyStartTimeout)
	for attempt := 1; ; attempt++ {
		if err := p.start(bin); err != nil {
			t.Fatalf("prosody restart: %v", err)
		}
		err := p.waitReady(time.Until(deadline))
		if err == nil {
			return
		}
		p.Kill()
		if time.Now().After(deadline) || attempt == 10 {
			p.dumpLog()
			t.Fatalf("prosody did not restart on %s: %v", p.Addr, err)
		}
		t.Logf("prosody restart attempt %d on %s: %v", attempt, p.Addr, err)
	}
}

// watcher is a direct XMPP client stream to Prosody (not through boshd),
// logged in and available, that collects what it receives.
type watcher struct {
	t   *testing.T
	x   *xmppConn
	jid string
	in  chan *Element
	err chan error
}

// startWatcher logs user in to p directly with resource and sends initial
// presence. timeout bounds that, and then each Send; it reads until the
// test ends (its cleanup closes the connection), however long the test
// waits before using it (a browser test waits for a browser slot: once
// the 3 minutes of a whole-connection deadline ran out before the
// scenario began).
func startWatcher(t *testing.T, p *prosody, user, resource string, timeout time.Duration) *watcher {
	t.Helper()
	x, err := dialXMPP(p.Addr, timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	if _, err := x.OpenStream(p.Domain); err != nil {
		t.Fatalf("watcher: %v", err)
	}
	if _, err := x.AuthPlain(p.Domain, user, p.Passwords[user]); err != nil {
		t.Fatalf("watcher: %v", err)
	}
	if err := x.Send(fmt.Sprintf("<iq type='set' id='bind'><bind xmlns='%s'><resource>%s</resource></bind></iq>", nsBind, resource)); err != nil {
		t.Fatal(err)
	}
	for {
		el, err := x.Next()
		if err != nil {
			t.Fatalf("watcher bind: %v", err)
		}
		if el.Is(nsClient, "iq") && el.Attr("id") == "bind" {
			if el.Attr("type") != "result" {
				t.Fatalf("watcher bind: %s", el)
			}
			break
		}
	}
	w := &watcher{t: t, x: x, jid: user + "@" + p.Domain + "/" + resource, in: make(chan *Element, 1000), err: make(chan error, 1)}
	if err := x.Send("<presence/>"); err != nil {
		t.Fatal(err)
	}
	_ = x.conn.SetDeadline(time.Time{})
	x.writeTimeout = timeout
	go func() {
		for {
			el, err := x.Next()
			if err != nil {
				w.err <- err
				return
			}
			w.in <- el
		}
	}()
	return w
}

// Send writes raw XML to the watcher's stream.
func (w *watcher) Send(s string) {
	w.t.Helper()
	if err := w.x.Send(s); err != nil {
		w.t.Fatalf("watcher: %v", err)
	}
}

// WaitFor returns the first element received that matches, dropping the
// ones before it, within timeout.
func (w *watcher) WaitFor(what string, timeout time.Duration, match func(*Element) bool) *Element {
	w.t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case el := <-w.in:
			if match(el) {
				return el
			}
		case err := <-w.err:
			w.t.Fatalf("watcher: waiting for %s: %v", what, err)
		case <-timer.C:
			w.t.Fatalf("watcher: no %s within %v", what, timeout)
		}
	}
}

// rawHTTP is one HTTP/1.1 request written by hand on its own connection,
// so that a test can leave in the middle of it.
type rawHTTP struct {
	conn net.Conn
	resp chan string // the raw response, or "" if the connection ended first
}

// postRaw opens a connection to the server of url and writes a POST of
// body, or of its first cut bytes if cut is below len(body) (the
// Content-Length still announces the whole body). It reads the response
// in the background.
func postRaw(t *testing.T, url, body string, cut int) *rawHTTP {
	t.Helper()
	rest, ok := strings.CutPrefix(url, "http://")
	if !ok {
		t.Fatalf("postRaw: %s is not http://", url)
	}
	host, path, _ := strings.Cut(rest, "/")
	conn, err := net.DialTimeout("tcp", host, eventTimeout)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(2 * eventTimeout))
	data := body
	if cut < len(body) {
		data = body[:cut]
	}
	req := fmt.Sprintf("POST /%s HTTP/1.1\r\nHost: %s\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: %d\r\n\r\n%s", path, host, len(body), data)
	if _, err := io.WriteString(conn, req); err != nil {
		conn.Close()
		t.Fatal(err)
	}
	r := &rawHTTP{conn: conn, resp: make(chan string, 1)}
	go func() {
		_, b, _ := readAll(http.ReadResponse(bufio.NewReader(conn), nil))
		r.resp <- string(b) // "" if no response came
	}()
	return r
}

// Vanish closes the connection without waiting for the response, and
// waits for the background reader to stop. It fails t if the response had
// already come.
func (r *rawHTTP) Vanish(t *testing.T) {
	t.Helper()
	r.conn.Close()
	if got := <-r.resp; got != "" {
		t.Fatalf("the request was answered before its client vanished: %s", got)
	}
}

// addUsers registers n more accounts in p (running or not), named
// prefix1...prefixN, and returns their names. Prosody reads account files
// when a user authenticates, so they can log in at once. Tests use them
// where the four testUsers do not suffice: two resources of one user see
// each other's presence, which answers held requests.
func addUsers(t *testing.T, p *prosody, prefix string, n int) []string {
	t.Helper()
	var users []string
	for i := 1; i <= n; i++ {
		user := fmt.Sprintf("%s%d", prefix, i)
		password := randomToken(12)
		if err := writeProsodyAccount(filepath.Join(p.Dir, "data"), p.Domain, user, password); err != nil {
			t.Fatalf("prosody: registering %s: %v", user, err)
		}
		p.Passwords[user] = password
		users = append(users, user)
	}
	return users
}
