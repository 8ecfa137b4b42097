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
	Transport string  `json:"transport"` // bosh or websocket
	URL       string  `json:"url"`
	Domain    string  `json:"domain"`
	Login     bool    `json:"login"`
	Requested int     `json:"sessions_requested"`
	Rate      float64 `json:"rate_requested"` // sessions started per second
	Wait      int     `json:"wait"`           // BOSH: asked at creation; WebSocket: bounds each answer awaited
	Sources   int     `json:"sources"`        // local addresses bound; 0: the kernel's choice

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
	// IdleResponses counts the held requests answered (BOSH) or the
	// messages received (WebSocket) once sessions were set up; Stanzas
	// the stanzas in them.
	// Terminates, HTTPErrors and NetworkErrors count the failures of
	// those kinds in Failures, whatever the phase: a terminate other
	// than the answer to the session's own, a status other than 200, a
	// connection lost or refused.
	Terminates    int `json:"terminates"`
	HTTPErrors    int `json:"http_errors"`
	NetworkErrors int `json:"network_errors"`
	// Relogins counts chatting sessions logged in again after a failure
	// (--relogin); Resends the BOSH requests sent again, with the same
	// rid, on a new connection because the server had closed the
	// kept-alive one before answering (XEP-0124 §14.3: no failure).
	Relogins      int64       `json:"relogins"`
	Resends       int64       `json:"resends"`
	IdleResponses int64       `json:"idle_responses"`
	Stanzas       int64       `json:"stanzas"`
	Memory        *memReport  `json:"memory,omitempty"`
	Chat          *chatReport `json:"chat,omitempty"`
	Poll          *pollReport `json:"poll,omitempty"`
	// CPU is the CPU time of --pid, --also-pid and boshload itself (pid
	// 0) while chatting or polling, up to the end of the load.
	CPU        []cpuReport `json:"cpu,omitempty"`
	RunSeconds float64     `json:"run_seconds"`
	Errors     []string    `json:"errors,omitempty"` // problems of boshload itself (sampling)
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
	HeldAtSample  int64      `json:"held_at_sample"` // requests in flight (BOSH) or connections read (WebSocket) when After was taken
	LiveAtSample  int        `json:"live_at_sample"` // established and not dropped then
	DeltaKiB      int64      `json:"delta_kib"`      // After.RSS - Before.RSS
	PerSessionKiB float64    `json:"per_session_kib"`
	// Others are the --also-pid processes; StackDeltaKiB and
	// StackPerSessionKiB add them to PID's.
	Others             []otherMem `json:"others,omitempty"`
	StackDeltaKiB      int64      `json:"stack_delta_kib,omitempty"`
	StackPerSessionKiB float64    `json:"stack_per_session_kib,omitempty"`
}

// otherMem is the VmRSS of one more process of the stack, in KiB.
type otherMem struct {
	PID      int       `json:"pid"`
	Before   memSample `json:"before"`
	After    int64     `json:"after_vm_rss_kib"`
	DeltaKiB int64     `json:"delta_kib"`
}

// chatReport is what the chatting pairs measured.
type chatReport struct {
	Pairs        int     `json:"pairs"`
	RatePerPair  float64 `json:"rate_per_pair"` // asked, stanzas/s per pair (half each way)
	OfferedRate  float64 `json:"offered_rate"`  // pairs × rate per pair
	SendSeconds  float64 `json:"send_seconds"`  // the window in which messages were generated
	Sent         int64   `json:"sent"`          // messages sent
	Skipped      int64   `json:"skipped"`       // due while the sender's queue was full: never sent
	Received     int64   `json:"received"`      // messages from the partner received (repeats included)
	InOrder      int64   `json:"in_order"`      // received as exactly the next sequence number
	Duplicates   int64   `json:"duplicates"`    // a sequence number not above the last one received
	Gaps         int64   `json:"gaps"`          // a sequence number beyond the next one: some lost or reordered
	Late         int64   `json:"late"`          // below the last one, filling a gap: reordered
	Missing      int64   `json:"missing"`       // sent − (received − duplicates): not received by the end (on its way, or lost)
	Foreign      int64   `json:"foreign"`       // a boshload message from someone not the partner
	Stale        int64   `json:"stale"`         // a message of an earlier boshload run to the same JIDs, ignored
	Malformed    int64   `json:"malformed"`     // a message body boshload did not write
	SentRate     float64 `json:"sent_rate"`     // sent / send_seconds
	ReceivedRate float64 `json:"received_rate"` // unique received / send_seconds
	// WindowRate counts only what arrived while messages were being
	// sent: at saturation, what the stack sustains, where ReceivedRate
	// also counts what it delivered during the drain.
	WindowRate     float64        `json:"received_in_window_rate"` // unique received by the end of sending / send_seconds
	PerRequest     float64        `json:"per_request"`             // messages per request that carried any
	ExactlyOnceOK  bool           `json:"exactly_once"`
	InOrderOK      bool           `json:"exactly_once_in_order"`
	AllDelivered   bool           `json:"all_delivered"` // missing == 0: nothing still on its way at the end
	Latency        *latencyReport `json:"push_latency_ms,omitempty"`
	LatencySamples int            `json:"latency_samples"`
	// StartUnixMS is when chatting started, in milliseconds since the
	// Unix epoch (wall clock), and Timeline the messages received in
	// each second since then with the longest push latency among them:
	// a caller that acted on the server at a known time (an upgrade)
	// reads what the clients saw then.
	StartUnixMS int64           `json:"start_unix_ms"`
	Timeline    []timelinePoint `json:"timeline,omitempty"`
}

