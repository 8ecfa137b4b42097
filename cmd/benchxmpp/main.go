// Command benchxmpp is a BENCHMARK FIXTURE: a minimal XMPP client-to-server
// listener for measuring boshd at scales one Prosody on the same machine
// cannot hold. boshd never depends on it, and it is no XMPP server: it
// accepts any SASL PLAIN login, keeps no rosters, stores nothing, and
// implements only what boshload exercises:
//
//   - stream headers, SASL PLAIN (any password), the restart, resource
//     binding and the legacy session iq, in the words of internal/xmpptest,
//     the fake server of the unit tests;
//   - messages routed between bound full JIDs (or to any resource of a
//     bare JID), stamped with the sender's full JID;
//   - presence without a to echoed back to its sender;
//   - iq get/set to the server (ping and anything else) answered with an
//     empty result;
//   - </stream:stream> answered and the connection closed.
//
// Usage:
//
//	benchxmpp [-listen 127.0.0.1:5222] [-domain localhost]
//
// It listens on loopback only.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/boshd/boshd/internal/rawxml"
	"github.com/boshd/boshd/internal/xmpptest"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:5222", "loopback `address` to listen on")
	domain := flag.String("domain", "localhost", "the XMPP `domain` served")
	flag.Parse()
	host, _, err := net.SplitHostPort(*listen)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		log.Fatalf("benchxmpp: -listen must be a loopback IP address and port, got %q", *listen)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	srv := newServer(*domain)
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		<-sig
		ln.Close()
	}()
	log.Printf("benchxmpp (benchmark fixture) serving %s on %s", *domain, ln.Addr())
	go srv.report(10 * time.Second)
	if err := srv.serve(ln); err != nil && !errors.Is(err, net.ErrClosed) {
		log.Fatal(err)
	}
}

// server routes stanzas between the connections bound to it.
type server struct {
	domain string

	mu    sync.RWMutex
	bound map[string]*conn // full JID → connection

	conns, routed atomic.Int64
}

func newServer(domain string) *server {
	return &server{domain: domain, bound: make(map[string]*conn)}
}

func (s *server) serve(ln net.Listener) error {
	for {
		nc, err := ln.Accept()
		if err != nil {
			return err
		}
		go s.handle(nc)
	}
}

func (s *server) report(every time.Duration) {
	for range time.Tick(every) {
		log.Printf("connections %d, routed stanzas %d", s.conns.Load(), s.routed.Load())
	}
}

// conn is one client connection.
type conn struct {
	nc  net.Conn
	jid string // full JID once bound; owned by the connection's goroutine

	wmu sync.Mutex // serialises writes
}

func (c *conn) write(parts ...[]byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
	bufs := net.Buffers(parts)
	_, err := bufs.WriteTo(c.nc)
	return err
}

const (
	nsClient = xmpptest.NSClient
	nsSASL   = xmpptest.NSSASL
	nsBind   = xmpptest.NSBind
)

func (s *server) handle(nc net.Conn) {
	s.conns.Add(1)
	defer s.conns.Add(-1)
	defer nc.Close()
	c := &conn{nc: nc}
	br := bufio.NewReaderSize(nc, 1024)
	user := ""
	for stage := 0; ; stage++ {
		// Each stream: the client's header, ours, features.
		rd := rawxml.NewReader(br, rawxml.Options{DefaultNS: nsClient, MaxElementSize: 1 << 20})
		if _, err := rd.Root(); err != nil {
			return
		}
		header := xmpptest.Header(fmt.Sprintf("%x", time.Now().UnixNano()), s.domain)
		features := "<stream:features><mechanisms xmlns='" + nsSASL + "'><mechanism>PLAIN</mechanism></mechanisms></stream:features>"
		if user != "" {
			features = "<stream:features><bind xmlns='" + nsBind + "'><required/></bind><session xmlns='" + xmpptest.NSSession + "'><optional/></session></stream:features>"
		}
		if c.write([]byte(header), []byte(features)) != nil {
			return
		}
		restart, err := s.stream(c, rd, &user)
		if err != nil || !restart {
			if c.jid != "" {
				s.mu.Lock()
				if s.bound[c.jid] == c {
					delete(s.bound, c.jid)
				}
				s.mu.Unlock()
			}
			if err == nil {
				c.write([]byte("</stream:stream>"))
			}
			return
		}
	}
}

