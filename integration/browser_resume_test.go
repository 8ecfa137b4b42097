package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/boshd/boshd/internal/wait"
)

// Converse.js resuming its stream (XEP-0198) after its WebSocket is lost,
// issue 16 point 4: run.mjs's scenario converse-resume, with bob a Go
// client logged in to Prosody directly.

const (
	// resumeMessages is how many numbered messages bob sends while alice
	// is away.
	resumeMessages = 20
	// resumePrefix starts each of them: resumePrefix + N.
	resumePrefix = "while away "
)

// cutProxy forwards TCP connections from the browser to a WebSocket
// endpoint, and lets a test cut every connection open at once (the
// client's network gone) and hold new ones back until it releases them,
// so that the client stays away while the test acts: its reconnection
// waits, accepted, instead of failing.
type cutProxy struct {
	Addr   string
	target string
	ln     net.Listener
	done   chan struct{} // closed by Close

	mu    sync.Mutex
	links map[net.Conn]net.Conn // browser side → target side, both open
	gate  chan struct{}         // non-nil while held; closed on release
	wg    sync.WaitGroup
	once  sync.Once
}

// startCutProxy listens on a free port of 127.0.0.1 and forwards to
// target until t's cleanup.
func startCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	p := &cutProxy{Addr: ln.Addr().String(), target: target, ln: ln, done: make(chan struct{}), links: make(map[net.Conn]net.Conn)}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.Close)
	return p
}

// Hold makes new connections wait, accepted but not forwarded, until
// Release.
func (p *cutProxy) Hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gate == nil {
		p.gate = make(chan struct{})
	}
}

// Release forwards the connections held since Hold, and new ones again.
func (p *cutProxy) Release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gate != nil {
		close(p.gate)
		p.gate = nil
	}
}

// Cut resets every connection open now, on both sides (a TCP RST, no
// WebSocket close frame, no FIN), and returns how many there were.
func (p *cutProxy) Cut() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for down, up := range p.links {
		reset(down)
		reset(up)
		delete(p.links, down)
		n++
	}
	return n
}

// reset closes c with an RST.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

// Close stops listening, resets every connection and waits for the
// proxy's goroutines.
func (p *cutProxy) Close() {
	p.once.Do(func() {
		p.ln.Close()
		close(p.done)
		p.Release()
		p.Cut()
	})
	p.wg.Wait()
}

func (p *cutProxy) serve() {
	defer p.wg.Done()
	for {
		down, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.forward(down)
	}
}

// forward waits while the proxy is held, dials the target and copies
// both ways until either side ends.
func (p *cutProxy) forward(down net.Conn) {
	defer p.wg.Done()
	p.mu.Lock()
	gate := p.gate
	p.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-p.done:
			down.Close()
			return
		}
	}
	up, err := net.DialTimeout("tcp", p.target, eventTimeout)
	if err != nil {
		down.Close()
		return
	}
	p.mu.Lock()
	select {
	case <-p.done:
		p.mu.Unlock()
		down.Close()
		up.Close()
		return
	default:
	}
	p.links[down] = up
	p.mu.Unlock()
	var copies sync.WaitGroup
	copies.Add(2)
	pipe := func(dst, src net.Conn) {
		defer copies.Done()
		buf := make([]byte, 16<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		// One side ended: end the other, as a plain TCP path would.
		dst.Close()
		src.Close()
	}
	go pipe(up, down)
	go pipe(down, up)
	copies.Wait()
	p.mu.Lock()
	delete(p.links, down)
	p.mu.Unlock()
}

// pageServer serves the test pages on an origin of their own, and the
// routes under /control/ with which run.mjs asks the test to act in the
// middle of a scenario.
type pageServer struct {
	Origin   string
	BuildDir string
}

