package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/boshd/boshd/internal/wait"
)

// rawServer is an HTTP/1.1 server on loopback that answers every request
// with answer(n), n counting requests from 1, written as it is. It counts
// the connections accepted, and checks each request.
type rawServer struct {
	t      *testing.T
	ln     net.Listener
	answer func(n int64) string
	// closeAfter closes each connection after this many requests; 0:
	// never.
	closeAfter int
	requests   atomic.Int64
	conns      atomic.Int64
}

func newRawServer(t *testing.T, closeAfter int, answer func(n int64) string) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{t: t, ln: ln, answer: answer, closeAfter: closeAfter}
	t.Cleanup(func() { ln.Close() })
	go s.serve()
	return s
}

func (s *rawServer) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.conns.Add(1)
		go s.conn(c)
	}
}

func (s *rawServer) conn(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for served := 1; ; served++ {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		body, err := io.ReadAll(req.Body)
		if err != nil || req.Method != http.MethodPost || req.URL.RequestURI() != "/http-bind?x=1" ||
			req.Header.Get("Content-Type") != "text/xml; charset=utf-8" || req.ContentLength != int64(len(body)) {
			s.t.Errorf("request %s %s %v, body %q (%v)", req.Method, req.URL, req.Header, body, err)
			return
		}
		if _, err := io.WriteString(c, s.answer(s.requests.Add(1))); err != nil {
			return
		}
		if served == s.closeAfter {
			return
		}
	}
}

func (s *rawServer) client(t *testing.T) *httpClient {
	u, err := url.Parse("http://" + s.ln.Addr().String() + "/http-bind?x=1")
	if err != nil {
		t.Fatal(err)
	}
	c := newHTTPClient(u, (&net.Dialer{}).DialContext)
	t.Cleanup(c.close)
	return c
}

func gzipped(s string) string {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return b.String()
}

// TestHTTPClientAnswers checks the answers boshload reads: the framings
// of a body, gzip, interim answers, and whether the connection is kept.
func TestHTTPClientAnswers(t *testing.T) {
	t.Parallel()
	const doc = "<body xmlns='http://jabber.org/protocol/httpbind'/>"
	gz := gzipped(doc)
	for _, tc := range []struct {
		name    string
		answer  string
		status  int
		body    string
		keep    bool   // the second request reuses the connection
		failure string // the error, if any
	}{
		// (The server closes the connection after an answer that says
		// Connection: close or is HTTP/1.0 without keep-alive.)
		{"length", "HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(doc)) + "\r\n\r\n" + doc, 200, doc, true, ""},
		{"lower case, spaces", "HTTP/1.1 200 OK\r\ncontent-length:  " + strconv.Itoa(len(doc)) + " \r\n\r\n" + doc, 200, doc, true, ""},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n" + doc[:5] + "\r\n" +
			strconv.FormatInt(int64(len(doc)-5), 16) + "\r\n" + doc[5:] + "\r\n0\r\nX-Trailer: 1\r\n\r\n", 200, doc, true, ""},
		{"gzip", "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: " + strconv.Itoa(len(gz)) + "\r\n\r\n" + gz, 200, doc, true, ""},
		{"gzip chunked", "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n" +
			strconv.FormatInt(int64(len(gz)), 16) + "\r\n" + gz + "\r\n0\r\n\r\n", 200, doc, true, ""},
		{"connection close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", 200, "ok", false, ""},
		{"HTTP/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, "ok", false, ""},
		{"HTTP/1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", 200, "ok", true, ""},
		{"interim", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, "ok", true, ""},
		{"error status", "HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\ngone", 404, "gone", true, ""},
		{"empty", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 200, "", true, ""},
		{"malformed status", "HTTP/1.1 2OO OK\r\n\r\n", 0, "", false, "malformed status line"},
		{"not HTTP", "SSH-2.0-OpenSSH\r\n\r\n", 0, "", false, "malformed status line"},
		{"malformed length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", 0, "", false, "malformed Content-Length"},
		{"too long", "HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(maxResponseBytes+1) + "\r\n\r\n", 0, "", false, "longer than"},
		{"short body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\nabc", 0, "", false, "unexpected EOF"},
		{"other encoding", "HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 2\r\n\r\nok", 0, "", false, "Content-Encoding"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			closeAfter := 0
			if strings.Contains(tc.answer, "Connection: close") || strings.HasPrefix(tc.answer, "HTTP/1.0 200 OK\r\nContent") {
				closeAfter = 1
			}
			srv := newRawServer(t, closeAfter, func(int64) string { return tc.answer })
			c := srv.client(t)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for i := range 2 {
				res, err := c.post(ctx, "<body/>")
				if tc.failure != "" {
					if err == nil || !strings.Contains(err.Error(), tc.failure) {
						t.Fatalf("error %v, want one with %q", err, tc.failure)
					}
					return
				}
				if err != nil {
					t.Fatalf("request %d: %v", i+1, err)
				}
				if res.status != tc.status || string(res.body) != tc.body || res.first.IsZero() {
					t.Fatalf("request %d: %d %q (first byte at %v), want %d %q", i+1, res.status, res.body, res.first, tc.status, tc.body)
				}
			}
			want := int64(2)
			if tc.keep {
				want = 1
			}
			if n := srv.conns.Load(); n != want {
				t.Errorf("%d connections for two requests, want %d", n, want)
			}
		})
	}
}

// TestHTTPClientStaleConnection checks that a request on a kept-alive
// connection the server has closed since is sent again on a new one.
func TestHTTPClientStaleConnection(t *testing.T) {
	t.Parallel()
	// The server closes each connection after one answer, without
	// saying Connection: close.
	srv := newRawServer(t, 1, func(n int64) string {
		return "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n" + strconv.FormatInt(n%10, 10)
	})
	c := srv.client(t)
	ctx := context.Background()
	for i := range 3 {
		res, err := c.post(ctx, "<body/>")
		if err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
		if want := strconv.Itoa(i + 1); string(res.body) != want {
			t.Errorf("request %d answered %q, want %q", i+1, res.body, want)
		}
	}
	if n := srv.conns.Load(); n != 3 {
		t.Errorf("%d connections, want 3", n)
	}
}

// TestHTTPClientCancel checks that cancelling a request held by the
// server ends it at once and closes its connection, and that at most
// maxConns requests are out at once.
func TestHTTPClientCancel(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := newRawServer(t, 0, func(int64) string {
		<-release
		return "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
	})
	t.Cleanup(func() { close(release) })
	c := srv.client(t)
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, maxConns+1)
	for range maxConns + 1 {
		go func() {
			_, err := c.post(ctx, "<body/>")
			errs <- err
		}()
	}
	wait.Until(t, func() bool { return srv.requests.Load() == maxConns }, "%d requests at the server", maxConns)
	cancel()
	for range maxConns + 1 {
		select {
		case err := <-errs:
			if !errors.Is(err, context.Canceled) || netReason(err) != "canceled" {
				t.Errorf("error %v (%s), want context.Canceled", err, netReason(err))
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a cancelled request did not end")
		}
	}
	if n := srv.requests.Load(); n != maxConns {
		t.Errorf("%d requests reached the server, want %d (the third waited for a connection)", n, maxConns)
	}
}
