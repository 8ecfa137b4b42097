package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
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
	// proxyDialTimeout bounds how long cutProxy keeps trying to reach its
	// target for one connection (boshd restarting).
	proxyDialTimeout = 30 * time.Second
)

// cutProxy forwards TCP connections from the browser to a WebSocket
// endpoint, and lets a test cut every connection open at once (the
// client's network gone) and hold new ones back until it releases them,
// as a listening socket handed from one boshd process to the next
// (systemd socket activation) does while boshd restarts: the client's
// reconnection waits instead of failing.
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

// forward waits while the proxy is held, dials the target (again and
// again for up to proxyDialTimeout: boshd may be restarting) and copies
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
	var up net.Conn
	deadline := time.Now().Add(proxyDialTimeout)
	for {
		var err error
		if up, err = net.DialTimeout("tcp", p.target, time.Second); err == nil {
			break
		}
		select {
		case <-p.done:
			down.Close()
			return
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			down.Close()
			return
		}
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
