package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

const statusFile = `Name:	boshd
Umask:	0022
State:	S (sleeping)
VmPeak:	 1253052 kB
VmHWM:	  223000 kB
VmRSS:	  211688 kB
RssAnon:	  202124 kB
RssFile:	    9564 kB
RssShmem:	       0 kB
Threads:	9
`

func TestParseStatus(t *testing.T) {
	t.Parallel()
	s, err := parseStatus(strings.NewReader(statusFile))
	if err != nil {
		t.Fatal(err)
	}
	want := memSample{RSS: 211688, Anon: 202124, File: 9564, HWM: 223000, Threads: 9}
	if s != want {
		t.Errorf("parseStatus = %+v, want %+v", s, want)
	}
}

func TestParseStatusRefused(t *testing.T) {
	t.Parallel()
	for _, doc := range []string{
		"Name:\tkthreadd\nThreads:\t1\n",
		"VmRSS:\tlots kB\n",
	} {
		if s, err := parseStatus(strings.NewReader(doc)); err == nil {
			t.Errorf("parseStatus(%q) = %+v, want an error", doc, s)
		}
	}
}

func TestReadStatusSelf(t *testing.T) {
	t.Parallel()
	s, err := readStatus(os.Getpid())
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	if s.RSS <= 0 || s.Threads <= 0 {
		t.Errorf("own status = %+v", s)
	}
}

func TestMedianSample(t *testing.T) {
	t.Parallel()
	got := medianSample([]memSample{
		{RSS: 30, Anon: 3, Threads: 9},
		{RSS: 10, Anon: 1, Threads: 7},
		{RSS: 1000, Anon: 2, Threads: 8},
	})
	if got.RSS != 30 || got.Anon != 2 || got.Threads != 8 {
		t.Errorf("median = %+v", got)
	}
	if got := medianSample([]memSample{{RSS: 4}, {RSS: 2}}); got.RSS != 4 {
		t.Errorf("median of two = %d, want the upper, 4", got.RSS)
	}
}

// selfPID returns the test process's id, whose memory the tests sample.
func selfPID() int { return os.Getpid() }

func TestParseStatCPU(t *testing.T) {
	t.Parallel()
	line := "1234 (a) b (c)) S 1 2 3 4 5 6 7 8 9 10 250 150 0 0 20 0 1 0 100 200 300"
	got, err := parseStatCPU(line)
	if err != nil || got != 4*time.Second {
		t.Errorf("parseStatCPU = %v, %v; want 4s", got, err)
	}
	if _, err := readCPU(0); err != nil {
		t.Errorf("readCPU(self): %v", err)
	}
}
