package bosh

import (
	"bytes"
	"compress/gzip"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/boshd/boshd/gateway"
	"github.com/boshd/boshd/session"
)

// This file holds the HTTP side of the binding that is not BOSH itself:
// content encodings (XEP-0124 §5, §7.2), CORS (docs/CONFORMANCE.md#cors), the redirect of
// plaintext requests for sessions made over TLS (XEP-0124 §19.1) and the recovery
// of panics (internal-server-error).

// gzipThreshold is the size above which a response body is compressed
// when the client accepts gzip; smaller bodies (empty responses, most
// single stanzas) gain nothing worth the CPU and the gzip framing.
const gzipThreshold = 256

// responseWriter is the http.ResponseWriter the handler works with: it
// remembers whether the client accepts gzip, whether a response was
// started, and which session the request named, for recovering a panic.
type responseWriter struct {
	http.ResponseWriter
	gzip   bool // the request's Accept-Encoding allows gzip
	wrote  bool // WriteHeader or Write was called
	parked bool // the request was parked: its own goroutine answers it

	// session and rid are the live session the request named and its
	// rid, once known.
	session *session.Session
	rid     uint64

	// outcome and size describe the response for metrics: see
	// setOutcome; size is the body's length before compression.
	outcome string
	size    int
	in      int // the request body's length, decompressed

	// entered is the session the request entered
	// (session.Session.Enter), until leave.
	entered *session.Session
}

// leave lets the session the request entered be moved: the request is
// in it, held or answered. It may be called more than once.
func (w *responseWriter) leave() {
	if w.entered != nil {
		w.entered.Leave()
		w.entered = nil
	}
}

// setOutcome records how a request ended, for metrics: "refused",
// "terminate", "error", or "ok" when left unset.
func setOutcome(w http.ResponseWriter, outcome string) {
	if rw, ok := w.(*responseWriter); ok {
		rw.outcome = outcome
	}
}

// responseOutcome is the outcome of a session's response.
func responseOutcome(resp *session.Response) string {
	if resp.Type == "" {
		return "ok"
	}
	return resp.Type
}

func (w *responseWriter) WriteHeader(status int) {
	w.wrote = true
	w.ResponseWriter.WriteHeader(status)
}

func (w *responseWriter) Write(p []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// acceptsGzip reports whether Accept-Encoding header values allow a gzip
// response (RFC 9110 §12.5.3): gzip (or x-gzip), else *, listed with a
// q-value above zero. A missing header, or gzip;q=0, means no (XEP-0124 §5).
func acceptsGzip(values []string) bool {
	gzipQ, anyQ := -1.0, -1.0
	for _, v := range values {
		for item := range strings.SplitSeq(v, ",") {
			name, params, _ := strings.Cut(item, ";")
			q := 1.0
			for param := range strings.SplitSeq(params, ";") {
				k, val, ok := strings.Cut(param, "=")
				if !ok || !strings.EqualFold(strings.TrimSpace(k), "q") {
					continue
				}
				f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
				if err != nil || !(f >= 0 && f <= 1) {
					f = 0 // a bad weight is no permission
				}
				q = f
			}
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "gzip", "x-gzip":
				gzipQ = max(gzipQ, q)
			case "*":
				anyQ = max(anyQ, q)
			}
		}
	}
	if gzipQ >= 0 {
		return gzipQ > 0
	}
	return anyQ > 0
}

// gzipWriters holds gzip writers at gzip.BestSpeed. Responses are small
// XML batches: for four chat messages (BenchmarkCompress) BestSpeed takes
// 6.0 µs and gives 188 bytes, where the default level, reset before and
// after each use as it was, took 16.9 µs for 180 bytes: resetting a
// default-level writer clears its hash tables. A writer is now reset
// once per use, when taken.
var gzipWriters = sync.Pool{New: func() any {
	zw, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed) // the level is valid
	return zw
}}

// compress returns data gzipped, or nil if that would not make it smaller.
func compress(data []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(data) / 2)
	zw := gzipWriters.Get().(*gzip.Writer)
	zw.Reset(&buf)
	zw.Write(data)
	err := zw.Close()
	gzipWriters.Put(zw) // holding &buf until reused: the caller has its bytes anyway
	if err != nil || buf.Len() >= len(data) {
		return nil
	}
	return buf.Bytes()
}

// wantsGzip reports whether the response to w may be compressed.
func wantsGzip(w http.ResponseWriter) bool {
	rw, ok := w.(*responseWriter)
	return ok && rw.gzip
}

// addVary adds name to the Vary header unless it is there.
func addVary(h http.Header, name string) {
	for _, v := range h.Values("Vary") {
		for item := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(item), name) {
				return
			}
		}
	}
	h.Add("Vary", name)
}

// errBodyTooLarge refuses a request whose body, decompressed, is over
// max_body_size (docs/CONFORMANCE.md#limits).
var errBodyTooLarge = &requestError{cond: session.PolicyViolation, msg: "body too large"}