// timelinePoint is one second of a chat's timeline.
type timelinePoint struct {
	Second   int     `json:"second"`   // since chatting started
	Received int64   `json:"received"` // messages received in it, repeats included
	MaxMS    float64 `json:"max_ms"`   // the longest push latency among them
}

// cpuReport is one process's CPU time over the chat or poll window.
type cpuReport struct {
	PID       int     `json:"pid"` // 0: boshload
	Seconds   float64 `json:"seconds"`
	PerUnitUS float64 `json:"per_unit_us"` // per stanza received, or per round trip
}

// pollReport is what the polling sessions measured.
type pollReport struct {
	Seconds      float64        `json:"seconds"`
	RoundTrips   int64          `json:"round_trips"`
	Rate         float64        `json:"round_trips_per_second"`
	RoundTripLat *latencyReport `json:"round_trip_ms,omitempty"`
}

// countKinds sums r.Failures by kind into Terminates, HTTPErrors and
// NetworkErrors.
func (r *results) countKinds() {
	for reason, n := range r.Failures {
		// reason is "phase: kind: detail".
		_, rest, _ := strings.Cut(reason, ": ")
		kind, _, _ := strings.Cut(rest, ": ")
		switch kind {
		case kindTerminate:
			r.Terminates += n
		case kindHTTP:
			r.HTTPErrors += n
		case kindNetwork:
			r.NetworkErrors += n
		}
	}
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
	if r.Transport == transportWebSocket {
		fmt.Fprintf(w, "boshload: %s (websocket), %d sessions %s\n", r.URL, r.Requested, login)
	} else {
		fmt.Fprintf(w, "boshload: %s, %d sessions %s, wait %d s\n", r.URL, r.Requested, login, r.Wait)
	}
	fmt.Fprintf(w, "  established   %d of %d launched (setup failed %d, unfinished %d)\n",
		r.Established, r.Launched, r.SetupFailed, r.Unfinished)
	fmt.Fprintf(w, "  setup         %.2f s, %.1f sessions/s (asked %g/s)\n", r.SetupSeconds, r.SetupRate, r.Rate)
	if l := r.Latency; l != nil {
		fmt.Fprintf(w, "  setup latency p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms\n", l.P50, l.P90, l.P99, l.Max)
	}
	if r.Transport == transportWebSocket {
		fmt.Fprintf(w, "  idle          %d messages received; %d sessions dropped\n", r.IdleResponses, r.Dropped)
	} else {
		fmt.Fprintf(w, "  idle          %d responses with %d stanzas; %d sessions dropped\n", r.IdleResponses, r.Stanzas, r.Dropped)
	}
	fmt.Fprintf(w, "  terminated    %d\n", r.Terminated)
	fmt.Fprintf(w, "  errors        %d terminates, %d HTTP errors, %d network errors; %d relogins, %d requests resent on a new connection\n",
		r.Terminates, r.HTTPErrors, r.NetworkErrors, r.Relogins, r.Resends)
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
			held := "held"
			if r.Transport == transportWebSocket {
				held = "connections read"
			}
			fmt.Fprintf(w, ", after %d KiB (threads %d), delta %d KiB over %d sessions (%d %s): %.2f KiB per session\n",
				m.After.RSS, m.After.Threads, m.DeltaKiB, m.LiveAtSample, m.HeldAtSample, held, m.PerSessionKiB)
			fmt.Fprintf(w, "  pid %d RssAnon before %d KiB, after %d KiB; VmHWM after %d KiB\n",
				m.PID, m.Before.Anon, m.After.Anon, m.After.HWM)
		} else {
			fmt.Fprintf(w, "; not sampled after (setup did not finish within the run)\n")
		}
	}
	if m := r.Memory; m != nil && len(m.Others) > 0 && m.After != nil {
		for _, o := range m.Others {
			fmt.Fprintf(w, "  pid %d VmRSS before %d KiB, after %d KiB\n", o.PID, o.Before.RSS, o.After)
		}
		fmt.Fprintf(w, "  stack delta %d KiB: %.2f KiB per session\n", m.StackDeltaKiB, m.StackPerSessionKiB)
	}
	if c := r.Chat; c != nil {
		fmt.Fprintf(w, "  chat          %d pairs at %g stanzas/s each (offered %g/s) for %.1f s\n", c.Pairs, c.RatePerPair, c.OfferedRate, c.SendSeconds)
		fmt.Fprintf(w, "  chat          sent %d (%.1f/s), received %d (%.1f/s; %.1f/s while sending), skipped %d, %.2f per request\n",
			c.Sent, c.SentRate, c.Received, c.ReceivedRate, c.WindowRate, c.Skipped, c.PerRequest)
		fmt.Fprintf(w, "  chat check    in order %d, duplicates %d, gaps %d, late %d, missing %d, foreign %d, malformed %d: exactly once %v, in order %v, all delivered by the end %v\n",
			c.InOrder, c.Duplicates, c.Gaps, c.Late, c.Missing, c.Foreign, c.Malformed, c.ExactlyOnceOK, c.InOrderOK, c.AllDelivered)
		if c.Stale > 0 {
			fmt.Fprintf(w, "  chat check    %d messages of an earlier run to the same JIDs ignored\n", c.Stale)
		}
		if l := c.Latency; l != nil {
			fmt.Fprintf(w, "  push latency  p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms (%d samples)\n", l.P50, l.P90, l.P99, l.Max, c.LatencySamples)
		}
	}
	if p := r.Poll; p != nil {
		fmt.Fprintf(w, "  poll          %d round trips in %.1f s: %.1f/s\n", p.RoundTrips, p.Seconds, p.Rate)
		if l := p.RoundTripLat; l != nil {
			fmt.Fprintf(w, "  round trip    p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n", l.P50, l.P90, l.P99, l.Max)
		}
	}
	for _, c := range r.CPU {
		name := fmt.Sprintf("pid %d", c.PID)
		if c.PID == 0 {
			name = "boshload"
		}
		fmt.Fprintf(w, "  cpu           %s: %.2f s, %.1f µs per stanza or round trip\n", name, c.Seconds, c.PerUnitUS)
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
	stack := "-"
	if m := r.Memory; m != nil && len(m.Others) > 0 && m.After != nil {
		stack = fmt.Sprintf("%.2f", m.StackPerSessionKiB)
	}
	chat := ""
	if c := r.Chat; c != nil {
		p50, p90, p99, pmax := "-", "-", "-", "-"
		if l := c.Latency; l != nil {
			p50, p90, p99, pmax = fmt.Sprintf("%.3f", l.P50), fmt.Sprintf("%.3f", l.P90), fmt.Sprintf("%.3f", l.P99), fmt.Sprintf("%.3f", l.Max)
		}
		chat = fmt.Sprintf(" sent=%d received=%d missing=%d duplicates=%d gaps=%d late=%d skipped=%d recv_rate=%.1f recv_window_rate=%.1f lat_p50=%s lat_p90=%s lat_p99=%s lat_max=%s exactly_once=%v in_order=%v stale=%d",
			c.Sent, c.Received, c.Missing, c.Duplicates, c.Gaps, c.Late, c.Skipped, c.ReceivedRate, c.WindowRate, p50, p90, p99, pmax, c.ExactlyOnceOK, c.InOrderOK, c.Stale)
	}
	if p := r.Poll; p != nil {
		chat += fmt.Sprintf(" round_trips=%d rt_rate=%.1f", p.RoundTrips, p.Rate)
		if l := p.RoundTripLat; l != nil {
			chat += fmt.Sprintf(" rt_p50=%.3f rt_p99=%.3f", l.P50, l.P99)
		}
	}
	for k, c := range r.CPU {
		chat += fmt.Sprintf(" cpu%d_s=%.2f cpu%d_us=%.1f", k, c.Seconds, k, c.PerUnitUS)
	}
	chat += fmt.Sprintf(" terminates=%d http_errors=%d network_errors=%d relogins=%d resends=%d",
		r.Terminates, r.HTTPErrors, r.NetworkErrors, r.Relogins, r.Resends)
	fmt.Fprintf(w, "result sessions=%d established=%d setup_failed=%d dropped=%d terminated=%d terminate_failed=%d "+
		"setup_s=%.2f setup_rate=%.1f rss_before_kib=%s rss_after_kib=%s rss_delta_kib=%s kib_per_session=%s stack_kib_per_session=%s%s transport=%s\n",
		r.Requested, r.Established, r.SetupFailed, r.Dropped, r.Terminated, endFailures,
		r.SetupSeconds, r.SetupRate, before, after, delta, perSession, stack, chat, transportName(r.Transport))
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

// transportName is t, or bosh for results written before --transport.
func transportName(t string) string {
	if t == "" {
		return transportBOSH
	}
	return t
}
