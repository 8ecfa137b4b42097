package main

import (
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestParseLoopbackURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url       string
		transport string // "": bosh
		ok        bool
	}{
		{"http://127.0.0.1:5280/http-bind", "", true},
		{"http://127.1.2.3/http-bind", "", true},
		{"https://localhost:5281/http-bind", "", true},
		{"http://LocalHost/", "", true},
		{"http://[::1]:5280/http-bind", "", true},
		{"http://[::ffff:127.0.0.1]:5280/", "", true},
		{"http://10.0.0.1:5280/http-bind", "", false},
		{"http://128.0.0.1/", "", false},
		{"http://example.org/http-bind", "", false},
		{"http://localhost.example.org/", "", false},
		{"http://[fe80::1%25lo]/", "", false},
		{"http://0.0.0.0:5280/", "", false},
		{"http://[::]:5280/", "", false},
		{"ftp://127.0.0.1/", "", false},
		{"127.0.0.1:5280/http-bind", "", false},
		{"http://user:pw@127.0.0.1/", "", false},
		{"http://%zz/", "", false},
		{"ws://127.0.0.1:5280/xmpp-websocket", transportWebSocket, true},
		{"wss://localhost:5281/xmpp-websocket", transportWebSocket, true},
		{"ws://[::1]/xmpp-websocket", transportWebSocket, true},
		{"ws://10.0.0.1/xmpp-websocket", transportWebSocket, false},
		{"http://127.0.0.1:5280/xmpp-websocket", transportWebSocket, false},
		{"ws://127.0.0.1:5280/http-bind", "", false},
		{"wss://127.0.0.1/", "", false},
	} {
		transport := tc.transport
		if transport == "" {
			transport = transportBOSH
		}
		_, err := parseLoopbackURL(tc.url, transport)
		if (err == nil) != tc.ok {
			t.Errorf("parseLoopbackURL(%q, %s): err = %v, want ok = %v", tc.url, transport, err, tc.ok)
		}
	}
}

func TestParseFlagsDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.wait != defaultWait || cfg.sessions != 100 || cfg.duration != time.Minute || cfg.loginUser != "" ||
		!cfg.terminate || cfg.settle != defaultSettle || len(cfg.sources) != 0 {
		t.Errorf("defaults: %+v", cfg)
	}
	if n := len(newRunner(cfg, io.Discard).dials); n != 1 {
		t.Errorf("%d dialers without --sources, want 1", n)
	}
}

func TestParseFlags(t *testing.T) {
	t.Parallel()
	cfg, err := parseFlags([]string{
		"--url", "http://127.0.0.1:1/b", "--domain", "example.test", "--sessions", "7", "--rate", "2.5",
		"--duration", "3s", "--wait", "5", "--login", "u%d:secret", "--sources", "127.0.0.2, 127.0.0.3",
		"--pid", "42", "--json", "out.json", "--settle", "0s",
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.url.Host != "127.0.0.1:1" || cfg.domain != "example.test" || cfg.sessions != 7 || cfg.rate != 2.5 ||
		cfg.duration != 3*time.Second || cfg.wait != 5 || cfg.pid != 42 || cfg.jsonPath != "out.json" || cfg.settle != 0 {
		t.Errorf("parsed: %+v", cfg)
	}
	if got := cfg.userName(12); got != "u12" || cfg.loginPass != "secret" {
		t.Errorf("login: user %q, password %q", got, cfg.loginPass)
	}
	want := []netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")}
	if len(cfg.sources) != 2 || cfg.sources[0] != want[0] || cfg.sources[1] != want[1] {
		t.Errorf("sources = %v, want %v", cfg.sources, want)
	}
	// One dialer per source; session i uses dialer i mod 2.
	if n := len(newRunner(cfg, io.Discard).dials); n != 2 {
		t.Errorf("%d dialers for two sources, want 2", n)
	}
}

func TestParseFlagsWebSocket(t *testing.T) {
	t.Parallel()
	cfg, err := parseFlags([]string{"--transport", "websocket"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.transport != transportWebSocket || cfg.url.String() != defaultWebSocketURL {
		t.Errorf("transport %q, url %v; want websocket, %s", cfg.transport, cfg.url, defaultWebSocketURL)
	}
	cfg, err = parseFlags([]string{"--transport", "websocket", "--url", "wss://127.0.0.1:9/ws", "--login", "u%d:pw", "--pairs", "2", "--sessions", "4"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.url.Scheme != "wss" || cfg.pairs != 2 {
		t.Errorf("parsed: %+v", cfg)
	}
	if cfg, err := parseFlags(nil, io.Discard); err != nil || cfg.transport != transportBOSH || cfg.url.String() != defaultBOSHURL {
		t.Errorf("without --transport: %+v, %v; want bosh at %s", cfg, err, defaultBOSHURL)
	}
}

func TestParseFlagsRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string // in the error
	}{
		{[]string{"--url", "http://192.168.1.1/http-bind"}, "--url"},
		{[]string{"--sessions", "0"}, "--sessions"},
		{[]string{"--sessions", "200001"}, "--sessions"},
		{[]string{"--rate", "0"}, "--rate"},
		{[]string{"--rate", "NaN"}, "--rate"},
		{[]string{"--rate", "1e9"}, "--rate"},
		{[]string{"--duration", "0s"}, "--duration"},
		{[]string{"--duration", "3h"}, "--duration"},
		{[]string{"--wait", "0"}, "--wait"},
		{[]string{"--login", "user:password"}, "--login"},
		{[]string{"--login", "user%d"}, "--login"},
		{[]string{"--login", "user%d%s:password"}, "--login"},
		{[]string{"--login", "user%d@host:password"}, "--login"},
		{[]string{"--sources", "127.0.0.2,10.1.1.1"}, "--sources"},
		{[]string{"--sources", "nonsense"}, "--sources"},
		{[]string{"--pid", "-1"}, "--pid"},
		{[]string{"--max-setup", "0"}, "--max-setup"},
		{[]string{"--domain", "a@b"}, "--domain"},
		{[]string{"extra"}, "unexpected"},
		{[]string{"--transport", "xmpp"}, "--transport"},
		{[]string{"--transport", "websocket", "--url", "http://127.0.0.1/http-bind"}, "--url"},
		{[]string{"--transport", "websocket", "--poll", "--hold", "0"}, "--hold is BOSH only"},
		{[]string{"--transport", "websocket", "--poll"}, "--poll is BOSH only"},
		{[]string{"--url", "ws://127.0.0.1/xmpp-websocket"}, "--url"},
		{[]string{"--relogin", "-1"}, "--relogin"},
		{[]string{"--relogin", "101", "--login", "u%d:p", "--pairs", "1"}, "--relogin"},
		{[]string{"--relogin", "1"}, "--relogin needs --pairs"},
		{[]string{"--transport", "websocket", "--relogin", "1", "--login", "u%d:p", "--pairs", "1"}, "--relogin is BOSH only"},
	} {
		_, err := parseFlags(tc.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseFlags(%q): err = %v, want one mentioning %q", tc.args, err, tc.want)
		}
	}
}

func TestParseFlagsHelp(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	_, err := parseFlags([]string{"-h"}, &out)
	if !isHelp(err) {
		t.Fatalf("err = %v, want flag.ErrHelp", err)
	}
	if !strings.Contains(out.String(), "--sessions") && !strings.Contains(out.String(), "-sessions") {
		t.Errorf("usage does not list -sessions:\n%s", out.String())
	}
}
