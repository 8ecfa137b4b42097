package config

import (
	"reflect"
	"strings"
	"time"
)

// A Setting is one configuration key: its name, its default, what it
// means, whether a running server can change it and the rule Validate
// applies to it. [Settings] lists them all, and everything else is derived
// from that list: [Default], the command-line flags and BOSHD_*
// environment variables of the loader (package
// github.com/boshd/boshd/config/load), boshd --help, boshd.example.yaml,
// and the keys a reload leaves for a restart.
type Setting struct {
	// Key names the setting in the YAML file, such as max_wait. The
	// command-line flag is Flag() and the environment variable Env().
	Key string
	// Default is the value when no source sets the key, of the type of
	// the key's field in Config; nil means the zero value.
	Default any
	// Help says in one line what the setting does, for --help and the
	// example file. A word in back quotes names the value (`DURATION`),
	// as in package flag.
	Help string
	// Doc, if not empty, adds detail for the example file.
	Doc string
	// Reloadable reports whether a running server applies a new value
	// on reload (SIGHUP, bosh.Handler.Reload); the others take effect
	// at the next start.
	Reloadable bool
	// Aliases are further command-line flags that set the key.
	Aliases []Alias

	field func(*Config) any  // a pointer to the key's field of the Config
	check func(Config) error // the key's rule for Validate; nil if none
}

// An Alias is a further command-line flag for a setting, such as
// --upstream for upstreams.
type Alias struct {
	// Flag is the flag's name without the leading dashes.
	Flag string
	// Help says in one line what the flag does, like Setting.Help.
	Help string
}

// Flag returns the name of the command-line flag that sets s, without the
// leading dashes: max-wait for max_wait.
func (s Setting) Flag() string { return strings.ReplaceAll(s.Key, "_", "-") }

// Env returns the environment variable that sets s: BOSHD_MAX_WAIT for
// max_wait.
func (s Setting) Env() string { return "BOSHD_" + strings.ToUpper(s.Key) }

// Field returns a pointer to the field of c that s sets: a *string,
// *[]string, *map[string]string, *time.Duration, *int, *int64 or *bool.
func (s Setting) Field(c *Config) any { return s.field(c) }

// Value returns the value of s in c.
func (s Setting) Value(c Config) any { return reflect.ValueOf(s.field(&c)).Elem().Interface() }

// Lookup returns the setting with the given key, and whether there is one.
func Lookup(key string) (Setting, bool) {
	for _, s := range Settings() {
		if s.Key == key {
			return s, true
		}
	}
	return Setting{}, false
}