// stream serves one stream's elements. It reports whether the client
// authenticated, so that a new stream follows.
func (s *server) stream(c *conn, rd *rawxml.Reader, user *string) (restart bool, err error) {
	for {
		el, err := rd.Next()
		if errors.Is(err, rawxml.ErrRootEnd) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		switch {
		case el.NS == nsSASL && el.Name.Local == "auth":
			*user = xmpptest.PlainUser(string(el.Raw))
			if *user == "" {
				c.write([]byte(xmpptest.Failure("not-authorized")))
				continue
			}
			return true, c.write([]byte(xmpptest.Success))
		case el.NS != nsClient:
			continue
		case el.Name.Local == "iq":
			s.iq(c, el.Raw, *user)
		case el.Name.Local == "presence":
			if attr(el.Raw, "to") == "" {
				c.write(stamp(el.Raw, c.jid))
			}
		case el.Name.Local == "message":
			s.route(c, el.Raw)
		}
	}
}

// iq answers an iq: bind, or an empty result for anything else.
func (s *server) iq(c *conn, raw []byte, user string) {
	id := attr(raw, "id")
	typ := attr(raw, "type")
	if typ != "get" && typ != "set" {
		return
	}
	if bytes.Contains(raw, []byte(nsBind)) && c.jid == "" && user != "" {
		resource := text(raw, "resource")
		if resource == "" {
			resource = fmt.Sprintf("r%d", time.Now().UnixNano())
		}
		c.jid = user + "@" + s.domain + "/" + resource
		s.mu.Lock()
		s.bound[c.jid] = c
		s.mu.Unlock()
		c.write([]byte("<iq xmlns='jabber:client' type='result' id='" + id + "'><bind xmlns='" + nsBind + "'><jid>" + c.jid + "</jid></bind></iq>"))
		return
	}
	c.write([]byte("<iq xmlns='jabber:client' type='result' id='" + id + "' from='" + s.domain + "'/>"))
}

// route delivers a message to its full JID, or to one resource of its bare
// JID, stamped with the sender.
func (s *server) route(from *conn, raw []byte) {
	to := attr(raw, "to")
	s.mu.RLock()
	dst := s.bound[to]
	if dst == nil && !strings.Contains(to, "/") {
		for jid, c := range s.bound {
			if strings.HasPrefix(jid, to+"/") {
				dst = c
				break
			}
		}
	}
	s.mu.RUnlock()
	if dst == nil {
		return
	}
	if dst.write(stamp(raw, from.jid)) == nil {
		s.routed.Add(1)
	}
}

// stamp returns the stanza with from='jid' added after its name (a fixture:
// it trusts that the client sent no from).
func stamp(raw []byte, jid string) []byte {
	end := bytes.IndexAny(raw, " />")
	if end < 0 || jid == "" {
		return raw
	}
	out := make([]byte, 0, len(raw)+len(jid)+8)
	out = append(out, raw[:end]...)
	out = append(out, " from='"...)
	out = rawxml.AppendAttrValue(out, jid)
	out = append(out, '\'')
	return append(out, raw[end:]...)
}

// attr returns the value of attribute name on the element's start tag.
func attr(raw []byte, name string) string {
	tag := raw
	if i := bytes.IndexByte(raw, '>'); i >= 0 {
		tag = raw[:i]
	}
	for _, q := range []string{"'", `"`} {
		key := []byte(" " + name + "=" + q)
		if i := bytes.Index(tag, key); i >= 0 {
			rest := tag[i+len(key):]
			if j := bytes.Index(rest, []byte(q)); j >= 0 {
				return string(rest[:j])
			}
		}
	}
	return ""
}

// text returns the text of the first <name> element in raw.
func text(raw []byte, name string) string {
	open := []byte("<" + name + ">")
	i := bytes.Index(raw, open)
	if i < 0 {
		return ""
	}
	rest := raw[i+len(open):]
	j := bytes.IndexByte(rest, '<')
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}
