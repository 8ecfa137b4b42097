package handoff

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// envMode makes the test binary act as a child started by Start: see
// TestMain.
const envMode = "HANDOFF_TEST_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(envMode); mode != "" {
		os.Exit(child(mode))
	}
	os.Exit(m.Run())
}

// child is the test binary as a child, doing what mode says, and returns
// its exit status. Its stdout is a file the test reads.
func child(mode string) int {
	p, err := FromEnv(os.Environ())
	if err != nil || p == nil {
		fmt.Println("FromEnv:", p, err)
		return 10
	}
	switch mode {
	case "fail":
		p.Fail("config: upstreams: bad value")
		return 2
	case "exit":
		return 3
	case "hang":
		time.Sleep(time.Minute)
		return 0
	}
	addr := os.Getenv("HANDOFF_TEST_ADDR") // the address in "our" configuration
	ln, inherited, err := p.Listen("listen", addr)
	if err != nil {
		fmt.Println("Listen:", err)
		return 11
	}
	fmt.Printf("inherited=%v unused=%v socket=%s\n", inherited, p.CloseUnused(), p.Socket())
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "child %d\n", os.Getpid())
			c.Close()
		}
	}()
	if err := p.Ready("/run/child.sock"); err != nil {
		fmt.Println("Ready:", err)
		return 12
	}
	p.Watch(func(s Status) {
		fmt.Printf("status %d %d %d moving=%v\n", s.BOSH, s.WebSocket, s.Exit.Unix(), s.Moving)
	})
	fmt.Println("parent gone")
	return 0
}

// start starts the test binary as a child in mode, handing it ln as
// listen (opened for 127.0.0.1:1 in the parent's configuration) and an
// unused admin_listen, and returns it and the file its stdout goes to.
func start(t *testing.T, mode string, ln net.Listener, childAddr string) (*Child, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "stdout")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	other, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c, err := Start(Options{
		Path: self,
		Args: []string{"-test.run=^$"},
		Env:  append(os.Environ(), envMode+"="+mode, "HANDOFF_TEST_ADDR="+childAddr, EnvFDs+"=pair=99"),
		Listeners: []Listener{
			{Key: "listen", Addr: ln.Addr().String(), L: ln},
			{Key: "admin_listen", Addr: other.Addr().String(), L: other},
		},
		Socket: "/run/parent.sock",
		Stdout: f, Stderr: os.Stderr,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Kill)
	return c, out
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestHandOver: the child takes the listening socket over and serves it
// once the parent has closed its copy, hears the parent's status, and
// sees the parent gone.
func TestHandOver(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	c, out := start(t, "serve", ln, addr)
	socket, err := c.WaitReady(context.Background(), 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if socket != "/run/child.sock" {
		t.Errorf("WaitReady: socket %q, want the child's /run/child.sock", socket)
	}
	ln.Close() // the parent stops accepting; the queue is the child's
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	got, _ := io.ReadAll(conn)
	conn.Close()
	if want := fmt.Sprintf("child %d\n", c.Pid()); string(got) != want {
		t.Errorf("the listening socket answered %q, want %q", got, want)
	}
	exit := time.Unix(1_800_000_000, 0)
	// A parent of an older version says no "moving": not moving.
	if _, err := c.pair.Write(Status{BOSH: 9, Exit: exit}.encode()); err != nil {
		t.Fatal(err)
	}
	for _, s := range []Status{
		{BOSH: 8, WebSocket: 3, Exit: exit, Moving: true},
		{BOSH: 7, WebSocket: 2, Exit: exit},
	} {
		if err := c.SendStatus(s); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	select {
	case <-c.Exited():
	case <-time.After(10 * time.Second):
		t.Fatal("the child did not exit once the parent closed the pair")
	}
	if c.err != nil {
		t.Errorf("child: %v\n%s", c.err, readFile(t, out))
	}
	want := "inherited=true unused=[admin_listen] socket=/run/parent.sock\n" +
		"status 9 0 1800000000 moving=false\nstatus 8 3 1800000000 moving=true\nstatus 7 2 1800000000 moving=false\nparent gone\n"
	if got := readFile(t, out); got != want {
		t.Errorf("the child said:\n%s\nwant:\n%s", got, want)
	}
}

// TestAddressChanged: a key whose value changed in the child's
// configuration gets a socket of its own, and the inherited one is closed.
func TestAddressChanged(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, out := start(t, "serve", ln, "127.0.0.1:0")
	if _, err := c.WaitReady(context.Background(), 20*time.Second); err != nil {
		t.Fatal(err)
	}
	c.Close()
	<-c.Exited()
	if got := readFile(t, out); !strings.HasPrefix(got, "inherited=false ") {
		t.Errorf("the child said %q, want inherited=false", got)
	}
}

// TestNotReady: a child that fails, exits or is late is killed and
// reaped, and the error says why.
func TestNotReady(t *testing.T) {
	for _, tc := range []struct {
		mode    string
		timeout time.Duration
		want    string
	}{
		{"fail", 20 * time.Second, "config: upstreams: bad value"},
		{"exit", 20 * time.Second, "exited (exit status 3)"},
		{"hang", 500 * time.Millisecond, "not ready within 500ms"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			c, _ := start(t, tc.mode, ln, ln.Addr().String())
			_, err = c.WaitReady(context.Background(), tc.timeout)
			if !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("WaitReady: %v, want ErrNotReady saying %q", err, tc.want)
			}
			select {
			case <-c.Exited():
			default:
				t.Error("WaitReady returned with the child not reaped")
			}
		})
	}
}

func TestParseFDs(t *testing.T) {
	for _, tc := range []struct {
		in, err string
	}{
		{"pair=3,listen=4@127.0.0.1:5280,admin_listen=5@[::1]:5281", ""},
		{"listen=4@127.0.0.1:5280", "no pair=FD"},
		{"pair=3,pair=4", "one pair=FD"},
		{"pair=2", "above 2"},
		{"pair=3,listen=4", "KEY=FD@HOST:PORT"},
		{"pair=3,listen=4@a:1,listen=5@a:1", "listen twice"},
		{"pair=3,=4@a:1", "not KEY=FD"},
	} {
		l, err := parseFDs(tc.in)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("parseFDs(%q): %v", tc.in, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("parseFDs(%q): %v, want an error saying %q", tc.in, err, tc.err)
		case tc.err == "":
			if got := l.format([]string{"listen", "admin_listen"}); got != tc.in {
				t.Errorf("parseFDs(%q) formats back as %q", tc.in, got)
			}
		}
	}
}

func TestFromEnvNone(t *testing.T) {
	p, err := FromEnv([]string{"HOME=/", EnvSocket + "=/x"})
	if p != nil || err != nil {
		t.Errorf("FromEnv without %s: %v, %v; want nil, nil", EnvFDs, p, err)
	}
}

func TestListenSocket(t *testing.T) {
	s, err := ListenSocket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Dir(s.Path()))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("the socket's directory has mode %v, want 0700", fi.Mode().Perm())
	}
	s.Close()
	if _, err := os.Stat(filepath.Dir(s.Path())); !os.IsNotExist(err) {
		t.Errorf("Close left the directory: %v", err)
	}
}