// readBody reads the request body, decompressing it if it came with
// Content-Encoding: gzip (XEP-0124 §7.2). Both the body as sent and the body
// decompressed are bounded by limit, so a gzip bomb is refused after
// limit bytes and never held in memory. It returns a *requestError for a
// request to refuse (too large: policy-violation; another encoding or
// broken gzip: bad-request), and any other error when the client went
// away.
//
// The body is read into buf, which it grows as needed; the result does
// not outlive the request (see buffers).
func readBody(w http.ResponseWriter, r *http.Request, limit int64, buf []byte) ([]byte, error) {
	var src io.Reader = http.MaxBytesReader(w, r.Body, limit)
	encodings := r.Header.Values("Content-Encoding")
	if len(encodings) > 1 {
		return nil, badRequest("more than one Content-Encoding")
	}
	compressed := false
	switch enc := strings.ToLower(strings.TrimSpace(strings.Join(encodings, ""))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(src)
		if err != nil {
			return nil, bodyError(err, true)
		}
		defer zr.Close()
		src = io.LimitReader(zr, limit+1)
		compressed = true
	default:
		return nil, badRequest("unsupported Content-Encoding %q", enc)
	}
	data, err := readAll(src, buf[:0])
	if err != nil {
		return nil, bodyError(err, compressed)
	}
	if int64(len(data)) > limit {
		return nil, errBodyTooLarge
	}
	return data, nil
}

// readAll is io.ReadAll appending to b.
func readAll(r io.Reader, b []byte) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = slices.Grow(b, max(512, cap(b)))
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// bodyError classifies an error reading a request body.
func bodyError(err error, compressed bool) error {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return errBodyTooLarge
	case compressed:
		// Broken gzip, or the client went away mid-body: either way
		// there is nothing to process.
		return badRequest("bad gzip body: %v", err)
	}
	return err
}

// corsSafeHeaders are the request headers, besides Content-Type, a
// preflight may ask for and be granted.
var corsSafeHeaders = map[string]string{
	"accept":           "Accept",
	"accept-language":  "Accept-Language",
	"content-language": "Content-Language",
	"content-encoding": "Content-Encoding",
	"x-requested-with": "X-Requested-With",
}

// setCORSHeaders sets the CORS headers of the response to r under the
// cors_origins c (docs/CONFORMANCE.md#cors), and reports whether r's
// origin is allowed. A request from another origin gets none: the browser
// then hides the response from the page, but the request is served as
// usual, since CORS binds browsers, not boshd.
func setCORSHeaders(c *gateway.CORS, h http.Header, r *http.Request) bool {
	if !c.Enabled() {
		return false
	}
	addVary(h, "Origin")
	origin := r.Header.Get("Origin")
	switch {
	case origin == "":
		return false
	case c.Lists(origin):
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Credentials", "true")
	case c.Any():
		h.Set("Access-Control-Allow-Origin", "*")
	default:
		return false
	}
	return true
}

// preflight sets the headers answering a CORS preflight request r under
// the cors_origins c.
func preflight(c *gateway.CORS, h http.Header, r *http.Request) {
	if !setCORSHeaders(c, h, r) {
		return
	}
	allowed := []string{"Content-Type"}
	for _, v := range r.Header.Values("Access-Control-Request-Headers") {
		for name := range strings.SplitSeq(v, ",") {
			canon, ok := corsSafeHeaders[strings.ToLower(strings.TrimSpace(name))]
			if ok && !slices.Contains(allowed, canon) {
				allowed = append(allowed, canon)
			}
		}
	}
	h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
	h.Set("Access-Control-Allow-Headers", strings.Join(allowed, ", "))
	h.Set("Access-Control-Max-Age", "86400")
}

// seeOtherURI is the answer to a plaintext request for a session created
// over TLS (XEP-0124 §19.1): terminate with see-other-uri and the https URI of
// the same endpoint. The port of the Host header is dropped: it is the
// plaintext port, and the https one cannot be known.
func seeOtherURI(r *http.Request) *session.Response {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
		if strings.Contains(h, ":") {
			host = "[" + h + "]"
		}
	}
	var uri bytes.Buffer
	uri.WriteString("<uri>")
	xml.EscapeText(&uri, []byte("https://"+host+r.URL.EscapedPath()))
	uri.WriteString("</uri>")
	return &session.Response{Type: session.TypeTerminate, Condition: session.SeeOtherURI, Payload: [][]byte{uri.Bytes()}}
}

// recoverPanic, deferred by ServeHTTP, turns a panic in handling a request
// into an internal-server-error for the client (XEP-0124 §17.2), ending the
// session the request named, and keeps the server running.
func (h *Handler) recoverPanic(w *responseWriter, r *http.Request) {
	v := recover()
	if v == nil {
		return
	}
	if v == http.ErrAbortHandler {
		panic(v)
	}
	h.log.Error("panic serving a request", "panic", v, "remote", r.RemoteAddr, "stack", string(debug.Stack()))
	resp := &session.Response{Type: session.TypeTerminate, Condition: session.InternalServerError}
	status, content := http.StatusOK, defaultContentType
	if s := w.session; s != nil {
		resp = s.Fail(w.rid, session.InternalServerError)
		status, content = h.status(s, resp), s.Params.ContentType
	}
	if !w.wrote {
		writeResponse(w, status, content, resp)
	}
}
