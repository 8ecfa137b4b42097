package bosh

import (
	"bytes"
	"net/http"
	"slices"
	"strconv"
	"sync"

	"github.com/boshd/boshd/internal/rawxml"
	"github.com/boshd/boshd/session"
)

// defaultContentType is the Content-Type of responses when the client
// named none at creation (XEP-0124 §7.1).
const defaultContentType = "text/xml; charset=utf-8"

// attr is one attribute of a response <body/>.
type attr struct{ name, value string }

// appendBody appends to b the bytes of a response <body/> with attrs and
// the payload of resp. Encoding is a pure function of its arguments, so
// a cached Response is written again byte for byte (XEP-0124 §14.3).
func appendBody(b []byte, resp *session.Response, attrs ...attr) []byte {
	n := 128
	for _, p := range resp.Payload {
		n += len(p)
	}
	b = slices.Grow(b, n)
	b = append(b, "<body xmlns='"+NS+"'"...)
	if declaresStream(resp.Payload) {
		// XEP-0206 §2: features and stream errors need the prefix bound on
		// the body itself.
		b = append(b, " xmlns:stream='"+NSStream+"'"...)
	}
	if resp.Type != "" {
		b = appendAttr(b, "type", resp.Type)
	}
	if resp.Condition != "" {
		b = appendAttr(b, "condition", string(resp.Condition))
	}
	if resp.Stream != "" {
		b = appendAttr(b, "stream", resp.Stream)
	}
	if resp.From != "" {
		// A stream just added (XEP-0124 §16.3).
		b = appendAttr(b, "from", resp.From)
		b = appendAttr(b, "xmlns:xmpp", NSXBOSH)
		b = appendAttr(b, "xmpp:version", "1.0")
	}
	if resp.Ack != 0 {
		b = appendAttr(b, "ack", strconv.FormatUint(resp.Ack, 10))
	}
	if resp.Report != 0 {
		b = appendAttr(b, "report", strconv.FormatUint(resp.Report, 10))
		b = appendAttr(b, "time", strconv.Itoa(resp.Time))
	}
	for _, a := range attrs {
		b = appendAttr(b, a.name, a.value)
	}
	if len(resp.Payload) == 0 {
		return append(b, "/>"...)
	}
	b = append(b, '>')
	for _, p := range resp.Payload {
		b = append(b, p...)
	}
	return append(b, "</body>"...)
}

func declaresStream(payload [][]byte) bool {
	for _, p := range payload {
		if bytes.HasPrefix(p, []byte("<stream:")) {
			return true
		}
	}
	return false
}

func appendAttr(b []byte, name, value string) []byte {
	b = append(b, ' ')
	b = append(b, name...)
	b = append(b, "='"...)
	b = rawxml.AppendAttrValue(b, value)
	return append(b, '\'')
}

// legacyStatus is the HTTP status XEP-0124 §17.1 gives a condition for
// clients that sent no ver at creation (XEP-0124 §17.1); 200 for the rest.
func legacyStatus(cond session.Condition) int {
	switch cond {
	case session.BadRequest:
		return http.StatusBadRequest
	case session.PolicyViolation:
		return http.StatusForbidden
	case session.ItemNotFound:
		return http.StatusNotFound
	}
	return http.StatusOK
}

// buffers holds the byte slices that request bodies are read into and
// responses encoded in, which live only while one request is served:
// reusing them spares the collector two allocations the size of the
// bodies per request.
var buffers = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledBuffer is the largest buffer put back in the pool: a rare big
// body is left to the collector rather than kept for every later request.
const maxPooledBuffer = 64 << 10

func getBuffer() *[]byte { return buffers.Get().(*[]byte) }

// putBuffer puts the slice *bp, grown to b, back in the pool. Nothing may
// use b afterwards.
func putBuffer(bp *[]byte, b []byte) {
	if cap(b) > maxPooledBuffer {
		return
	}
	*bp = b[:0]
	buffers.Put(bp)
}

// writeResponse encodes resp, with attrs, and writes it with writeBody.
func writeResponse(w http.ResponseWriter, status int, contentType string, resp *session.Response, attrs ...attr) {
	bp := getBuffer()
	data := appendBody((*bp)[:0], resp, attrs...)
	writeBody(w, status, contentType, data)
	putBuffer(bp, data)
}

// writeBody writes a whole response: always with Content-Length, never
// chunked (XEP-0124 §5), with the session's Content-Type (XEP-0124 §7.2), and
// gzipped when the client accepts it and data is over gzipThreshold bytes
// (XEP-0124 §5). It does not keep data.
func writeBody(w http.ResponseWriter, status int, contentType string, data []byte) {
	if rw, ok := w.(*responseWriter); ok {
		rw.size = len(data)
	}
	h := w.Header()
	h.Set("Content-Type", contentType)
	addVary(h, "Accept-Encoding")
	h.Del("Content-Encoding")
	if len(data) > gzipThreshold && wantsGzip(w) {
		if z := compress(data); z != nil {
			data = z
			h.Set("Content-Encoding", "gzip")
		}
	}
	h.Set("Content-Length", strconv.Itoa(len(data)))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(data)
}
