package config

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	const ca = "testdata/ca.pem"
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	token, blankToken := filepath.Join(t.TempDir(), "token"), filepath.Join(t.TempDir(), "blank")
	if err := os.WriteFile(token, []byte("0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(blankToken, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		modify func(*Config)
		want   []string // substrings of the error; none if valid
	}{
		{"listen without port", func(c *Config) { c.Listen = "localhost" }, []string{"config: listen: ", `"localhost"`}},
		{"listen with named port", func(c *Config) { c.Listen = "127.0.0.1:http" }, []string{"config: listen: "}},
		{"listen port too high", func(c *Config) { c.Listen = "127.0.0.1:65536" }, []string{"config: listen: "}},
		{"listen on any port", func(c *Config) { c.Listen = ":0" }, nil},
		{"listen on IPv6", func(c *Config) { c.Listen = "[::1]:5280" }, nil},

		{"path relative", func(c *Config) { c.Path = "http-bind" }, []string{"config: path: ", `"http-bind"`}},
		{"path empty", func(c *Config) { c.Path = "" }, []string{"config: path: "}},

		{"upstreams nil", func(c *Config) { c.Upstreams = nil }, []string{"config: upstreams: "}},
		{"upstreams empty", func(c *Config) { c.Upstreams = map[string]string{} }, []string{"config: upstreams: "}},
		{"domain empty", func(c *Config) { c.Upstreams = map[string]string{"": "127.0.0.1:5222"} }, []string{"config: upstreams: "}},
		{"domain not normalised", func(c *Config) { c.Upstreams = map[string]string{"Example.ORG": ""} }, []string{"config: upstreams: ", `"Example.ORG"`, `"example.org"`}},
		{"domain with dot", func(c *Config) { c.Upstreams = map[string]string{"example.org.": ""} }, []string{"config: upstreams: ", `"example.org."`}},
		{"domain with local part", func(c *Config) { c.Upstreams = map[string]string{"user@example.org": ""} }, []string{"config: upstreams: ", `"user@example.org"`}},
		{"domain with resource", func(c *Config) { c.Upstreams = map[string]string{"example.org/bosh": ""} }, []string{"config: upstreams: ", `"example.org/bosh"`}},
		{"domain invalid", func(c *Config) { c.Upstreams = map[string]string{"exa mple.org": ""} }, []string{"config: upstreams: ", `"exa mple.org"`}},
		{"domain IDN", func(c *Config) { c.Upstreams = map[string]string{"bücher.example": ""} }, nil},
		{"address without port", func(c *Config) { c.Upstreams = map[string]string{"example.org": "10.0.0.1"} }, []string{"config: upstreams: ", `"10.0.0.1"`}},
		{"address port zero", func(c *Config) { c.Upstreams = map[string]string{"example.org": "10.0.0.1:0"} }, []string{"config: upstreams: ", `"10.0.0.1:0"`}},
		{"address named port", func(c *Config) { c.Upstreams = map[string]string{"example.org": "10.0.0.1:xmpp-client"} }, []string{"config: upstreams: "}},
		{"address without host", func(c *Config) { c.Upstreams = map[string]string{"example.org": ":5222"} }, []string{"config: upstreams: "}},
		{"address SRV and IPv6", func(c *Config) {
			c.Upstreams = map[string]string{"example.org": "", "example.net": "[2001:db8::1]:5222"}
		}, nil},

		{"prebind on admin_listen", func(c *Config) { c.PrebindTokenFile, c.AdminListen = token, "127.0.0.1:5282" }, nil},
		{"prebind on its own loopback listener", func(c *Config) { c.PrebindTokenFile, c.PrebindListen = token, "[::1]:5283" }, nil},
		{"prebind without listener", func(c *Config) { c.PrebindTokenFile = token }, []string{"config: prebind_token_file: ", "admin_listen or prebind_listen"}},
		{"prebind token file missing", func(c *Config) { c.PrebindTokenFile, c.AdminListen = token+".missing", "127.0.0.1:5282" }, []string{"config: prebind_token_file: ", token + ".missing"}},
		{"prebind token file blank", func(c *Config) { c.PrebindTokenFile, c.AdminListen = blankToken, "127.0.0.1:5282" }, []string{"config: prebind_token_file: ", "no token"}},
		{"prebind_listen without token", func(c *Config) { c.PrebindListen = "127.0.0.1:5283" }, []string{"config: prebind_token_file: ", "prebind_listen"}},
		{"prebind on a public admin_listen", func(c *Config) { c.PrebindTokenFile, c.AdminListen = token, "0.0.0.0:5282" }, []string{"config: prebind_token_file: ", `admin_listen "0.0.0.0:5282"`, "prebind_insecure"}},
		{"prebind on a public prebind_listen", func(c *Config) {
			c.PrebindTokenFile, c.AdminListen, c.PrebindListen = token, "127.0.0.1:5282", "192.0.2.1:5283"
		}, []string{"config: prebind_token_file: ", `prebind_listen "192.0.2.1:5283"`, "prebind_insecure"}},
		{"prebind on any address", func(c *Config) { c.PrebindTokenFile, c.PrebindListen = token, ":5283" }, []string{"config: prebind_token_file: ", "prebind_insecure"}},
		{"prebind public, allowed", func(c *Config) {
			c.PrebindTokenFile, c.PrebindListen, c.PrebindInsecure = token, "192.0.2.1:5283", true
		}, nil},
		{"prebind_attach_timeout zero", func(c *Config) { c.PrebindAttachTimeout = 0 }, []string{"config: prebind_attach_timeout: "}},

		{"upstream_tls unknown", func(c *Config) { c.UpstreamTLS = "tls" }, []string{"config: upstream_tls: ", `"tls"`}},
		{"upstream_tls required", func(c *Config) { c.UpstreamTLS = "required" }, nil},
		{"plaintext on loopback", func(c *Config) {
			c.UpstreamTLS = "plaintext"
			c.Upstreams = map[string]string{"a.example": "127.0.0.1:5222", "b.example": "[::1]:5222", "c.example": "localhost:5222"}
			c.RouteAllow = []string{"xmpp:127.0.0.2:5222"}
		}, nil},
		{"plaintext elsewhere", func(c *Config) {
			c.UpstreamTLS = "plaintext"
			c.Upstreams = map[string]string{"example.org": "10.0.0.1:5222"}
		}, []string{"config: upstreams: ", "upstream_tls", `"10.0.0.1:5222"`}},
		{"plaintext with SRV", func(c *Config) {
			c.UpstreamTLS = "plaintext"
			c.Upstreams = map[string]string{"example.org": ""}
		}, []string{"config: upstreams: ", "upstream_tls", "example.org"}},
		{"plaintext route elsewhere", func(c *Config) {
			c.UpstreamTLS = "plaintext"
			c.RouteAllow = []string{"xmpp:example.org:5222"}
		}, []string{"config: route_allow: ", "upstream_tls", `"xmpp:example.org:5222"`}},

		{"upstream_ca_file valid", func(c *Config) { c.UpstreamCAFile = ca }, nil},
		{"upstream_ca_file missing", func(c *Config) { c.UpstreamCAFile = ca + ".missing" }, []string{"config: upstream_ca_file: ", ca + ".missing"}},
		{"upstream_ca_file not PEM", func(c *Config) { c.UpstreamCAFile = notPEM }, []string{"config: upstream_ca_file: ", notPEM}},

		{"route_allow valid", func(c *Config) { c.RouteAllow = []string{"xmpp:example.org:5222", "xmpp:[2001:db8::1]:5269"} }, nil},
		{"route_allow without scheme", func(c *Config) { c.RouteAllow = []string{"example.org:5222"} }, []string{"config: route_allow: ", `"example.org:5222"`}},
		{"route_allow other scheme", func(c *Config) { c.RouteAllow = []string{"http:example.org:5222"} }, []string{"config: route_allow: "}},
		{"route_allow without port", func(c *Config) { c.RouteAllow = []string{"xmpp:example.org"} }, []string{"config: route_allow: ", `"xmpp:example.org"`}},
		{"route_allow without host", func(c *Config) { c.RouteAllow = []string{"xmpp::5222"} }, []string{"config: route_allow: "}},

		{"cors_origins valid", func(c *Config) {
			c.CORSOrigins = []string{"*", "https://chat.example.org", "http://localhost:8080", "https://[2001:db8::1]:8443", "moz-extension://abc"}
		}, nil},
		{"cors_origins trailing slash", func(c *Config) { c.CORSOrigins = []string{"https://chat.example.org/"} }, []string{"config: cors_origins: ", `"https://chat.example.org/"`}},
		{"cors_origins path", func(c *Config) { c.CORSOrigins = []string{"https://chat.example.org/app"} }, []string{"config: cors_origins: ", `"https://chat.example.org/app"`}},
		{"cors_origins query", func(c *Config) { c.CORSOrigins = []string{"https://chat.example.org?x"} }, []string{"config: cors_origins: "}},
		{"cors_origins fragment", func(c *Config) { c.CORSOrigins = []string{"https://chat.example.org#x"} }, []string{"config: cors_origins: "}},
		{"cors_origins user", func(c *Config) { c.CORSOrigins = []string{"https://me@chat.example.org"} }, []string{"config: cors_origins: "}},
		{"cors_origins without scheme", func(c *Config) { c.CORSOrigins = []string{"chat.example.org"} }, []string{"config: cors_origins: ", `"chat.example.org"`}},
		{"cors_origins host and port only", func(c *Config) { c.CORSOrigins = []string{"chat.example.org:443"} }, []string{"config: cors_origins: "}},
		{"cors_origins without host", func(c *Config) { c.CORSOrigins = []string{"https://"} }, []string{"config: cors_origins: "}},
		{"cors_origins empty", func(c *Config) { c.CORSOrigins = []string{""} }, []string{"config: cors_origins: "}},
		{"cors_origins wildcard subdomain", func(c *Config) { c.CORSOrigins = []string{"https://*.example.org"} }, []string{"config: cors_origins: ", "wildcard"}},
		{"cors_origins empty port", func(c *Config) { c.CORSOrigins = []string{"https://chat.example.org:"} }, []string{"config: cors_origins: ", "port"}},
		{"cors_origins port zero", func(c *Config) { c.CORSOrigins = []string{"https://chat.example.org:0"} }, []string{"config: cors_origins: ", "port"}},
		{"cors_origins port too high", func(c *Config) { c.CORSOrigins = []string{"https://chat.example.org:65536"} }, []string{"config: cors_origins: ", "port"}},
		{"cors_origins null", func(c *Config) { c.CORSOrigins = []string{"null"} }, []string{"config: cors_origins: ", `"null"`}},

		{"public_url valid", func(c *Config) { c.PublicURL = "https://chat.example.org/http-bind" }, nil},
		{"public_url http with port", func(c *Config) { c.PublicURL = "http://127.0.0.1:5280/http-bind" }, nil},
		{"public_url relative", func(c *Config) { c.PublicURL = "/http-bind" }, []string{"config: public_url: ", `"/http-bind"`}},
		{"public_url other scheme", func(c *Config) { c.PublicURL = "wss://chat.example.org/xmpp" }, []string{"config: public_url: ", `"wss://chat.example.org/xmpp"`}},
		{"public_url without host", func(c *Config) { c.PublicURL = "https:///http-bind" }, []string{"config: public_url: "}},
		{"public_url query", func(c *Config) { c.PublicURL = "https://chat.example.org/http-bind?x=1" }, []string{"config: public_url: ", "query"}},
		{"public_url fragment", func(c *Config) { c.PublicURL = "https://chat.example.org/http-bind#x" }, []string{"config: public_url: "}},

		{"trusted_proxies valid", func(c *Config) { c.TrustedProxies = []string{"127.0.0.1", "10.0.0.0/8", "::1", "2001:db8::/32"} }, nil},
		{"trusted_proxies host name", func(c *Config) { c.TrustedProxies = []string{"proxy.example.org"} }, []string{"config: trusted_proxies: ", `"proxy.example.org"`}},
		{"trusted_proxies bad prefix", func(c *Config) { c.TrustedProxies = []string{"10.0.0.0/33"} }, []string{"config: trusted_proxies: ", `"10.0.0.0/33"`}},
		{"trusted_proxies with port", func(c *Config) { c.TrustedProxies = []string{"127.0.0.1:80"} }, []string{"config: trusted_proxies: ", `"127.0.0.1:80"`}},

		{"static_dir valid", func(c *Config) { c.StaticDir = filepath.Dir(ca) }, nil},
		{"static_dir missing", func(c *Config) { c.StaticDir = ca + ".missing" }, []string{"config: static_dir: ", ca + ".missing"}},
		{"static_dir a file", func(c *Config) { c.StaticDir = ca }, []string{"config: static_dir: ", "not a directory"}},

		{"connect_timeout zero", func(c *Config) { c.ConnectTimeout = 0 }, []string{"config: connect_timeout: ", `"0s"`}},
		{"upstream_write_timeout negative", func(c *Config) { c.UpstreamWriteTimeout = -time.Second }, []string{"config: upstream_write_timeout: ", `"-1s"`}},
		{"max_wait zero", func(c *Config) { c.MaxWait = 0 }, []string{`config: max_wait: must be between 1s and 1h, got "0s"`}},
		{"max_wait too long", func(c *Config) { c.MaxWait = time.Hour + time.Second }, []string{"config: max_wait: ", `"1h0m1s"`}},
		{"max_wait limits", func(c *Config) { c.MaxWait = time.Hour; c.Inactivity = time.Second }, nil},
		{"max_hold zero", func(c *Config) { c.MaxHold = 0 }, []string{"config: max_hold: ", "got 0"}},
		{"max_hold too high", func(c *Config) { c.MaxHold = 11 }, []string{"config: max_hold: ", "got 11"}},
		{"max_hold limit", func(c *Config) { c.MaxHold = 10 }, nil},
		{"inactivity too short", func(c *Config) { c.Inactivity = 999 * time.Millisecond }, []string{"config: inactivity: ", `"999ms"`}},
		{"polling negative", func(c *Config) { c.Polling = -1 }, []string{"config: polling: ", `"-1ns"`}},
		{"polling zero", func(c *Config) { c.Polling = 0 }, nil},
		{"max_pause negative", func(c *Config) { c.MaxPause = -time.Second }, []string{"config: max_pause: ", `"-1s"`}},
		{"max_pause zero", func(c *Config) { c.MaxPause = 0 }, nil},
		{"max_body_size too small", func(c *Config) { c.MaxBodySize = 1023 }, []string{"config: max_body_size: ", "got 1023"}},
		{"max_body_size too large", func(c *Config) { c.MaxBodySize = 64<<20 + 1; c.MaxQueueBytes = 128 << 20 }, []string{"config: max_body_size: ", "got 67108865"}},
		{"max_body_size limits", func(c *Config) { c.MaxBodySize = 1024; c.MaxQueueBytes = 1024 }, nil},
		{"max_queue_bytes below max_body_size", func(c *Config) { c.MaxQueueBytes = c.MaxBodySize - 1 }, []string{"config: max_queue_bytes: ", "got 1048575"}},
		{"max_sessions negative", func(c *Config) { c.MaxSessions = -1 }, []string{"config: max_sessions: ", "got -1"}},
		{"websocket_path relative", func(c *Config) { c.WebSocketPath = "xmpp-websocket" }, []string{"config: websocket_path: ", `must start with "/"`}},
		{"websocket_path is path", func(c *Config) { c.WebSocketPath = c.Path }, []string{"config: websocket_path: ", "must differ from path"}},
		{"websocket_path pattern", func(c *Config) { c.WebSocketPath = "/ws/{id}" }, []string{"config: websocket_path: ", "plain path"}},
		{"websocket_path host-meta", func(c *Config) { c.WebSocketPath = "/.well-known/host-meta" }, []string{"config: websocket_path: ", "outside /.well-known/"}},
		{"public_websocket_url https", func(c *Config) { c.PublicWebSocketURL = "https://chat.example.org/xmpp-websocket" }, []string{"config: public_websocket_url: ", "ws:// or wss://"}},
		{"websocket_ping_interval under a second", func(c *Config) { c.WebSocketPingInterval = 500 * time.Millisecond }, []string{"config: websocket_ping_interval: ", "at least 1s"}},
		{"websocket_max_message_size small", func(c *Config) { c.WebSocketMaxMessageSize = 10 }, []string{"config: websocket_max_message_size: "}},
		{"max_sessions_per_ip negative", func(c *Config) { c.MaxSessionsPerIP = -5 }, []string{"config: max_sessions_per_ip: ", "got -5"}},
		{"max_conns_per_ip negative", func(c *Config) { c.MaxConnsPerIP = -1 }, []string{"config: max_conns_per_ip: ", "got -1"}},
		{"max_conns_per_ip off", func(c *Config) { c.MaxConnsPerIP = 0 }, nil},
		{"tls_cert_file without key", func(c *Config) { c.TLSCertFile = "cert.pem" }, []string{"config: tls_cert_file: ", "set together"}},
		{"tls files missing", func(c *Config) { c.TLSCertFile, c.TLSKeyFile = "/nonexistent/cert.pem", "/nonexistent/key.pem" }, []string{"config: tls_cert_file: "}},
		{"max_element_depth too small", func(c *Config) { c.MaxElementDepth = 2 }, []string{"config: max_element_depth: ", "got 2"}},
		{"admin_listen not host:port", func(c *Config) { c.AdminListen = "5282" }, []string{"config: admin_listen: ", `got "5282"`}},
		{"agent_listen not host:port", func(c *Config) { c.AgentListen = "5283" }, []string{"config: agent_listen: ", `got "5283"`}},
		{"session limits off", func(c *Config) { c.MaxSessions = 0; c.MaxSessionsPerIP = 0 }, nil},
		{"log_level unknown", func(c *Config) { c.LogLevel = "trace" }, []string{"config: log_level: ", `"trace"`}},
		{"log_level upper case", func(c *Config) { c.LogLevel = "INFO" }, []string{"config: log_level: ", `"INFO"`}},
		{"log_format unknown", func(c *Config) { c.LogFormat = "logfmt" }, []string{"config: log_format: ", `"logfmt"`}},
		{"shutdown_timeout zero", func(c *Config) { c.ShutdownTimeout = 0 }, []string{"config: shutdown_timeout: ", `"0s"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := Default()
			tc.modify(&c)
			err := c.Validate()
			if tc.want == nil {
				if err != nil {
					t.Errorf("Validate() = %v, want nil", err)
				}
				return
			}
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v, want an error containing %q", err, w)
				}
			}
		})
	}
}

func TestValidateReportsAll(t *testing.T) {
	t.Parallel()
	c := Default()
	c.Listen = ""
	c.MaxWait = 0
	c.LogLevel = ""
	c.Upstreams = map[string]string{"a.example": "x", "b.example": "y"}
	var got []string
	for _, err := range split(c.Validate()) {
		got = append(got, err.Error())
	}
	want := []string{
		`config: listen: must be host:port with a port 0-65535, got ""`,
		`config: upstreams: a.example: address must be empty (DNS SRV) or host:port with a port 1-65535, got "x"`,
		`config: upstreams: b.example: address must be empty (DNS SRV) or host:port with a port 1-65535, got "y"`,
		`config: max_wait: must be between 1s and 1h, got "0s"`,
		`config: log_level: must be debug, info, warn or error, got ""`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("Validate() =\n%s\nwant, in the order of the keys,\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestSlogLevel(t *testing.T) {
	t.Parallel()
	for level, want := range map[string]slog.Level{
		"debug": slog.LevelDebug,
		"info":  slog.LevelInfo,
		"warn":  slog.LevelWarn,
		"error": slog.LevelError,
		"":      slog.LevelInfo,
	} {
		if got := (Config{LogLevel: level}).SlogLevel(); got != want {
			t.Errorf("SlogLevel() with log_level %q = %v, want %v", level, got, want)
		}
	}
}