// servePages starts a pageServer for t; control maps a name to what
// POST /control/NAME does, answering with its result as JSON (or 500
// with the error).
func servePages(t *testing.T, tools *browserTools, control map[string]func() (any, error)) *pageServer {
	t.Helper()
	ps := &pageServer{BuildDir: filepath.Join(t.TempDir(), "build")}
	if err := os.MkdirAll(ps.BuildDir, 0o755); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	pageRoutes(mux, tools, ps.BuildDir)
	for name, do := range control {
		mux.HandleFunc("POST /control/"+name, func(w http.ResponseWriter, r *http.Request) {
			res, err := do()
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(res)
		})
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	ps.Origin = srv.URL
	return ps
}

// sendNumbered has bob, a Go client logged in to p directly, send alice
// resumeMessages numbered chat messages, then waits until Prosody has
// answered a ping sent after them: it has routed them all.
func sendNumbered(w *watcher, to string, round int) error {
	var b strings.Builder
	for i := range resumeMessages {
		fmt.Fprintf(&b, "<message to='%s' type='chat' id='r%d-%d'><body>%s%d</body></message>", to, round, i, resumePrefix, i)
	}
	ping := fmt.Sprintf("ping-%d", round)
	fmt.Fprintf(&b, "<iq type='get' id='%s' to='%s'><ping xmlns='%s'/></iq>", ping, prosodyDomain, nsPing)
	if err := w.x.Send(b.String()); err != nil {
		return fmt.Errorf("bob sending: %w", err)
	}
	timer := time.NewTimer(eventTimeout)
	defer timer.Stop()
	for {
		select {
		case el := <-w.in:
			if el.Is(nsClient, "iq") && el.Attr("id") == ping {
				return nil
			}
		case err := <-w.err:
			return fmt.Errorf("bob: %w", err)
		case <-timer.C:
			return fmt.Errorf("bob: Prosody did not answer the ping after the messages within %v", eventTimeout)
		}
	}
}

// checkResumed checks converse-resume's result: alice saw the numbered
// messages once each, in order, in the chat and on the wire, still over
// WebSocket.
func checkResumed(t *testing.T, res map[string]any) {
	t.Helper()
	want := make([]any, resumeMessages)
	for i := range want {
		want[i] = float64(i)
	}
	for _, key := range []string{"shown", "wire"} {
		if got, _ := res[key].([]any); !slices.Equal(got, want) {
			t.Errorf("%s: %v, want 0 to %d once each, in order", key, got, resumeMessages-1)
		}
	}
	if res["transport"] != "websocket" {
		t.Errorf("Converse.js went on over %v, want websocket", res["transport"])
	}
	t.Logf("the dropped WebSocket: %v", res["droppedSocket"])
	t.Logf("alice's WebSockets: %v", res["sockets"])
}

// resumeInput is run.mjs's input for converse-resume with the pages at
// ps and the WebSocket at wsURL.
func resumeInput(p *prosody, users map[string]browserUser, ps *pageServer, wsURL string) map[string]any {
	return map[string]any{
		"scenario":   "converse-resume",
		"baseURL":    ps.Origin,
		"buildDir":   ps.BuildDir,
		"users":      users,
		"wsURL":      wsURL,
		"controlURL": ps.Origin + "/control",
		"count":      resumeMessages,
		"prefix":     resumePrefix,
	}
}

// TestBrowserConverseResumeProsody is the resumption scenario against
// Prosody's own mod_websocket, the reference: alice's TCP connection is
// cut.
func TestBrowserConverseResumeProsody(t *testing.T) {
	t.Parallel()
	tools := needBrowser(t)
	p := startProsody(t, prosodyOptions{Smacks: true, WebSocket: true})
	users := browserUsers(t, p)
	target := strings.TrimSuffix(strings.TrimPrefix(p.WebSocketURL, "ws://"), "/xmpp-websocket")
	proxy := startCutProxy(t, target)
	bob := startWatcher(t, p, "bob", "go", 3*time.Minute)
	ps := servePages(t, tools, map[string]func() (any, error){
		"away": func() (any, error) {
			proxy.Hold()
			defer proxy.Release()
			cut := proxy.Cut()
			if err := sendNumbered(bob, users["alice"].JID, 0); err != nil {
				return nil, err
			}
			return map[string]any{"cut": cut, "sent": resumeMessages}, nil
		},
	})
	res := runBrowser(t, tools, resumeInput(p, users, ps, "ws://"+proxy.Addr+"/xmpp-websocket"))
	checkResumed(t, res)
}

// resumeStack is what the resumption scenarios run against: Prosody with
// mod_smacks, the boshd binary, cutProxy between Chromium and boshd (if
// the scenario cuts connections), the page server (on an origin of its
// own, which boshd's cors_origins lists) and bob logged in to Prosody
// directly.
type resumeStack struct {
	tools  *browserTools
	p      *prosody
	users  map[string]browserUser
	proxy  *cutProxy // nil without one
	wsURL  string    // where Converse.js connects: the proxy, or boshd
	bob    *watcher
	pages  *pageServer
	args   []string   // boshd's command line
	logs   *logBuffer // what every boshd process of the test logged
	mu     sync.Mutex
	boshd  *process // the running one
	rounds int      // numbered batches bob has sent
}

// startResumeStack starts a resumeStack, with cutProxy if proxied, whose
// page server answers POST /control/away with away(st).
func startResumeStack(t *testing.T, proxied bool, away func(st *resumeStack) (any, error)) *resumeStack {
	t.Helper()
	st := &resumeStack{tools: needBrowser(t), logs: &logBuffer{}}
	st.p = startProsody(t, prosodyOptions{Smacks: true})
	st.users = browserUsers(t, st.p)
	st.bob = startWatcher(t, st.p, "bob", "go", browserRunTimeout)
	st.pages = servePages(t, st.tools, map[string]func() (any, error){"away": func() (any, error) { return away(st) }})
	addr := freeAddr(t)
	st.wsURL = "ws://" + addr + "/xmpp-websocket"
	if proxied {
		st.proxy = startCutProxy(t, addr)
		st.wsURL = "ws://" + st.proxy.Addr + "/xmpp-websocket"
	}
	st.args = []string{"--listen", addr, "--admin-listen", freeAddr(t), "--upstream", st.p.Domain + "=" + st.p.Addr,
		"--upstream-tls", "plaintext", "--cors-origins", st.pages.Origin, "--log-level", "debug"}
	t.Cleanup(func() {
		st.mu.Lock()
		b := st.boshd
		st.mu.Unlock()
		if b != nil {
			b.Kill()
		}
		if t.Failed() {
			t.Logf("boshd log (last %d lines):\n%s", boshdLogTail, st.logs.Tail(boshdLogTail))
		}
	})
	if err := st.startBoshd(); err != nil {
		t.Fatal(err)
	}
	return st
}

// startBoshd starts the boshd binary with st.args and waits until it
// listens. It does not touch t, so that a control route may call it.
func (st *resumeStack) startBoshd() error {
	bin, err := boshdBinary()
	if err != nil {
		return err
	}
	before := countLines(st.logs.String(), "boshd listening")
	cmd := exec.Command(bin, st.args...)
	cmd.Stderr = st.logs
	proc, err := startProcess(cmd)
	if err != nil {
		return err
	}
	st.mu.Lock()
	st.boshd = proc
	st.mu.Unlock()
	listening := func() bool { return countLines(st.logs.String(), "boshd listening") > before }
	if !wait.For(eventTimeout, func() bool { return listening() || !proc.Running() }) || !listening() {
		return fmt.Errorf("boshd did not start within %v (%v):\n%s", eventTimeout, proc.Err(), st.logs.Tail(20))
	}
	return nil
}

// stopBoshd stops the running boshd as its service manager would
// (SIGTERM) and waits for it to exit.
func (st *resumeStack) stopBoshd() error {
	st.mu.Lock()
	b := st.boshd
	st.mu.Unlock()
	b.Signal(syscall.SIGTERM)
	if !b.WaitExit(eventTimeout) {
		b.Kill()
		return fmt.Errorf("boshd still running %v after SIGTERM", eventTimeout)
	}
	if err := b.Err(); err != nil {
		return fmt.Errorf("boshd exited after SIGTERM: %w", err)
	}
	return nil
}

// sendToAlice has bob send alice the next batch of numbered messages.
func (st *resumeStack) sendToAlice() error {
	st.rounds++
	return sendNumbered(st.bob, st.users["alice"].JID, st.rounds)
}

// run plays converse-resume against st.
func (st *resumeStack) run(t *testing.T) map[string]any {
	t.Helper()
	res := runBrowser(t, st.tools, resumeInput(st.p, st.users, st.pages, st.wsURL))
	checkResumed(t, res)
	return res
}

// droppedClose returns the close code the page was told for the
// WebSocket that was taken away.
func droppedClose(res map[string]any) any {
	d, _ := res["droppedSocket"].(map[string]any)
	c, _ := d["close"].(map[string]any)
	return c["code"]
}

// TestBrowserConverseResume is issue 16 point 4 in a browser: Converse.js
// with enable_smacks, logged in as alice over XMPP over WebSocket through
// boshd, loses its connection; bob sends her resumeMessages numbered
// messages meanwhile; Converse.js reconnects, resumes the stream
// (<resume/>, <resumed/>) and shows each message once, in order.
//
// "connection cut": the TCP connection between Chromium and boshd is
// reset (cutProxy); boshd drops the upstream without </stream:stream>, so
// that Prosody keeps the session for resumption.
//
// "boshd restart": boshd gets SIGTERM, closes the WebSocket with 1012 and
// drops the upstream (a resumable session), exits, and is started again
// on the same address. Converse.js reconnects at once, or, refused while
// nothing listens, again about three seconds later.
func TestBrowserConverseResume(t *testing.T) {
	t.Parallel()
	t.Run("connection cut", func(t *testing.T) {
		t.Parallel()
		st := startResumeStack(t, true, func(st *resumeStack) (any, error) {
			st.proxy.Hold()
			defer st.proxy.Release()
			cut := st.proxy.Cut()
			if err := st.sendToAlice(); err != nil {
				return nil, err
			}
			return map[string]any{"cut": cut, "sent": resumeMessages}, nil
		})
		res := st.run(t)
		if code := droppedClose(res); code != float64(1006) {
			t.Errorf("the cut WebSocket closed with %v, want 1006 (no close frame)", code)
		}
		log := st.logs.String()
		if n := countLines(log, `msg="websocket session ended"`, "reason=client_lost"); n != 1 {
			t.Errorf("%d WebSocket sessions ended client_lost, want 1 (the cut one):\n%s", n, grepLines(log, `msg="websocket session ended"`))
		}
		checkBoshdLog(t, log)
	})
	t.Run("boshd restart", func(t *testing.T) {
		t.Parallel()
		st := startResumeStack(t, false, func(st *resumeStack) (any, error) {
			if err := st.stopBoshd(); err != nil {
				return nil, err
			}
			if err := st.sendToAlice(); err != nil {
				return nil, err
			}
			if err := st.startBoshd(); err != nil {
				return nil, err
			}
			return map[string]any{"restarted": true, "sent": resumeMessages}, nil
		})
		res := st.run(t)
		if code := droppedClose(res); code != float64(1012) {
			t.Errorf("boshd's stop closed the WebSocket with %v, want 1012 (service restart)", code)
		}
		log := st.logs.String()
		if n := countLines(log, `msg="websocket session ended"`, "reason=shutdown", "close_code=1012"); n != 1 {
			t.Errorf("%d WebSocket sessions ended by the shutdown with 1012, want 1:\n%s", n, grepLines(log, `msg="websocket session ended"`))
		}
		checkBoshdLog(t, log)
	})
}
