package sdnotify

import (
	"net"
	"path/filepath"
	"testing"
	"time"
)

// listen returns a fake notify socket, as systemd's, in a directory of
// the test's.
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// next reads the next datagram, failing t if none comes within a second.
func next(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	return string(buf[:n])
}

func TestNotify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	abstract := "@boshd-sdnotify-test-" + filepath.Base(t.TempDir())
	for _, socket := range []string{path, abstract} {
		t.Run(socket[:1], func(t *testing.T) {
			c := listen(t, socket)
			n := FromEnv([]string{"HOME=/", EnvSocket + "=/nowhere", EnvSocket + "=" + socket})
			if n == nil {
				t.Fatal("FromEnv: nil with NOTIFY_SOCKET set")
			}
			for _, tc := range []struct {
				name string
				send func() error
				want string
			}{
				{"Ready", n.Ready, "READY=1"},
				{"Reloading", n.Reloading, "RELOADING=1"},
				{"MainPID", func() error { return n.MainPID(4242) }, "MAINPID=4242\nREADY=1"},
				{"Stopping", n.Stopping, "STOPPING=1"},
				{"Status", func() error { return n.Status("serving\n3 sessions") }, "STATUS=serving 3 sessions"},
			} {
				if err := tc.send(); err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				if got := next(t, c); got != tc.want {
					t.Errorf("%s sent %q, want %q", tc.name, got, tc.want)
				}
			}
		})
	}
}

func TestNoSocket(t *testing.T) {
	for _, env := range [][]string{nil, {"HOME=/"}, {EnvSocket + "="}} {
		n := FromEnv(env)
		if n != nil {
			t.Errorf("FromEnv(%q) = %v, want nil", env, n)
		}
		if err := n.Ready(); err != nil {
			t.Errorf("nil Notifier: Ready: %v", err)
		}
	}
}

func TestSocketGone(t *testing.T) {
	n := FromEnv([]string{EnvSocket + "=" + filepath.Join(t.TempDir(), "none")})
	if err := n.Ready(); err == nil {
		t.Error("Ready to a socket that does not exist: no error")
	}
}
