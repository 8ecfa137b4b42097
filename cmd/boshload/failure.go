package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
)

// Phases of a session in which a failure is counted.
const (
	phaseCreate    = "create"    // the creation request
	phaseLogin     = "login"     // SASL, restart, bind
	phaseIdle      = "idle"      // the held long-poll, once established
	phaseTerminate = "terminate" // the type='terminate' request at the end
)

// Kinds of failure.
const (
	kindTerminate = "terminate" // a type='terminate' response; detail is the condition
	kindHTTP      = "http"      // a status other than 200; detail is the code
	kindNetwork   = "network"   // the connection failed; detail names how
	kindProtocol  = "protocol"  // an answer boshload could not use
	kindSASL      = "sasl"      // authentication failed; detail is the condition
)

// failure is why one session stopped before the end of the run.
type failure struct {
	phase, kind, detail string
	err                 error // the underlying error, for examples; may be nil
}

func (f *failure) Error() string {
	if f.err != nil {
		return fmt.Sprintf("%s: %v", f.reason(), f.err)
	}
	return f.reason()
}

func (f *failure) Unwrap() error { return f.err }

// reason is the key failures are counted under.
func (f *failure) reason() string {
	return f.phase + ": " + f.kind + ": " + f.detail
}

// terminateFailure is a type='terminate' response with condition.
func terminateFailure(phase, condition string) *failure {
	if condition == "" {
		condition = "(no condition)"
	}
	return &failure{phase: phase, kind: kindTerminate, detail: condition}
}

// httpFailure is an HTTP status other than 200.
func httpFailure(phase string, status int, body []byte) *failure {
	const max = 200
	if len(body) > max {
		body = body[:max]
	}
	return &failure{phase: phase, kind: kindHTTP, detail: strconv.Itoa(status),
		err: fmt.Errorf("HTTP %d: %q", status, body)}
}

// protocolFailure is an answer that boshload could not use.
func protocolFailure(phase, detail string, err error) *failure {
	return &failure{phase: phase, kind: kindProtocol, detail: detail, err: err}
}

// networkFailure classifies a transport error.
func networkFailure(phase string, err error) *failure {
	return &failure{phase: phase, kind: kindNetwork, detail: netReason(err), err: err}
}

// netReason names the way a request failed in a few words, so that
// failures can be counted by cause.
func netReason(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken pipe"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "address not available (ephemeral ports exhausted?)"
	case errors.Is(err, syscall.EADDRINUSE):
		return "address in use"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "too many open files"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "server closed the connection"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "other"
}