// Settings returns every setting of Config, in the order of its fields.
// The slice is new at each call: changing it changes nothing else.
func Settings() []Setting {
	return []Setting{
		{
			Key:     "listen",
			Default: "127.0.0.1:5280",
			Help:    "listen for HTTP on `HOST:PORT`",
			field:   func(c *Config) any { return &c.Listen },
			check:   func(c Config) error { return checkHostPort(c.Listen) },
		},
		{
			Key:     "path",
			Default: "/http-bind",
			Help:    "serve BOSH at the URL `PATH`, which starts with \"/\"",
			field:   func(c *Config) any { return &c.Path },
			check:   func(c Config) error { return checkPath(c.Path) },
		},
		{
			Key:     "websocket_path",
			Default: "/xmpp-websocket",
			Help:    "serve XMPP over WebSocket (RFC 7395) at the URL `PATH`; empty turns WebSocket off",
			Doc: `On the same listeners as BOSH, plain and TLS; it must differ from path.
Behind nginx, the location needs the Upgrade and Connection headers (README).`,
			field: func(c *Config) any { return &c.WebSocketPath },
			check: checkWebSocketPath,
		},
		{
			Key:  "cors_origins",
			Help: "let web pages from `ORIGIN` (scheme://host[:port], or * for any) call boshd from a browser (CORS)",
			Doc: `An origin listed exactly may send cookies (credentials); "*" (quoted: a
bare * is YAML syntax) allows any origin, without credentials.
Empty: no CORS headers, same-origin pages only.`,
			Reloadable: true,
			field:      func(c *Config) any { return &c.CORSOrigins },
			check:      func(c Config) error { return each(c.CORSOrigins, checkOrigin) },
		},
		{
			Key:  "public_url",
			Help: "advertise `URL` as the BOSH URL in /.well-known/host-meta (XEP-0156)",
			Doc: `Behind a reverse proxy, the proxy's URL, e.g.
"https://chat.example.org/http-bind"; Converse.js discovery uses https URLs
only. Empty: http://LISTEN/PATH, or the path on the host the discovery request
named when listen has no specific host.`,
			field: func(c *Config) any { return &c.PublicURL },
			check: func(c Config) error { return optional(c.PublicURL, checkPublicURL) },
		},
		{
			Key:  "public_websocket_url",
			Help: "advertise `URL` (ws:// or wss://) as the WebSocket URL in /.well-known/host-meta",
			Doc: `Empty: public_url's host with websocket_path (https becomes wss), else the
request's host. Behind a TLS-terminating proxy, set this or public_url.`,
			field: func(c *Config) any { return &c.PublicWebSocketURL },
			check: func(c Config) error { return optional(c.PublicWebSocketURL, checkPublicWebSocketURL) },
		},
		{
			Key:     "trusted_proxies",
			Default: []string{"127.0.0.1", "::1"},
			Help:    "believe X-Forwarded-For from the reverse proxies at `IP` addresses or CIDR prefixes",
			Doc: `The client address used for max_sessions_per_ip and in logs is then the
right-most address in that header that is not a trusted proxy. The default
trusts a proxy on the same host (loopback). Empty: the TCP peer's address,
always. Connections from trusted proxies are exempt from max_conns_per_ip:
counted, never refused.`,
			Reloadable: true,
			field:      func(c *Config) any { return &c.TrustedProxies },
			check:      func(c Config) error { return each(c.TrustedProxies, checkProxy) },
		},
		{
			Key:  "static_dir",
			Help: "serve the files in `DIR` at \"/\", next to BOSH (a web chat page, say)",
			Doc: `scripts/demo serves demo/ this way, on the same origin as BOSH.
Empty: no files served.`,
			field: func(c *Config) any { return &c.StaticDir },
			check: func(c Config) error { return optional(c.StaticDir, checkDir) },
		},
		{
			Key:  "tls_cert_file",
			Help: "serve HTTPS (and HTTP/2) with the PEM certificate chain in `FILE`, with tls_key_file",
			Doc: `Both or neither. The files are read again on SIGHUP without dropping
sessions. Empty: plain HTTP (put TLS in front, e.g. nginx).`,
			field: func(c *Config) any { return &c.TLSCertFile },
			check: checkTLSFiles,
		},
		{
			Key:   "tls_key_file",
			Help:  "the PEM private key in `FILE` for tls_cert_file",
			field: func(c *Config) any { return &c.TLSKeyFile },
		},
		{
			Key:   "admin_listen",
			Help:  "serve /metrics, /healthz, /readyz and a status page on `HOST:PORT`, for operators only",
			Doc:   `For example 127.0.0.1:5282. Empty: off.`,
			field: func(c *Config) any { return &c.AdminListen },
			check: func(c Config) error { return optional(c.AdminListen, checkHostPort) },
		},
		{
			Key:  "prebind_token_file",
			Help: "serve POST /prebind (single sign-on) to backends sending the bearer token in `FILE`",
			Doc: `A web application's backend logs its user in through boshd and hands the
browser {jid, sid, rid} (README: Single sign-on). The file is read again on
SIGHUP. Empty: no /prebind.`,
			field: func(c *Config) any { return &c.PrebindTokenFile },
			check: checkPrebind,
		},
		{
			Key:   "prebind_listen",
			Help:  "serve /prebind on `HOST:PORT` instead of admin_listen",
			Doc:   `Plain HTTP, like admin_listen. Empty: on admin_listen.`,
			field: func(c *Config) any { return &c.PrebindListen },
			check: func(c Config) error { return optional(c.PrebindListen, checkHostPort) },
		},
		{
			Key:  "prebind_insecure",
			Help: "serve /prebind over plain HTTP on an address that is not loopback",
			Doc: `Passwords and the token cross that listener: only on a private network, or
behind a proxy that terminates TLS.`,
			field: func(c *Config) any { return &c.PrebindInsecure },
		},
		{
			Key:     "prebind_attach_timeout",
			Default: 30 * time.Second,
			Help:    "end a pre-bound session whose browser has sent no request within `DURATION`",
			field:   func(c *Config) any { return &c.PrebindAttachTimeout },
			check:   func(c Config) error { return positive(c.PrebindAttachTimeout) },
		},
		{
			Key:  "agent_listen",
			Help: "answer HAProxy's agent-check on `HOST:PORT`: up, drain (POST /drain, SIGUSR1) or down (stopping)",
			Doc: `For example :5283, with agent-check agent-port 5283 on the server lines of
contrib/haproxy/haproxy.cfg: HAProxy must reach it, and it tells nothing but
that one word. Each connection gets one line and is closed. Empty: off.`,
			field: func(c *Config) any { return &c.AgentListen },
			check: func(c Config) error { return optional(c.AgentListen, checkHostPort) },
		},
		{
			Key:  "node_id",
			Help: "name this node `NAME` in a cluster, 1 to 32 letters, digits or -; its session IDs start with NAME and a dot",
			Doc: `Each node of a cluster has its own name, so that a load balancer (HAProxy,
contrib/haproxy) or another node (peers) can tell from a sid which node holds
the session. Empty: a single node, session IDs without a prefix.`,
			field: func(c *Config) any { return &c.NodeID },
			check: func(c Config) error { return optional(c.NodeID, checkNodeName) },
		},
		{
			Key:  "peers",
			Help: "forward requests for another node's sessions to it, at its address (`NAME=HOST:PORT,...`)",
			Doc: `In this file, a map from every other node's node_id to the HOST:PORT of
its BOSH listener (plain HTTP, on a private network). A request whose sid
names a peer is forwarded to it, signed with cluster_secret_file; one naming
an unknown node is answered item-not-found. Needs node_id and
cluster_secret_file. Empty: nothing is forwarded.`,
			Aliases: []Alias{{
				Flag: "peer",
				Help: "forward requests for another node's sessions to it, given as `NAME=HOST:PORT`; repeat it for each peer",
			}},
			field: func(c *Config) any { return &c.Peers },
			check: checkPeers,
		},
		{
			Key:  "cluster_secret_file",
			Help: "sign and check requests forwarded between nodes with the secret in `FILE`, at least 32 bytes",
			Doc: `The same file on every node; trailing white space is not part of the secret
(openssl rand -base64 48 makes one). Read again on SIGHUP: for a rolling
change, give every node the new file and reload them together. Empty: a
forwarded request (a Boshd-Forward-Auth header) is refused.`,
			Reloadable: true,
			field:      func(c *Config) any { return &c.ClusterSecretFile },
			check:      func(c Config) error { return optional(c.ClusterSecretFile, checkSecretFile) },
		},
		{
			Key:     "upstreams",
			Default: map[string]string{"localhost": "127.0.0.1:5222"},
			Help:    "serve each XMPP domain through the XMPP server at its address (`DOMAIN=HOST:PORT,...`)",
			Doc: `In this file, a map from each domain to its HOST:PORT. A domain with an
empty address ("") is looked up through DNS SRV. A session for any other
domain is refused with host-unknown and never dialled.`,
			Reloadable: true,
			Aliases: []Alias{{
				Flag: "upstream",
				Help: "serve an XMPP domain through its XMPP server, given as `DOMAIN=HOST:PORT` (DOMAIN= for DNS SRV); repeat it for each domain, the first replacing the default",
			}},
			field: func(c *Config) any { return &c.Upstreams },
			check: checkUpstreams,
		},
		{
			Key:     "upstream_tls",
			Default: "starttls",
			Help:    "secure upstream streams by `MODE`: starttls, required or plaintext",
			Doc: `starttls: STARTTLS whenever the server offers it (a server on loopback
may offer none); required: STARTTLS or fail; plaintext: never, loopback only.`,
			field: func(c *Config) any { return &c.UpstreamTLS },
			check: func(c Config) error { return oneOf(c.UpstreamTLS, "starttls", "required", "plaintext") },
		},
		{
			Key:  "upstream_ca_file",
			Help: "trust the CA certificates in the PEM `FILE` for upstream TLS instead of the system roots",
			Aliases: []Alias{{
				Flag: "upstream-ca",
				Help: "trust the CA certificates in the PEM `FILE` for upstream TLS instead of the system roots (alias of --upstream-ca-file)",
			}},
			field: func(c *Config) any { return &c.UpstreamCAFile },
			check: func(c Config) error { return optional(c.UpstreamCAFile, checkCAFile) },
		},
		{
			Key:        "route_allow",
			Help:       "let clients pick their upstream with the route `xmpp:HOST:PORT`",
			Doc:        `Other routes are refused with host-unknown and never dialled.`,
			Reloadable: true,
			field:      func(c *Config) any { return &c.RouteAllow },
			check:      checkRoutes,
		},
		{
			Key:     "connect_timeout",
			Default: 10 * time.Second,
			Help:    "give up dialling an upstream and negotiating its stream after `DURATION`",
			field:   func(c *Config) any { return &c.ConnectTimeout },
			check:   func(c Config) error { return positive(c.ConnectTimeout) },
		},
		{
			Key:     "upstream_write_timeout",
			Default: 30 * time.Second,
			Help:    "end a session whose upstream does not read for `DURATION`",
			field:   func(c *Config) any { return &c.UpstreamWriteTimeout },
			check:   func(c Config) error { return positive(c.UpstreamWriteTimeout) },
		},
		{
			Key:     "max_wait",
			Default: 60 * time.Second,
			Help:    "hold a request for at most `DURATION` (the highest BOSH wait), 1s to 1h",
			field:   func(c *Config) any { return &c.MaxWait },
			check:   func(c Config) error { return between(c.MaxWait, minMaxWait, maxMaxWait) },
		},
		{
			Key:     "max_hold",
			Default: 1,
			Help:    "hold at most `N` requests at once per session (the highest BOSH hold), 1 to 10",
			field:   func(c *Config) any { return &c.MaxHold },
			check:   func(c Config) error { return between(c.MaxHold, minMaxHold, maxMaxHold) },
		},
		{
			Key:     "inactivity",
			Default: 60 * time.Second,
			Help:    "end a session that has had no request held for `DURATION`, at least 1s",
			field:   func(c *Config) any { return &c.Inactivity },
			check:   func(c Config) error { return atLeast(c.Inactivity, minInactivity) },
		},
		{
			Key:     "polling",
			Default: 5 * time.Second,
			Help:    "require `DURATION` between two empty requests of a polling session",
			field:   func(c *Config) any { return &c.Polling },
			check:   func(c Config) error { return notNegative(c.Polling) },
		},
		{
			Key:   "multiple_streams",
			Help:  "let clients open several XMPP streams in one session (XEP-0124 §16)",
			field: func(c *Config) any { return &c.MultipleStreams },
		},
		{
			Key:     "max_pause",
			Default: 120 * time.Second,
			Help:    "let a client pause its session for at most `DURATION`; 0 disables pause",
			field:   func(c *Config) any { return &c.MaxPause },
			check:   func(c Config) error { return notNegative(c.MaxPause) },
		},
		{
			Key:     "park_held",
			Default: true,
			Help:    "let requests held longer than park_after wait without a goroutine (docs/design/002)",
			Doc: `Only HTTP/1.1 keep-alive requests; about 20 KiB less per idle session.
false holds every request in net/http.`,
			field: func(c *Config) any { return &c.ParkHeld },
		},
		{
			Key:     "park_after",
			Default: time.Second,
			Help:    "park a request once it has been held for `DURATION`; 0 parks at once",
			field:   func(c *Config) any { return &c.ParkAfter },
			check:   func(c Config) error { return notNegative(c.ParkAfter) },
		},
		{
			Key:     "max_body_size",
			Default: int64(1 << 20),
			Help:    "accept request bodies of at most `BYTES`, 1024 to 64 MiB",
			field:   func(c *Config) any { return &c.MaxBodySize },
			check:   func(c Config) error { return between(c.MaxBodySize, minMaxBodySize, maxMaxBodySize) },
		},
		{
			Key:     "websocket_max_message_size",
			Default: int64(256 << 10),
			Help:    "accept WebSocket messages of at most `BYTES`, fragments reassembled, 1024 to 64 MiB",
			Doc:     `A larger message ends its session with policy-violation and close code 1009.`,
			field:   func(c *Config) any { return &c.WebSocketMaxMessageSize },
			check:   func(c Config) error { return between(c.WebSocketMaxMessageSize, minMaxBodySize, maxMaxBodySize) },
		},
		{
			Key:     "websocket_ping_interval",
			Default: 50 * time.Second,
			Help:    "send a frame on every WebSocket connection at least every `DURATION`, a ping if idle; 0: no pings",
			Doc: `A client silent for two intervals, pong included, is taken as lost. Keep it
below the proxy's read timeout (nginx: proxy_read_timeout, 60s by default).`,
			field: func(c *Config) any { return &c.WebSocketPingInterval },
			check: func(c Config) error { return checkPingInterval(c.WebSocketPingInterval) },
		},
		{
			Key:     "max_element_depth",
			Default: 64,
			Help:    "refuse request bodies whose elements nest deeper than `N` levels, <body/> included, 8 to 1000",
			field:   func(c *Config) any { return &c.MaxElementDepth },
			check:   func(c Config) error { return between(c.MaxElementDepth, 8, 1000) },
		},
		{
			Key:     "max_queue_bytes",
			Default: int64(4 << 20),
			Help:    "end a session with more than `BYTES` of stanzas waiting for a request, at least max_body_size",
			field:   func(c *Config) any { return &c.MaxQueueBytes },
			check:   checkQueueBytes,
		},
		{
			Key:  "max_sessions",
			Help: "hold at most `N` live sessions; 0: as many as the open file limit allows",
			Doc: `More are refused with policy-violation, never dialled. The boshd command
allows three descriptors a session.`,
			Reloadable: true,
			field:      func(c *Config) any { return &c.MaxSessions },
			check:      func(c Config) error { return limit(c.MaxSessions) },
		},
		{
			Key:     "max_sessions_per_ip",
			Default: 100,
			Help:    "hold at most `N` sessions at once per client IP address; 0 means no limit",
			Doc: `The default leaves room for users behind one NAT while stopping a single
host from exhausting upstream connections.`,
			Reloadable: true,
			field:      func(c *Config) any { return &c.MaxSessionsPerIP },
			check:      func(c Config) error { return limit(c.MaxSessionsPerIP) },
		},
		{
			Key:     "max_upstream_logins",
			Default: 8,
			Help:    "send at most `N` clients' SASL logins to the XMPP servers at once; 0 means no limit",
			Doc: `A client's <auth/> beyond it waits in boshd for a place, at most 30 s, then
goes ahead. After a restart thousands of clients log in at once, and a
server that hashes passwords on one thread (Prosody) would queue their
logins in front of every stanza of the sessions already established; paced,
the logins reach it as fast as it completes them. Takes effect only after a
restart.`,
			field: func(c *Config) any { return &c.MaxUpstreamLogins },
			check: func(c Config) error { return limit(c.MaxUpstreamLogins) },
		},
		{
			Key:     "max_conns_per_ip",
			Default: 256,
			Help:    "allow at most `N` open client connections (TCP) from one IP address at once; 0 means no limit",
			Doc: `Counted at accept, before any TLS handshake; a connection over the limit
is closed at once. Connections from trusted_proxies are counted but never
refused: a reverse proxy carries all its clients' connections. Takes effect
only after a restart.`,
			field: func(c *Config) any { return &c.MaxConnsPerIP },
			check: func(c Config) error { return limit(c.MaxConnsPerIP) },
		},
		{
			Key:     "log_level",
			Default: "info",
			Help:    "log at `LEVEL`: debug, info, warn or error",
			field:   func(c *Config) any { return &c.LogLevel },
			check:   func(c Config) error { return oneOf(c.LogLevel, "debug", "info", "warn", "error") },
		},
		{
			Key:     "log_format",
			Default: "text",
			Help:    "write logs as `FORMAT`: text or json",
			field:   func(c *Config) any { return &c.LogFormat },
			check:   func(c Config) error { return oneOf(c.LogFormat, "text", "json") },
		},
		{
			Key:     "shutdown_timeout",
			Default: 10 * time.Second,
			Help:    "give a graceful stop at most `DURATION`",
			field:   func(c *Config) any { return &c.ShutdownTimeout },
			check:   func(c Config) error { return positive(c.ShutdownTimeout) },
		},
		{
			Key:     "upgrade_ready_timeout",
			Default: 30 * time.Second,
			Help:    "on SIGUSR2, wait at most `DURATION` for the new binary to be ready, else kill it and keep serving",
			Doc:     "A live upgrade (README, \"Upgrades\"): the new process loads its configuration and builds everything on the inherited sockets within this bound, or the old one goes on alone.",
			field:   func(c *Config) any { return &c.UpgradeReadyTimeout },
			check:   func(c Config) error { return positive(c.UpgradeReadyTimeout) },
		},
		{
			Key:     "upgrade_drain_timeout",
			Default: 5 * time.Minute,
			Help:    "after a live upgrade, the old process serves its sessions at most `DURATION`, then ends the rest with system-shutdown",
			Doc:     "The old process exits as soon as it holds no session; at this bound, the sessions still open are ended as by a stop.",
			field:   func(c *Config) any { return &c.UpgradeDrainTimeout },
			check:   func(c Config) error { return positive(c.UpgradeDrainTimeout) },
		},
	}
}
