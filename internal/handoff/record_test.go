package handoff

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// seqpacketPair returns the two ends of a SOCK_SEQPACKET pair as
// Channels, closed when the test ends.
func seqpacketPair(t *testing.T) (*Channel, *Channel) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var chs [2]*Channel
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "pair")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		chs[i] = NewChannel(c.(*net.UnixConn))
		t.Cleanup(func() { chs[i].Close() })
		chs[i].SetDeadline(time.Now().Add(10 * time.Second))
	}
	return chs[0], chs[1]
}

// openFDs counts this process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd:", err)
	}
	return len(ents)
}

// pipes returns n pipes, closed when the test ends.
func pipes(t *testing.T, n int) (r, w []*os.File) {
	t.Helper()
	for range n {
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pr.Close(); pw.Close() })
		r, w = append(r, pr), append(w, pw)
	}
	return r, w
}

func TestRecordRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int // bytes of the record
		fds  int
	}{
		{"empty, no descriptor", 0, 0},
		{"small, three descriptors", 100, 3},
		{"one message exactly", chunk, 2},
		{"several messages", 3*chunk + 17, 4},
		{"large", 1 << 20, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := seqpacketPair(t)
			rs, ws := pipes(t, tc.fds)
			fds := make([]int, len(rs))
			for i, r := range rs {
				fds[i] = int(r.Fd())
			}
			data := make([]byte, tc.size)
			for i := range data {
				data[i] = byte(i * 7)
			}
			done := make(chan error, 1)
			go func() { done <- a.Send(data, fds) }()
			got, gotFDs, err := b.Receive()
			if err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("got %d bytes, not the %d sent", len(got), len(data))
			}
			if len(gotFDs) != tc.fds {
				t.Fatalf("got %d descriptors, want %d", len(gotFDs), tc.fds)
			}
			// Each descriptor received is the pipe sent in its place:
			// what is written to that pipe is read from it.
			for i, fd := range gotFDs {
				f := os.NewFile(uintptr(fd), "received")
				msg := []byte{byte('a' + i)}
				if _, err := ws[i].Write(msg); err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, 1)
				if _, err := io.ReadFull(f, buf); err != nil || buf[0] != msg[0] {
					t.Fatalf("descriptor %d: read %q, %v; want %q", i, buf, err, msg)
				}
				flags, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0)
				if errno != 0 || flags&syscall.FD_CLOEXEC == 0 {
					t.Errorf("descriptor %d not close-on-exec (flags %#x, %v)", i, flags, errno)
				}
				f.Close()
			}
		})
	}
}

// rawSend sends msgs as they are, fds with the first.
func rawSend(t *testing.T, ch *Channel, fds []int, msgs ...[]byte) {
	t.Helper()
	for i, m := range msgs {
		var oob []byte
		if i == 0 && len(fds) > 0 {
			oob = syscall.UnixRights(fds...)
		}
		if _, _, err := ch.c.WriteMsgUnix(m, oob, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// header returns a first message's header.
func header(nfds, total int) []byte {
	h := []byte{recordFirst, recordV1, byte(nfds), 0, 0, 0, 0}
	binary.BigEndian.PutUint32(h[3:], uint32(total))
	return h
}

func TestRecordMalformed(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fds   int
		msgs  [][]byte
		close bool // close the sending end after
	}{
		{"cut short, then the end", 2, [][]byte{append(header(2, 100), "only ten b"...)}, true},
		{"a descriptor missing", 1, [][]byte{append(header(2, 3), "abc"...)}, false},
		{"a descriptor too many", 3, [][]byte{append(header(2, 3), "abc"...)}, false},
		{"not a record", 2, [][]byte{[]byte("ready /tmp/x")}, false},
		{"another framing version", 1, [][]byte{{recordFirst, 9, 1, 0, 0, 0, 0}}, false},
		{"a header cut", 1, [][]byte{{recordFirst, recordV1}}, false},
		{"a bad continuation", 2, [][]byte{append(header(2, 6), "abc"...), []byte("Xdef")}, false},
		{"too large", 1, [][]byte{header(1, MaxRecord+1)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs, _ := pipes(t, tc.fds)
			fds := make([]int, len(rs))
			for i, r := range rs {
				fds[i] = int(r.Fd())
			}
			a, b := seqpacketPair(t)
			before := openFDs(t)
			rawSend(t, a, fds, tc.msgs...)
			if tc.close {
				a.Close()
			}
			data, got, err := b.Receive()
			if !errors.Is(err, ErrRecord) {
				t.Fatalf("Receive = %q, %v, %v; want ErrRecord", data, got, err)
			}
			if got != nil {
				t.Errorf("descriptors returned with an error: %v", got)
			}
			after := openFDs(t)
			if tc.close {
				after++ // a's end, closed since
			}
			if after != before {
				t.Errorf("%d descriptors open before, %d after: leaked", before, after)
			}
		})
	}
}

func TestRecordEnd(t *testing.T) {
	a, b := seqpacketPair(t)
	a.Close()
	if _, _, err := b.Receive(); !errors.Is(err, io.EOF) {
		t.Fatalf("Receive after the other end closed: %v, want io.EOF", err)
	}
}

func TestRecordTooManyFDs(t *testing.T) {
	a, _ := seqpacketPair(t)
	if err := a.Send(nil, make([]int, MaxRecordFDs+1)); err == nil {
		t.Fatal("Send of too many descriptors: no error")
	}
}

func TestMoveSocket(t *testing.T) {
	s, err := ListenSocket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ln, err := s.ListenMoves()
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if got, want := MoveSocket(s.Path()), filepath.Join(filepath.Dir(s.Path()), moveSocketName); got != want {
		t.Fatalf("MoveSocket = %s, want %s", got, want)
	}
	accepted := make(chan *Channel, 1)
	go func() {
		c, err := ln.AcceptUnix()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- NewChannel(c)
	}()
	d, err := DialMoves(MoveSocket(s.Path()))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	c := <-accepted
	if c == nil {
		t.Fatal("not accepted")
	}
	defer c.Close()
	if err := d.Send([]byte("session"), nil); err != nil {
		t.Fatal(err)
	}
	if data, _, err := c.Receive(); err != nil || string(data) != "session" {
		t.Fatalf("Receive = %q, %v", data, err)
	}
	if err := c.Send([]byte("moved"), nil); err != nil {
		t.Fatal(err)
	}
	if data, _, err := d.Receive(); err != nil || string(data) != "moved" {
		t.Fatalf("the answer: %q, %v", data, err)
	}
}
