package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

// results is what one run measured; it is also the --json document.
type results struct {
	URL       string  `json:"url"`
	Domain    string  `json:"domain"`
	Login     bool    `json:"login"`
	Requested int     `json:"sessions_requested"`
	Rate      float64 `json:"rate_requested"` // sessions started per second
	Wait      int     `json:"wait"`
	Sources   int     `json:"sources"` // local addresses bound; 0: the kernel's choice

	Launched    int `json:"launched"`     // sessions whose creation was sent
	Established int `json:"established"`  // created (and logged in)
	SetupFailed int `json:"setup_failed"` // creation or login failed
	Unfinished  int `json:"unfinished"`   // setup cut short by the end of the run
	Dropped     int `json:"dropped"`      // established, then ended by a failure
	Terminated  int `json:"terminated"`   // ended cleanly with type='terminate'

	// Failures counts failures by "phase: kind: detail"; Examples holds
	// the first error of each.
	Failures map[string]int    `json:"failures"`
	Examples map[string]string `json:"failure_examples,omitempty"`

	SetupSeconds float64        `json:"setup_seconds"` // from the first start to the last establishment
	SetupRate    float64        `json:"setup_rate"`    // established per second over SetupSeconds
	Latency      *latencyReport `json:"setup_latency_ms,omitempty"`
	// TerminateLatency is the time of the terminate requests that were
	// answered, slot wait excluded.
	TerminateLatency *latencyReport `json:"terminate_latency_ms,omitempty"`
	IdleResponses    int64          `json:"idle_responses"` // held requests answered during the run
	Stanzas          int64          `json:"stanzas"`        // children in those responses
	Memory           *memReport     `json:"memory,omitempty"`
	RunSeconds       float64        `json:"run_seconds"`
	Errors           []string       `json:"errors,omitempty"` // problems of boshload itself (sampling)
}

// latencyReport summarises latencies, in milliseconds.
type latencyReport struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// memReport is the memory of the process under test before the sessions
// and once they are established and idle.
type memReport struct {
	PID           int        `json:"pid"`
	Before        memSample  `json:"before"`
	After         *memSample `json:"after,omitempty"`
	SettleSeconds float64    `json:"settle_seconds"`
	HeldAtSample  int64      `json:"held_at_sample"` // requests in flight when After was taken
	LiveAtSample  int        `json:"live_at_sample"` // established and not dropped then
	DeltaKiB      int64      `json:"delta_kib"`      // After.RSS - Before.RSS
	PerSessionKiB float64    `json:"per_session_kib"`
}

// latencySummary returns percentiles of d, which it sorts.
func latencySummary(d []time.Duration) *latencyReport {
	if len(d) == 0 {
		return nil
	}
	slices.Sort(d)
	at := func(q float64) float64 {
		i := int(q * float64(len(d)-1))
		return float64(d[i]) / float64(time.Millisecond)
	}
	return &latencyReport{P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: at(1)}
}

// print writes a human-readable report.
func (r *results) print(w io.Writer) {
	login := "unauthenticated"
	if r.Login {
		login = "logged in (SASL PLAIN, bind, presence)"
	}
	fmt.Fprintf(w, "boshload: %s, %d sessions %s, wait %d s\n", r.URL, r.Requested, login, r.Wait)
	fmt.Fprintf(w, "  established   %d of %d launched (setup failed %d, unfinished %d)\n",
		r.Established, r.Launched, r.SetupFailed, r.Unfinished)
	fmt.Fprintf(w, "  setup         %.2f s, %.1f sessions/s (asked %g/s)\n", r.SetupSeconds, r.SetupRate, r.Rate)
	if l := r.Latency; l != nil {
		fmt.Fprintf(w, "  setup latency p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms\n", l.P50, l.P90, l.P99, l.Max)
	}
	fmt.Fprintf(w, "  idle          %d responses with %d stanzas; %d sessions dropped\n", r.IdleResponses, r.Stanzas, r.Dropped)
	fmt.Fprintf(w, "  terminated    %d\n", r.Terminated)
	if l := r.TerminateLatency; l != nil {
		fmt.Fprintf(w, "  terminate latency p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms\n", l.P50, l.P90, l.P99, l.Max)
	}
	if len(r.Failures) > 0 {
		fmt.Fprintf(w, "  failures:\n")
		keys := make([]string, 0, len(r.Failures))
		for k := range r.Failures {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "    %6d  %s\n", r.Failures[k], k)
			if ex := r.Examples[k]; ex != "" {
				fmt.Fprintf(w, "            e.g. %s\n", ex)
			}
		}
	}
	if m := r.Memory; m != nil {
		fmt.Fprintf(w, "  pid %d VmRSS before %d KiB (threads %d)", m.PID, m.Before.RSS, m.Before.Threads)
		if m.After != nil {
			fmt.Fprintf(w, ", after %d KiB (threads %d), delta %d KiB over %d sessions (%d held): %.2f KiB per session\n",
				m.After.RSS, m.After.Threads, m.DeltaKiB, m.LiveAtSample, m.HeldAtSample, m.PerSessionKiB)
			fmt.Fprintf(w, "  pid %d RssAnon before %d KiB, after %d KiB; VmHWM after %d KiB\n",
				m.PID, m.Before.Anon, m.After.Anon, m.After.HWM)
		} else {
			fmt.Fprintf(w, "; not sampled after (setup did not finish within the run)\n")
		}
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "  error: %s\n", e)
	}
	fmt.Fprintf(w, "  run           %.1f s\n", r.RunSeconds)
	r.printSummary(w)
}

// printSummary writes one line of key=value pairs for scripts; figures
// that were not measured are "-".
func (r *results) printSummary(w io.Writer) {
	before, after, delta, perSession := "-", "-", "-", "-"
	if m := r.Memory; m != nil {
		before = fmt.Sprint(m.Before.RSS)
		if m.After != nil {
			after = fmt.Sprint(m.After.RSS)
			delta = fmt.Sprint(m.DeltaKiB)
			perSession = fmt.Sprintf("%.2f", m.PerSessionKiB)
		}
	}
	endFailures := 0
	for reason, n := range r.Failures {
		if strings.HasPrefix(reason, phaseTerminate+":") {
			endFailures += n
		}
	}
	fmt.Fprintf(w, "result sessions=%d established=%d setup_failed=%d dropped=%d terminated=%d terminate_failed=%d "+
		"setup_s=%.2f setup_rate=%.1f rss_before_kib=%s rss_after_kib=%s rss_delta_kib=%s kib_per_session=%s\n",
		r.Requested, r.Established, r.SetupFailed, r.Dropped, r.Terminated, endFailures,
		r.SetupSeconds, r.SetupRate, before, after, delta, perSession)
}

// writeJSON writes the results to path.
func (r *results) writeJSON(path string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding results: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing results: %w", err)
	}
	return nil
}
