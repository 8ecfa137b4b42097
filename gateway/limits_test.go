package gateway

import (
	"net/http/httptest"
	"strings"
	"testing"
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
		name    string
		remote  string
		xff     []string // X-Forwarded-For headers, in order
		want    string
		ignored bool // the header is ignored: its sender is not trusted
	}{
		{"untrusted peer's header ignored", "192.0.2.1:5000", []string{"203.0.113.9"}, "192.0.2.1", true},
		{"untrusted peer's empty header ignored", "192.0.2.1:5000", []string{""}, "192.0.2.1", true},
		{"untrusted peer without header", "192.0.2.1:5000", nil, "192.0.2.1", false},
		{"trusted peer without header", "127.0.0.1:5000", nil, "127.0.0.1", false},
		{"trusted peer, one hop", "127.0.0.1:5000", []string{"203.0.113.9"}, "203.0.113.9", false},
		{"client's own entry ignored", "127.0.0.1:5000", []string{"198.51.100.7, 203.0.113.9"}, "203.0.113.9", false},
		{"chain of trusted proxies", "127.0.0.1:5000", []string{"198.51.100.7, 203.0.113.9, 10.1.1.1, 10.2.2.2"}, "203.0.113.9", false},
		{"several headers in order", "127.0.0.1:5000", []string{"198.51.100.7, 203.0.113.9", "10.1.1.1"}, "203.0.113.9", false},
		{"all trusted: left-most", "127.0.0.1:5000", []string{"10.1.1.1, 10.2.2.2"}, "10.1.1.1", false},
		{"garbage stops at the proxy that wrote it", "127.0.0.1:5000", []string{"203.0.113.9, unknown"}, "127.0.0.1", false},
		{"garbage left of the client ignored", "127.0.0.1:5000", []string{"unknown, 203.0.113.9"}, "203.0.113.9", false},
		{"entry with a port", "127.0.0.1:5000", []string{"203.0.113.9:4711"}, "203.0.113.9", false},
		{"IPv6 entry with a port", "127.0.0.1:5000", []string{"[2001:db9::1]:4711"}, "2001:db9::1", false},
		{"IPv6 entry in brackets", "127.0.0.1:5000", []string{"[2001:db9::1]"}, "2001:db9::1", false},
		{"IPv6 trusted peer", "[2001:db8::5]:443", []string{"2001:db9::1"}, "2001:db9::1", false},
		{"mapped trusted peer", "[::ffff:127.0.0.1]:80", []string{"::ffff:203.0.113.9"}, "203.0.113.9", false},
		{"empty entries skipped as garbage", "127.0.0.1:5000", []string{""}, "127.0.0.1", false},
		{"peer without port", "127.0.0.1", []string{"203.0.113.9"}, "203.0.113.9", false},
		{"peer not an IP", "pipe", []string{"203.0.113.9"}, "pipe", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got, ignored := clientIP(r, proxies); got != tc.want || ignored != tc.ignored {
				t.Errorf("clientIP(RemoteAddr %q, X-Forwarded-For %q) = %q, %v; want %q, %v", tc.remote, tc.xff, got, ignored, tc.want, tc.ignored)
			}
			got, gotIgnored := clientIP(r, nil)
			if want, wantIgnored := clientIP(r, proxyList{}); got != want || gotIgnored != wantIgnored {
				t.Errorf("nil and empty proxy lists differ: %q, %v; %q, %v", got, gotIgnored, want, wantIgnored)
			}
		})
	}
}

