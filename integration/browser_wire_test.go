package integration

import (
	"bytes"
	"net"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// wireLog records, for each BOSH response boshd writes, the sid and rid of
// the request it answers and when its first byte was written: the order in
// which boshd answers, as the client's network sees it (XEP-0124 §8).
type wireLog struct {
	mu     sync.Mutex
	writes []wireWrite
	reads  []wireWrite // each request read, when its rid was
}

// Requests returns the rids of session sid's requests, in the order boshd
// read them.
func (w *wireLog) Requests(sid string) []uint64 {
	var out []uint64
	for _, x := range w.of(false, sid) {
		out = append(out, x.rid)
	}
	return out
}

// of returns the writes (or the reads) of session sid.
func (w *wireLog) of(writes bool, sid string) []wireWrite {
	w.mu.Lock()
	defer w.mu.Unlock()
	list := w.reads
	if writes {
		list = w.writes
	}
	var out []wireWrite
	for _, x := range list {
		if x.sid == sid {
			out = append(out, x)
		}
	}
	return out
}

// RequestConns returns how many BOSH requests were read and over how many
// connections.
func (w *wireLog) RequestConns() (requests, conns int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	seen := make(map[int64]bool)
	for _, x := range w.reads {
		seen[x.conn] = true
	}
	return len(w.reads), len(seen)
}

type wireWrite struct {
	at   time.Time
	conn int64
	sid  string
	rid  uint64
}

// Answers returns the responses written for session sid, in the order they
// were written.
func (w *wireLog) Answers(sid string) []wireWrite { return w.of(true, sid) }

// bySession returns the rids read for each session, in order.
func (w *wireLog) bySession() map[string][]uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := make(map[string][]uint64)
	for _, x := range w.reads {
		m[x.sid] = append(m[x.sid], x.rid)
	}
	return m
}

// recordingListener wraps the connections it accepts in recordingConns.
type recordingListener struct {
	net.Listener
	log   *wireLog
	conns atomic.Int64
}

func (l *recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &recordingConn{Conn: c, log: l.log, id: l.conns.Add(1)}, nil
}

// recordingConn notes the sid and rid of the last BOSH request read from
// the connection (browsers send one request at a time on a connection,
// and a request body is small enough to come in one read) and records the
// first write after it: the start of its response.
type recordingConn struct {
	net.Conn
	log *wireLog
	id  int64

	mu       sync.Mutex
	sid      string
	rid      uint64
	answered bool
}

var (
	ridPattern = regexp.MustCompile(`\srid=['"]([0-9]+)['"]`)
	sidPattern = regexp.MustCompile(`\ssid=['"]([^'"]+)['"]`)
)

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if m := ridPattern.FindSubmatch(p[:n]); m != nil {
		rid, _ := strconv.ParseUint(string(m[1]), 10, 64)
		sid := ""
		if s := sidPattern.FindSubmatch(p[:n]); s != nil {
			sid = string(s[1])
		}
		c.mu.Lock()
		c.sid, c.rid, c.answered = sid, rid, false
		c.mu.Unlock()
		c.log.mu.Lock()
		c.log.reads = append(c.log.reads, wireWrite{at: time.Now(), conn: c.id, sid: sid, rid: rid})
		c.log.mu.Unlock()
	}
	return n, err
}

func (c *recordingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	// An empty response is what net/http writes by itself for a request
	// boshd abandoned (its client went away): not an answer.
	if c.rid != 0 && !c.answered && !bytes.Contains(p, []byte("\r\nContent-Length: 0\r\n")) {
		c.answered = true
		c.log.mu.Lock()
		c.log.writes = append(c.log.writes, wireWrite{at: time.Now(), conn: c.id, sid: c.sid, rid: c.rid})
		c.log.mu.Unlock()
	}
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// checkAnswerOrder fails t if boshd started writing the response to a rid of
// session sid before the response to a lower rid (XEP-0124 §8), counting only
// the first answer to each rid (a resend is answered again later).
func checkAnswerOrder(t *testing.T, w *wireLog, sid string) int {
	t.Helper()
	seen := make(map[uint64]bool)
	var last wireWrite
	n := 0
	for _, x := range w.Answers(sid) {
		if seen[x.rid] {
			continue
		}
		seen[x.rid] = true
		if last.rid != 0 && x.rid < last.rid {
			t.Errorf("XEP-0124 §8: session %s: boshd wrote the response to rid %d (conn %d) %v after the one to rid %d (conn %d)",
				sid, x.rid, x.conn, x.at.Sub(last.at), last.rid, last.conn)
		}
		if x.rid > last.rid {
			last = x
		}
		n++
	}
	return n
}

// SyscallConn exposes the socket under the recorder, so that boshd parks
// held requests on it as it would on a bare TCP connection.
func (c *recordingConn) SyscallConn() (syscall.RawConn, error) {
	return c.Conn.(syscall.Conn).SyscallConn()
}
