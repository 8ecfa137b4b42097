package handoff

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// The environment variables a child is started with, which also tell it
// that it is one. Neither names a configuration key (config/load reads
// only BOSHD_* names that do).
const (
	// EnvFDs lists the inherited descriptors, comma-separated: the
	// pair's end as pair=FD, and each listening socket as KEY=FD@ADDR,
	// KEY being the configuration key it was opened for and ADDR that
	// key's value in the parent's configuration.
	EnvFDs = "BOSHD_HANDOFF_FDS"
	// EnvSocket is the path of the parent's handoff socket, a Unix
	// stream socket in a private directory where it serves the requests
	// its successor forwards to it (bosh.Handler.HandoffHandler).
	EnvSocket = "BOSHD_HANDOFF_SOCKET"
)

// pairKey names the pair's end in EnvFDs.
const pairKey = "pair"

// fdList is what EnvFDs says.
type fdList struct {
	pair      int
	listeners map[string]fdAddr // by configuration key
}

type fdAddr struct {
	fd   int
	addr string
}

// format returns l as EnvFDs's value.
func (l fdList) format(order []string) string {
	var b strings.Builder
	b.WriteString(pairKey + "=" + strconv.Itoa(l.pair))
	for _, key := range order {
		la := l.listeners[key]
		fmt.Fprintf(&b, ",%s=%d@%s", key, la.fd, la.addr)
	}
	return b.String()
}

// parseFDs reads EnvFDs's value.
func parseFDs(s string) (fdList, error) {
	l := fdList{pair: -1, listeners: make(map[string]fdAddr)}
	for _, item := range strings.Split(s, ",") {
		key, rest, ok := strings.Cut(item, "=")
		if !ok || key == "" {
			return l, fmt.Errorf("%s: %q is not KEY=FD", EnvFDs, item)
		}
		fdText, addr, hasAddr := strings.Cut(rest, "@")
		fd, err := strconv.Atoi(fdText)
		if err != nil || fd < 3 {
			return l, fmt.Errorf("%s: %q: not a descriptor above 2", EnvFDs, item)
		}
		if key == pairKey {
			if hasAddr || l.pair >= 0 {
				return l, fmt.Errorf("%s: %q: one pair=FD, without an address", EnvFDs, item)
			}
			l.pair = fd
			continue
		}
		if _, _, err := net.SplitHostPort(addr); !hasAddr || err != nil {
			return l, fmt.Errorf("%s: %q: want KEY=FD@HOST:PORT", EnvFDs, item)
		}
		if _, dup := l.listeners[key]; dup {
			return l, fmt.Errorf("%s: %s twice", EnvFDs, key)
		}
		l.listeners[key] = fdAddr{fd, addr}
	}
	if l.pair < 0 {
		return l, fmt.Errorf("%s: no pair=FD", EnvFDs)
	}
	return l, nil
}

// withoutHandoff returns environ without the variables of a handoff, as
// a process that was once a child passes its environment on.
func withoutHandoff(environ []string) []string {
	out := make([]string, 0, len(environ)+2)
	for _, kv := range environ {
		if strings.HasPrefix(kv, EnvFDs+"=") || strings.HasPrefix(kv, EnvSocket+"=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}