// TestClientIPLoopbackProxies checks the addresses counted when only the
// loopback proxies are trusted, the setting for a reverse proxy on the
// same host (and boshd's default): their X-Forwarded-For is believed
// however the peer's address is written, anyone else's ignored.
func TestClientIPLoopbackProxies(t *testing.T) {
	proxies, err := parseProxies([]string{"127.0.0.1", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		remote, xff string
		want        string
		ignored     bool
	}{
		{"127.0.0.1:40000", "203.0.113.9", "203.0.113.9", false},
		{"[::1]:40000", "203.0.113.9", "203.0.113.9", false},
		{"[::1]:40000", "2001:db8::7", "2001:db8::7", false},
		{"[::ffff:127.0.0.1]:40000", "203.0.113.9", "203.0.113.9", false},
		{"[0:0:0:0:0:0:0:1]:40000", "203.0.113.9", "203.0.113.9", false},
		{"127.0.0.1:40000", "", "127.0.0.1", false}, // header absent
		{"127.0.0.2:40000", "203.0.113.9", "127.0.0.2", true},
		{"[::ffff:127.0.0.2]:40000", "203.0.113.9", "127.0.0.2", true},
		{"[::2]:40000", "203.0.113.9", "::2", true},
		{"192.0.2.1:40000", "203.0.113.9", "192.0.2.1", true},
		{"192.0.2.1:40000", "", "192.0.2.1", false},
	} {
		r := httptest.NewRequest("POST", "/", nil)
		r.RemoteAddr = tc.remote
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got, ignored := clientIP(r, proxies); got != tc.want || ignored != tc.ignored {
			t.Errorf("clientIP(RemoteAddr %q, X-Forwarded-For %q) = %q, %v; want %q, %v", tc.remote, tc.xff, got, ignored, tc.want, tc.ignored)
		}
	}
}

func TestClientIP(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ remote, want string }{
		{"192.0.2.1:5000", "192.0.2.1"},
		{"[2001:db8::1]:443", "2001:db8::1"},
		{"[2001:0db8:0::1]:443", "2001:db8::1"},
		{"[::ffff:192.0.2.1]:80", "192.0.2.1"},
		{"192.0.2.1", "192.0.2.1"},
		{"pipe", "pipe"},
	} {
		r := httptest.NewRequest("POST", "/", nil)
		r.RemoteAddr = tc.remote
		r.Header.Set("X-Forwarded-For", "203.0.113.9") // not trusted yet
		if got, _ := clientIP(r, nil); got != tc.want {
			t.Errorf("clientIP with RemoteAddr %q = %q, want %q", tc.remote, got, tc.want)
		}
	}
}

func TestSessionLimitsCount(t *testing.T) {
	t.Parallel()
	// docs/CONFORMANCE.md#limits: the counts, per IP and in all.
	type step struct {
		ip      string
		release int // >= 0: release the slot taken at that step instead
		ok      bool
	}
	for _, tc := range []struct {
		name          string
		max, maxPerIP int
		steps         []step
	}{
		{"no limits", 0, 0, []step{{"a", -1, true}, {"a", -1, true}, {"b", -1, true}}},
		{"per IP", 0, 2, []step{{"a", -1, true}, {"a", -1, true}, {"a", -1, false}, {"b", -1, true}, {"", 0, true}, {"a", -1, true}, {"a", -1, false}}},
		{"total", 2, 0, []step{{"a", -1, true}, {"b", -1, true}, {"c", -1, false}, {"", 1, true}, {"c", -1, true}, {"a", -1, false}}},
		{"both", 3, 1, []step{{"a", -1, true}, {"a", -1, false}, {"b", -1, true}, {"c", -1, true}, {"d", -1, false}, {"", 0, true}, {"", 0, true}, {"d", -1, true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newSessionLimits(tc.max, tc.maxPerIP)
			releases := make([]func(), len(tc.steps))
			for i, s := range tc.steps {
				if s.release >= 0 {
					releases[s.release]() // twice counts once
					continue
				}
				release, err := l.acquire(s.ip)
				if (err == nil) != s.ok {
					t.Fatalf("step %d: acquire(%q) = %v, want ok %v", i, s.ip, err, s.ok)
				}
				if err == nil {
					releases[i] = release
				}
			}
			for _, release := range releases {
				if release != nil {
					release()
				}
			}
			if total, _ := l.counts(""); total != 0 || len(l.perIP) != 0 {
				t.Fatalf("after releasing all: total %d, per IP %v", total, l.perIP)
			}
		})
	}
}
