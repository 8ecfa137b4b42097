package bosh

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestCheckHop checks the signature of a hop against every change a
// forger or a replay could make: any signed field, the body, the time,
// the secret.
func TestCheckHop(t *testing.T) {
	t.Parallel()
	secret := []byte(strings.Repeat("k", 32))
	at := time.Unix(1_700_000_000, 0)
	body := []byte("<body rid='1' sid='n2.x' xmlns='http://jabber.org/protocol/httpbind'/>")
	signed := func() http.Header {
		h := make(http.Header)
		signHop(h, secret, &hop{from: "n1", client: "203.0.113.9", xff: "198.51.100.1, 203.0.113.9", tls: true}, at, body)
		return h
	}
	for _, tc := range []struct {
		name   string
		modify func(h http.Header) (now time.Time, body []byte, secret []byte)
		want   string // a substring of the error; "" for a hop that checks out
	}{
		{"as signed", func(h http.Header) (time.Time, []byte, []byte) { return at, body, secret }, ""},
		{"29s later", func(h http.Header) (time.Time, []byte, []byte) { return at.Add(29 * time.Second), body, secret }, ""},
		{"29s earlier", func(h http.Header) (time.Time, []byte, []byte) { return at.Add(-29 * time.Second), body, secret }, ""},
		{"replayed after 31s", func(h http.Header) (time.Time, []byte, []byte) { return at.Add(31 * time.Second), body, secret }, "more than 30s"},
		{"from the future", func(h http.Header) (time.Time, []byte, []byte) { return at.Add(-31 * time.Second), body, secret }, "more than 30s"},
		{"another body", func(h http.Header) (time.Time, []byte, []byte) {
			return at, []byte(strings.Replace(string(body), "rid='1'", "rid='2'", 1)), secret
		}, "bad signature"},
		{"another secret", func(h http.Header) (time.Time, []byte, []byte) {
			return at, body, []byte(strings.Repeat("j", 32))
		}, "bad signature"},
		{"no secret here", func(h http.Header) (time.Time, []byte, []byte) { return at, body, nil }, "no cluster_secret_file"},
		{"client changed", func(h http.Header) (time.Time, []byte, []byte) {
			h.Set(hopFor, "192.0.2.1")
			return at, body, secret
		}, "bad signature"},
		{"X-Forwarded-For changed", func(h http.Header) (time.Time, []byte, []byte) {
			h.Set("X-Forwarded-For", "192.0.2.1")
			return at, body, secret
		}, "bad signature"},
		{"X-Forwarded-For added to", func(h http.Header) (time.Time, []byte, []byte) {
			h.Add("X-Forwarded-For", "192.0.2.1")
			return at, body, secret
		}, "bad signature"},
		{"node changed", func(h http.Header) (time.Time, []byte, []byte) {
			h.Set(hopFrom, "n3")
			return at, body, secret
		}, "bad signature"},
		{"proto changed", func(h http.Header) (time.Time, []byte, []byte) {
			h.Set(hopProto, "http")
			return at, body, secret
		}, "bad signature"},
		{"time changed", func(h http.Header) (time.Time, []byte, []byte) {
			h.Set(hopTime, "1700000001")
			return at, body, secret
		}, "bad signature"},
		{"auth missing", func(h http.Header) (time.Time, []byte, []byte) {
			h.Del(hopAuth)
			return at, body, secret
		}, hopAuth},
		{"auth twice", func(h http.Header) (time.Time, []byte, []byte) {
			h.Add(hopAuth, h.Get(hopAuth))
			return at, body, secret
		}, hopAuth},
		{"auth not hex", func(h http.Header) (time.Time, []byte, []byte) {
			h.Set(hopAuth, "zz")
			return at, body, secret
		}, "not a hex"},
		{"proto unknown", func(h http.Header) (time.Time, []byte, []byte) {
			h.Set(hopProto, "gopher")
			return at, body, secret
		}, "want http or https"},
		{"time not a number", func(h http.Header) (time.Time, []byte, []byte) {
			h.Set(hopTime, "soon")
			return at, body, secret
		}, "not a number"},
		{"client address only", func(h http.Header) (time.Time, []byte, []byte) {
			for name := range h {
				delete(h, name)
			}
			h.Set(hopFor, "192.0.2.1")
			return at, body, secret
		}, hopFrom},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := signed()
			now, body, secret := tc.modify(h)
			got, err := checkHop(h, secret, now, body)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("checkHop: %v", err)
			case tc.want == "":
				want := hop{from: "n1", client: "203.0.113.9", xff: "198.51.100.1, 203.0.113.9", tls: true}
				if *got != want {
					t.Errorf("checkHop = %+v, want %+v", *got, want)
				}
			case err == nil || !strings.Contains(err.Error(), tc.want):
				t.Errorf("checkHop = %+v, %v; want an error containing %q", got, err, tc.want)
			}
		})
	}
}

// TestIsHop checks that any header of the hop's family makes a request a
// hop, whatever its case, and others do not.
func TestIsHop(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"boshd-forwarded-for": true,
		"BOSHD-FORWARD-AUTH":  true,
		"Boshd-Forwarded":     true,
		"Boshd-Forward-X":     true,
		"Boshd-Node":          false,
		"X-Forwarded-For":     false,
	} {
		h := make(http.Header)
		h.Set(name, "x")
		if got := isHop(h); got != want {
			t.Errorf("isHop(%s) = %v, want %v", name, got, want)
		}
	}
}
