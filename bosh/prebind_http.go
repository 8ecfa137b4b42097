package bosh

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxPrebindBody bounds the body of a /prebind request.
const maxPrebindBody = 64 << 10

// PrebindHandler returns the HTTP endpoint of Prebind, for a web
// application's backend, never a browser: it answers POST requests
// carrying "Authorization: Bearer TOKEN", where TOKEN is what token
// returns at the time (compared in constant time; a nil or empty token
// refuses every request), and a JSON object:
//
//	{"jid": "alice@example.org", "resource": "web", "password": "…",
//	 "mechanism": "SCRAM-SHA-1", "client_ip": "192.0.2.7"}
//
// with "token" in place of "password" for a token the XMPP server takes
// as a password; only jid and one of password and token are required, and
// unknown fields are refused. client_ip, if absent, is the caller's
// address. The answer is {"jid": full JID, "sid": …, "rid": the rid of
// the browser's first request, "wait": seconds}, its numbers as JSON
// strings, as Converse.js's prebind_url expects; an error is {"error":
// message, "field": the request field at fault, if one is} with the
// status of the PrebindError, 401 for a missing or wrong bearer token
// (nothing dialled), 413 for a body over 64 KiB.
//
// Neither passwords nor tokens are logged.
func (h *Handler) PrebindHandler(token func() []byte) http.Handler {
	return &prebindEndpoint{h: h, token: token}
}

// prebindEndpoint is the handler PrebindHandler returns.
type prebindEndpoint struct {
	h     *Handler      // immutable
	token func() []byte // immutable; safe for concurrent use
}

// prebindIn is the JSON request of /prebind. Password and Token are
// pointers so that an empty one is told from an absent one.
type prebindIn struct {
	JID       string  `json:"jid"`
	Resource  string  `json:"resource"`
	Password  *string `json:"password"`
	Token     *string `json:"token"`
	Mechanism string  `json:"mechanism"`
	ClientIP  string  `json:"client_ip"`
}

// prebindOut is the JSON answer of /prebind.
type prebindOut struct {
	JID  string `json:"jid"`
	SID  string `json:"sid"`
	RID  string `json:"rid"`
	Wait string `json:"wait"`
}

// prebindErrorOut is the JSON answer of a refused /prebind request.
type prebindErrorOut struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

func (e *prebindEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		e.refuse(w, r, &PrebindError{Status: http.StatusMethodNotAllowed, Msg: "POST only"})
		return
	}
	if !e.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="boshd prebind"`)
		e.refuse(w, r, &PrebindError{Status: http.StatusUnauthorized, Msg: "missing or wrong bearer token"})
		return
	}
	req, perr := decodePrebind(w, r)
	if perr != nil {
		e.refuse(w, r, perr)
		return
	}
	if req.ClientIP == "" {
		req.ClientIP, _ = e.h.g.ClientIP(r)
	}
	res, err := e.h.Prebind(r.Context(), req)
	if err != nil {
		var pe *PrebindError
		if !errors.As(err, &pe) {
			pe = &PrebindError{Status: http.StatusInternalServerError, Msg: "internal error", Err: err}
		}
		e.refuse(w, r, pe)
		return
	}
	writeJSON(w, http.StatusOK, prebindOut{
		JID:  res.JID,
		SID:  res.SID,
		RID:  strconv.FormatUint(res.RID, 10),
		Wait: strconv.Itoa(int(res.Wait / time.Second)),
	})
}

// authorized reports whether r carries the bearer token in force.
func (e *prebindEndpoint) authorized(r *http.Request) bool {
	scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	var want []byte
	if e.token != nil {
		want = e.token()
	}
	return tokenMatches([]byte(strings.TrimSpace(got)), want)
}

// tokenMatches reports whether got is want, in a time that tells nothing
// of want: both are hashed first, so that not even want's length shows.
// An empty want matches nothing.
func tokenMatches(got, want []byte) bool {
	if len(want) == 0 {
		return false
	}
	g, w := sha256.Sum256(got), sha256.Sum256(want)
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// decodePrebind reads the JSON request of r.
func decodePrebind(w http.ResponseWriter, r *http.Request) (PrebindRequest, *PrebindError) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxPrebindBody))
	dec.DisallowUnknownFields()
	var in prebindIn
	if err := dec.Decode(&in); err != nil {
		return PrebindRequest{}, jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return PrebindRequest{}, jsonError(err)
		}
		return PrebindRequest{}, &PrebindError{Status: http.StatusBadRequest, Msg: "malformed JSON: more after the object"}
	}
	req := PrebindRequest{JID: in.JID, Resource: in.Resource, Mechanism: in.Mechanism, ClientIP: in.ClientIP}
	switch {
	case in.Password != nil && in.Token != nil:
		return req, badField("token", "give password or token, not both")
	case in.Password != nil:
		req.Password = *in.Password
	case in.Token != nil:
		if *in.Token == "" {
			return req, badField("token", "empty")
		}
		req.Password = *in.Token
	}
	return req, nil
}

// jsonError returns the PrebindError of a JSON decoding error, naming the
// field at fault when there is one. No value of the request is quoted:
// it may be a password.
func jsonError(err error) *PrebindError {
	var (
		mbe *http.MaxBytesError
		se  *json.SyntaxError
		te  *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &mbe):
		return &PrebindError{Status: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("the request body is over %d bytes", mbe.Limit)}
	case errors.As(err, &se):
		return &PrebindError{Status: http.StatusBadRequest, Msg: fmt.Sprintf("malformed JSON at byte %d", se.Offset)}
	case errors.As(err, &te) && te.Field != "":
		return badField(te.Field, "must be a JSON string")
	case errors.As(err, &te):
		return &PrebindError{Status: http.StatusBadRequest, Msg: "the request must be a JSON object"}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return &PrebindError{Status: http.StatusBadRequest, Msg: "malformed JSON: the body ends early"}
	}
	// encoding/json has no type for an unknown field: its message is
	// `json: unknown field "name"`.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if field, err := strconv.Unquote(name); err == nil {
			return badField(field, "unknown field")
		}
	}
	return &PrebindError{Status: http.StatusBadRequest, Msg: "malformed JSON"}
}

// refuse answers r with pe, logging it; a 5xx at warn, the rest at info.
func (e *prebindEndpoint) refuse(w http.ResponseWriter, r *http.Request, pe *PrebindError) {
	level := slog.LevelInfo
	if pe.Status >= 500 {
		level = slog.LevelWarn
	}
	attrs := []any{"status", pe.Status, "peer", r.RemoteAddr}
	if pe.Field != "" {
		attrs = append(attrs, "field", pe.Field)
	}
	e.h.log.Log(r.Context(), level, "prebind refused", append(attrs, "reason", pe.Msg)...)
	writeJSON(w, pe.Status, prebindErrorOut{Error: pe.Msg, Field: pe.Field})
}

// writeJSON writes v as the JSON answer with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
