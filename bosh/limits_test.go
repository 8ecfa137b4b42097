package bosh

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/boshd/boshd/config"
)

func TestParseProxies(t *testing.T) {
	for _, tc := range []struct {
		list []string
		want string // the prefixes, space-separated, or "error"
	}{
		{nil, ""},
		{[]string{"127.0.0.1"}, "127.0.0.1/32"},
		{[]string{"10.1.2.3/8", "::1", "2001:db8::/32"}, "10.0.0.0/8 ::1/128 2001:db8::/32"},
		{[]string{"::ffff:192.0.2.0/120"}, "192.0.2.0/24"},
		{[]string{"::ffff:192.0.2.1"}, "192.0.2.1/32"},
		{[]string{"proxy.example.org"}, "error"},
		{[]string{"127.0.0.1:80"}, "error"},
		{[]string{"10.0.0.0/33"}, "error"},
	} {
		p, err := parseProxies(tc.list)
		if tc.want == "error" {
			if err == nil {
				t.Errorf("parseProxies(%q) = %v, want an error", tc.list, p)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseProxies(%q): %v", tc.list, err)
			continue
		}
		var got []string
		for _, prefix := range p {
			got = append(got, prefix.String())
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("parseProxies(%q) = %q, want %q", tc.list, got, tc.want)
		}
	}
}

func TestClientIPTrustedProxies(t *testing.T) {
	proxies, err := parseProxies([]string{"127.0.0.1", "10.0.0.0/8", "2001:db8::/32"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		remote string
		xff    []string // X-Forwarded-For headers, in order
		want   string
	}{
		{"untrusted peer's header ignored", "192.0.2.1:5000", []string{"203.0.113.9"}, "192.0.2.1"},
		{"trusted peer without header", "127.0.0.1:5000", nil, "127.0.0.1"},
		{"trusted peer, one hop", "127.0.0.1:5000", []string{"203.0.113.9"}, "203.0.113.9"},
		{"client's own entry ignored", "127.0.0.1:5000", []string{"198.51.100.7, 203.0.113.9"}, "203.0.113.9"},
		{"chain of trusted proxies", "127.0.0.1:5000", []string{"198.51.100.7, 203.0.113.9, 10.1.1.1, 10.2.2.2"}, "203.0.113.9"},
		{"several headers in order", "127.0.0.1:5000", []string{"198.51.100.7, 203.0.113.9", "10.1.1.1"}, "203.0.113.9"},
		{"all trusted: left-most", "127.0.0.1:5000", []string{"10.1.1.1, 10.2.2.2"}, "10.1.1.1"},
		{"garbage stops at the proxy that wrote it", "127.0.0.1:5000", []string{"203.0.113.9, unknown"}, "127.0.0.1"},
		{"garbage left of the client ignored", "127.0.0.1:5000", []string{"unknown, 203.0.113.9"}, "203.0.113.9"},
		{"entry with a port", "127.0.0.1:5000", []string{"203.0.113.9:4711"}, "203.0.113.9"},
		{"IPv6 entry with a port", "127.0.0.1:5000", []string{"[2001:db9::1]:4711"}, "2001:db9::1"},
		{"IPv6 entry in brackets", "127.0.0.1:5000", []string{"[2001:db9::1]"}, "2001:db9::1"},
		{"IPv6 trusted peer", "[2001:db8::5]:443", []string{"2001:db9::1"}, "2001:db9::1"},
		{"mapped trusted peer", "[::ffff:127.0.0.1]:80", []string{"::ffff:203.0.113.9"}, "203.0.113.9"},
		{"empty entries skipped as garbage", "127.0.0.1:5000", []string{""}, "127.0.0.1"},
		{"peer without port", "127.0.0.1", []string{"203.0.113.9"}, "203.0.113.9"},
		{"peer not an IP", "pipe", []string{"203.0.113.9"}, "pipe"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := clientIP(r, proxies); got != tc.want {
				t.Errorf("clientIP(RemoteAddr %q, X-Forwarded-For %q) = %q, want %q", tc.remote, tc.xff, got, tc.want)
			}
			if got, want := clientIP(r, nil), clientIP(r, proxyList{}); got != want {
				t.Errorf("nil and empty proxy lists differ: %q, %q", got, want)
			}
		})
	}
}

// TestSessionLimitsBehindProxy checks that max_sessions_per_ip counts the
// client address a trusted proxy forwards, not the proxy's, and that a
// forged X-Forwarded-For gets no fresh quota; the address is logged with
// the session.
func TestSessionLimitsBehindProxy(t *testing.T) {
	var logs syncBuffer
	_, h := startHandler(t, func(cfg *config.Config) {
		cfg.MaxSessionsPerIP = 1
		cfg.TrustedProxies = []string{"127.0.0.1"} // the test client is the proxy
	}, &logs)
	srv := serve(t, h)
	create := func(xff string) string {
		t.Helper()
		header := map[string]string{"X-Forwarded-For": xff, "Content-Type": "text/xml; charset=utf-8"}
		resp, body := do(t, srv.Client(), "POST", srv.URL, header, []byte(sprintf(creationBody, 100, 5)))
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		a := attrs(string(body))
		if a["type"] == "terminate" {
			return a["condition"]
		}
		return "ok"
	}
	if got := create("203.0.113.1"); got != "ok" {
		t.Fatalf("first session of 203.0.113.1: %s", got)
	}
	if got := create("203.0.113.2"); got != "ok" {
		t.Fatalf("first session of 203.0.113.2: %s (counted as the proxy's?)", got)
	}
	if got := create("203.0.113.1"); got != "policy-violation" {
		t.Fatalf("second session of 203.0.113.1: %s, want policy-violation", got)
	}
	// The client forges an entry; the proxy appends the real address.
	if got := create("198.51.100.7, 203.0.113.2"); got != "policy-violation" {
		t.Fatalf("second session of 203.0.113.2 with a forged entry: %s, want policy-violation", got)
	}
	out := logs.String()
	for _, want := range []string{"ip=203.0.113.1", "ip=203.0.113.2"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "198.51.100.7") {
		t.Errorf("the forged address was logged:\n%s", out)
	}
}
