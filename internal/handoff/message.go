package handoff

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The messages of the pair, one per SOCK_SEQPACKET record, as text: a
// verb and its fields, separated by spaces.
//
//	child → parent: "ready SOCKET"  (the child's own handoff socket)
//	child → parent: "failed REASON"
//	parent → child: "moving 1|0"  (whether the parent is still moving
//	                sessions to the child), then
//	parent → child: "status BOSH WEBSOCKET EXIT" (sessions the parent
//	                still serves, and when it exits, in Unix nanoseconds)
//
// A verb a process does not know is ignored, so that processes of two
// versions hand over: "moving" came after "status", which stayed as it
// was for that reason.
const (
	verbReady  = "ready"
	verbFailed = "failed"
	verbMoving = "moving"
	verbStatus = "status"
)

// maxMessage bounds a message; a reason is cut to fit.
const maxMessage = 4096

// Status is what a parent tells its child after the hand-off.
type Status struct {
	// BOSH and WebSocket are the sessions the parent still serves,
	// its own predecessors' included.
	BOSH, WebSocket int
	// Exit is when the parent exits at the latest: its
	// upgrade_drain_timeout from the hand-off.
	Exit time.Time
	// Moving is set while the parent is still moving sessions to the
	// child. A parent too old to say is taken as not moving.
	Moving bool
}

func (s Status) encode() []byte {
	return []byte(fmt.Sprintf("%s %d %d %d", verbStatus, s.BOSH, s.WebSocket, s.Exit.UnixNano()))
}

func (s Status) encodeMoving() []byte {
	if s.Moving {
		return []byte(verbMoving + " 1")
	}
	return []byte(verbMoving + " 0")
}

func decodeStatus(fields []string) (Status, error) {
	if len(fields) != 3 {
		return Status{}, fmt.Errorf("status: want 3 fields, got %d", len(fields))
	}
	var n [3]int64
	for i, f := range fields {
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil || v < 0 {
			return Status{}, fmt.Errorf("status: field %d: %q", i+1, f)
		}
		n[i] = v
	}
	return Status{BOSH: int(n[0]), WebSocket: int(n[1]), Exit: time.Unix(0, n[2])}, nil
}

// splitMessage returns a message's verb and the rest.
func splitMessage(b []byte) (verb, rest string) {
	verb, rest, _ = strings.Cut(string(b), " ")
	return verb, rest
}

// failedMessage returns the message of a failure, reason cut to fit.
func failedMessage(reason string) []byte {
	m := verbFailed + " " + reason
	if len(m) > maxMessage {
		m = m[:maxMessage]
	}
	return []byte(m)
}
