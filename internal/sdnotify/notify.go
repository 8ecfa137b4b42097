package sdnotify

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// EnvSocket is the environment variable systemd names its notify socket
// in: a path, or an abstract socket's name starting with "@".
const EnvSocket = "NOTIFY_SOCKET"

// A Notifier sends notifications to one notify socket. A nil *Notifier
// sends nothing. It is safe for concurrent use: each notification is a
// datagram of its own.
type Notifier struct {
	addr *net.UnixAddr // immutable
}

// FromEnv returns the Notifier of the socket environ (as os.Environ
// returns it) names in NOTIFY_SOCKET, or nil if it names none. The last
// value wins, as in a shell.
func FromEnv(environ []string) *Notifier {
	var path string
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, EnvSocket+"="); ok {
			path = v
		}
	}
	if path == "" {
		return nil
	}
	// Go's Unix addresses name an abstract socket with a leading "@",
	// as systemd does.
	return &Notifier{addr: &net.UnixAddr{Name: path, Net: "unixgram"}}
}

// Notify sends state, one or more "NAME=value" lines, as one datagram.
func (n *Notifier) Notify(state string) error {
	if n == nil {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer c.Close()
	c.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify %s: %w", n.addr.Name, err)
	}
	return nil
}

// Ready tells systemd the service is up (READY=1), ending a start or a
// reload.
func (n *Notifier) Ready() error { return n.Notify("READY=1") }

// Reloading tells systemd a reload has begun (RELOADING=1); Ready or
// MainPID ends it. (MONOTONIC_USEC, which Type=notify-reload asks for,
// is not sent: the unit is Type=notify.)
func (n *Notifier) Reloading() error { return n.Notify("RELOADING=1") }

// MainPID tells systemd that the process pid is now the service's main
// one, and that it is ready: the end of a reload that handed the service
// to a new process, in one datagram, so that systemd never sees the old
// process ready as the main one.
func (n *Notifier) MainPID(pid int) error {
	return n.Notify("MAINPID=" + strconv.Itoa(pid) + "\nREADY=1")
}

// Stopping tells systemd the service is stopping (STOPPING=1).
func (n *Notifier) Stopping() error { return n.Notify("STOPPING=1") }

// Status sends a line for systemctl status to show (STATUS=).
func (n *Notifier) Status(s string) error {
	return n.Notify("STATUS=" + strings.ReplaceAll(s, "\n", " "))
}