// TestParentListenerUnchanged checks that handing a listener over leaves
// the parent's in non-blocking mode: it goes on accepting, and closing it
// ends an Accept under way at once (a socket turned blocking would leave
// Accept in the kernel, and Close waiting for it, for ever).
func TestParentListenerUnchanged(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, _ := start(t, "hang", ln, ln.Addr().String())
	defer c.Kill()
	accepted := make(chan error, 2)
	go func() {
		for {
			conn, err := ln.Accept()
			accepted <- err
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	select {
	case err := <-accepted:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the parent's listener accepted nothing")
	}
	time.Sleep(50 * time.Millisecond) // Accept called again
	closed := make(chan struct{})
	go func() {
		ln.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("closing the parent's listener hangs: its socket was put in blocking mode")
	}
}

// TestTakeBack: the parent keeps copies of the sockets it handed over;
// once the child is killed (kill -9) after the hand-over, a connection
// made meanwhile is queued on the socket, not refused, and the parent
// accepts it, and later ones, on the copy it takes back.
func TestTakeBack(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	spares, err := Keep([]Listener{{Key: "listen", Addr: addr, L: ln}})
	if err != nil {
		t.Fatal(err)
	}
	defer spares.Close()
	c, _ := start(t, "serve", ln, addr)
	if _, err := c.WaitReady(context.Background(), 20*time.Second); err != nil {
		t.Fatal(err)
	}
	ln.Close()
	read := func(conn net.Conn) string {
		t.Helper()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		got, _ := io.ReadAll(conn)
		conn.Close()
		return string(got)
	}
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := read(conn), fmt.Sprintf("child %d\n", c.Pid()); got != want {
		t.Fatalf("before the kill the socket answered %q, want %q", got, want)
	}

	c.Kill()
	queued, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("a connection after the child died was refused: %v", err)
	}
	ls, err := spares.Take()
	if err != nil || len(ls) != 1 || ls[0].Key != "listen" || ls[0].Addr != addr {
		t.Fatalf("Take: %v, %v", ls, err)
	}
	back := ls[0].L
	defer back.Close()
	go func() {
		for {
			c, err := back.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(c, "parent")
			c.Close()
		}
	}()
	if got := read(queued); got != "parent\n" {
		t.Errorf("the connection queued while no one accepted got %q, want the parent's answer", got)
	}
	conn, err = net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := read(conn); got != "parent\n" {
		t.Errorf("a new connection got %q, want the parent's answer", got)
	}
	if again, err := spares.Take(); err != nil || len(again) != 0 {
		t.Errorf("a second Take: %v, %v; want nothing", again, err)
	}
}
