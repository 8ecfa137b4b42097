package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// memSample is one reading of a process's memory from /proc/PID/status,
// in KiB, and its thread count. It is read from outside the process, so
// it needs nothing from the process under test.
type memSample struct {
	RSS     int64 `json:"vm_rss_kib"`   // VmRSS: resident set
	Anon    int64 `json:"rss_anon_kib"` // RssAnon: resident anonymous memory (heap, stacks)
	File    int64 `json:"rss_file_kib"` // RssFile: resident file mappings (the binary)
	HWM     int64 `json:"vm_hwm_kib"`   // VmHWM: peak resident set
	Threads int64 `json:"threads"`      // OS threads
}

// readStatus reads the memory figures of process pid.
func readStatus(pid int) (memSample, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return memSample{}, fmt.Errorf("reading memory of pid %d: %w", pid, err)
	}
	defer f.Close()
	s, err := parseStatus(f)
	if err != nil {
		return memSample{}, fmt.Errorf("reading memory of pid %d: %w", pid, err)
	}
	return s, nil
}

// parseStatus parses the fields of memSample from a /proc/PID/status
// file. VmRSS is required; the others are zero when missing.
func parseStatus(r io.Reader) (memSample, error) {
	var s memSample
	fields := map[string]*int64{
		"VmRSS": &s.RSS, "RssAnon": &s.Anon, "RssFile": &s.File, "VmHWM": &s.HWM, "Threads": &s.Threads,
	}
	seenRSS := false
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		p, wanted := fields[key]
		if !wanted {
			continue
		}
		num, _, _ := strings.Cut(strings.TrimSpace(value), " ") // "1234 kB" or "12"
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil {
			return memSample{}, fmt.Errorf("%s: %q is not a number", key, value)
		}
		*p = n
		if key == "VmRSS" {
			seenRSS = true
		}
	}
	if err := sc.Err(); err != nil {
		return memSample{}, err
	}
	if !seenRSS {
		return memSample{}, fmt.Errorf("no VmRSS line (a kernel thread or a zombie?)")
	}
	return s, nil
}

// sampleMedian reads pid's memory n times, every interval, and returns
// the median of each figure. It stops early, with an error, when ctx
// ends.
func sampleMedian(ctx context.Context, pid, n int, interval time.Duration) (memSample, error) {
	var samples []memSample
	for i := range n {
		if i > 0 {
			select {
			case <-ctx.Done():
				return memSample{}, fmt.Errorf("sampling pid %d: %w", pid, ctx.Err())
			case <-time.After(interval):
			}
		}
		s, err := readStatus(pid)
		if err != nil {
			return memSample{}, err
		}
		samples = append(samples, s)
	}
	return medianSample(samples), nil
}

// medianSample returns the median of each figure of samples (the upper
// median for an even count). samples must not be empty.
func medianSample(samples []memSample) memSample {
	pick := func(get func(memSample) int64) int64 {
		v := make([]int64, len(samples))
		for i, s := range samples {
			v[i] = get(s)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	return memSample{
		RSS:     pick(func(s memSample) int64 { return s.RSS }),
		Anon:    pick(func(s memSample) int64 { return s.Anon }),
		File:    pick(func(s memSample) int64 { return s.File }),
		HWM:     pick(func(s memSample) int64 { return s.HWM }),
		Threads: pick(func(s memSample) int64 { return s.Threads }),
	}
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times (100 on Linux
// for every architecture Go supports).
const clockTicks = 100

// readCPU returns the user+system CPU time process pid has used, from
// /proc/PID/stat; pid 0 is boshload itself.
func readCPU(pid int) (time.Duration, error) {
	name := "self"
	if pid > 0 {
		name = strconv.Itoa(pid)
	}
	data, err := os.ReadFile("/proc/" + name + "/stat")
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(data))
}

// parseStatCPU returns utime+stime of a /proc/PID/stat line. The command
// name (field 2) may contain spaces and parentheses: fields are counted
// after its last ')'.
func parseStatCPU(s string) (time.Duration, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat: no ')' in %q", s)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("stat: %d fields after the name", len(f))
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("stat: utime %q, stime %q", f[11], f[12])
	}
	return time.Duration(u+st) * time.Second / clockTicks, nil
}
