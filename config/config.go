package config

import (
	"reflect"
	"time"
)

// Config is the whole configuration of a boshd server. The zero value is not
// useful; start from Default and change fields, or read one with package
// github.com/boshd/boshd/config/load.
//
// Each field's comment names the configuration key that sets it (in the YAML
// file, as BOSHD_<KEY> in the environment, and as --<key-with-dashes> on the
// command line); [Settings] lists the keys with their defaults.
type Config struct {
	// Listen is the TCP address the HTTP server listens on. Key: listen.
	Listen string
	// Path is the URL path BOSH is served at. Key: path.
	Path string
	// WebSocketPath is the URL path XMPP over WebSocket (RFC 7395) is
	// served at, on the same listeners as BOSH; empty turns WebSocket
	// off. It must differ from Path. Key: websocket_path.
	WebSocketPath string
	// CORSOrigins lists the web origins (scheme://host[:port], no path)
	// whose pages may call boshd from a browser (CORS). "*" allows any
	// origin, without credentials; an origin listed exactly also gets
	// Access-Control-Allow-Credentials. Empty (the default) sends no CORS
	// headers: same-origin pages only. CORS is enforced by browsers:
	// requests from other origins are still served. Key: cors_origins.
	CORSOrigins []string
	// PublicURL is the absolute URL (http or https) at which clients
	// reach BOSH, as advertised in /.well-known/host-meta (XEP-0156):
	// behind a reverse proxy, the proxy's URL, such as
	// https://chat.example.org/http-bind. Empty (the default) advertises
	// http://LISTEN/PATH, or, when listen has no specific host, the path
	// on whatever host the discovery request named. Key: public_url.
	PublicURL string
	// PublicWebSocketURL is the absolute ws:// or wss:// URL at which
	// clients reach XMPP over WebSocket, as advertised in host-meta.
	// Empty (the default) derives it from PublicURL (https becomes wss,
	// the path WebSocketPath), or from the request's host.
	// Key: public_websocket_url.
	PublicWebSocketURL string
	// TrustedProxies lists the IP addresses and CIDR prefixes
	// (192.0.2.1, 10.0.0.0/8, ::1) of reverse proxies whose
	// X-Forwarded-For header is believed. For a request from one of
	// them, the client address counted by max_sessions_per_ip and logged
	// is the right-most address in X-Forwarded-For that is not itself a
	// trusted proxy. The default, 127.0.0.1 and ::1, trusts a proxy on
	// the same host; empty trusts no proxy: the address is always that of
	// the TCP peer. Key: trusted_proxies.
	TrustedProxies []string
	// StaticDir, if set, is a directory whose files the boshd command
	// serves at "/" next to BOSH, such as a web chat page for the same
	// origin (scripts/demo serves demo/ this way). Empty (the default)
	// serves no files. Key: static_dir.
	StaticDir string
	// TLSCertFile and TLSKeyFile, when both set, make the listener serve
	// HTTPS (and HTTP/2) with this PEM certificate chain and key. They are
	// read again on SIGHUP, so a renewed certificate takes effect without
	// dropping sessions. Keys: tls_cert_file, tls_key_file.
	TLSCertFile string
	TLSKeyFile  string
	// AdminListen, if set, is the address of a second listener, for
	// operators only, serving /metrics (Prometheus), /healthz, /readyz and
	// a status page. Empty (the default) serves none of them.
	// Key: admin_listen.
	AdminListen string
	// PrebindTokenFile, if set, turns on pre-binding for single sign-on:
	// POST /prebind, for a web application's backend, which logs a user
	// in and gets a session for the browser to attach to. The file holds
	// the bearer token the backend must send; the boshd command reads it
	// again on SIGHUP. Empty (the default): no /prebind.
	// Key: prebind_token_file.
	PrebindTokenFile string
	// PrebindListen, if set, is the address /prebind is served on, by a
	// listener of its own; empty serves it on AdminListen. Plain HTTP:
	// a host that is not loopback needs PrebindInsecure.
	// Key: prebind_listen.
	PrebindListen string
	// PrebindInsecure lets /prebind listen on an address that is
	// not loopback, over plain HTTP: for a private network, or TLS
	// terminated by a proxy in front. Passwords and the token cross it.
	// Key: prebind_insecure.
	PrebindInsecure bool
	// PrebindAttachTimeout is how long a pre-bound session waits for
	// its browser's first request before it ends. Key:
	// prebind_attach_timeout.
	PrebindAttachTimeout time.Duration
	// AgentListen, if set, is the address of a TCP listener answering
	// HAProxy's agent-check: "up ready", "drain" while draining (POST
	// /drain on AdminListen, or SIGUSR1) or "down" while stopping, one
	// line per connection (docs/design/004-cluster.md). Empty (the
	// default): none. Key: agent_listen.
	AgentListen string

	// NodeID names this node in a cluster of boshd nodes: letters,
	// digits and "-", at most 32. Each session ID starts with NodeID and
	// a dot ("n1.ZlR3…"), so that a load balancer or another node can
	// tell which node holds a session (docs/design/004-cluster.md).
	// Empty (the default): a single node, IDs without a prefix.
	// Key: node_id.
	NodeID string
	// Peers maps the NodeID of every other node of the cluster to the
	// host:port of its BOSH listener. A request whose sid names a peer
	// is forwarded to it, once, signed with the secret of
	// ClusterSecretFile; one naming a node not in Peers is answered
	// item-not-found. Peers requires NodeID and ClusterSecretFile, and
	// must not name NodeID. Key: peers.
	Peers map[string]string
	// ClusterSecretFile names a file holding the secret, at least 32
	// bytes once trailing white space is trimmed, shared by the nodes of
	// a cluster to sign the requests they forward to each other and
	// check the ones they receive. It is read again on reload (SIGHUP).
	// Empty: a request that claims to be forwarded is refused.
	// Key: cluster_secret_file.
	ClusterSecretFile string

	// Upstreams maps each served XMPP domain
	// Upstreams maps each served XMPP domain to the host:port of its
	// client-to-server listener. An empty address means "look the domain up
	// through DNS SRV". A `to` attribute naming a domain not in this map is
	// refused with host-unknown and never dialled. Key: upstreams.
	Upstreams map[string]string
	// UpstreamTLS says how the upstream XMPP stream is secured:
	//   "starttls"  (default) STARTTLS whenever the server offers it; a
	//               server that offers none is accepted only on a loopback
	//               address.
	//   "required"  STARTTLS must be offered, or the session fails with
	//               remote-connection-failed.
	//   "plaintext" never STARTTLS; allowed only for loopback addresses.
	// Key: upstream_tls.
	UpstreamTLS string
	// UpstreamCAFile is a PEM file of CA certificates trusted for upstream
	// TLS instead of the system roots. Key: upstream_ca_file.
	UpstreamCAFile string
	// RouteAllow lists the `route` attribute values (xmpp:host:port) that
	// clients may use to choose their upstream. A route not listed is refused
	// with host-unknown and never dialled. Key: route_allow.
	RouteAllow []string
	// ConnectTimeout bounds dialling the upstream and negotiating its
	// stream up to the first features. Key: connect_timeout.
	ConnectTimeout time.Duration
	// UpstreamWriteTimeout bounds each write to the upstream server; a
	// server that does not read for this long ends the session with
	// remote-connection-failed. Key: upstream_write_timeout.
	UpstreamWriteTimeout time.Duration

	// MaxWait is the longest a request is held (the highest `wait` granted).
	// Key: max_wait.
	MaxWait time.Duration
	// MaxHold is the highest `hold` granted. Key: max_hold.
	MaxHold int
	// Inactivity is how long a session may have no request held before it
	// is ended. Key: inactivity.
	Inactivity time.Duration
	// Polling is the shortest allowed interval between two empty requests
	// of a polling session. Key: polling.
	Polling time.Duration
	// MultipleStreams lets a client open several XMPP streams in one
	// session (XEP-0124 §16), each to a served domain. Off by default;
	// most clients never use it. Key: multiple_streams.
	MultipleStreams bool
	// MaxPause is the longest pause a client may ask for; zero disables
	// pause. Key: max_pause.
	MaxPause time.Duration

	// ParkHeld lets a request held longer than ParkAfter wait without
	// occupying a goroutine or net/http's buffers (docs/design/002): its
	// connection is taken from net/http and given back once answered.
	// Only for HTTP/1.1 keep-alive requests served through a
	// bosh.Listener; on by default. Key: park_held.
	ParkHeld bool
	// ParkAfter is how long a request is held in net/http before it is
	// parked; zero parks at once. Key: park_after.
	ParkAfter time.Duration

	// MaxBodySize is the largest request body accepted, in bytes.
	// Key: max_body_size.
	MaxBodySize int64
	// WebSocketMaxMessageSize is the largest WebSocket message a client
	// may send, in bytes, its fragments reassembled; a larger one ends
	// the session with policy-violation and close code 1009.
	// Key: websocket_max_message_size.
	WebSocketMaxMessageSize int64
	// WebSocketPingInterval is the longest boshd leaves a WebSocket
	// connection without a frame: an idle one is pinged; a client silent
	// for two intervals, pong included, is taken as lost. Zero: no pings
	// and no check.
	// Key: websocket_ping_interval.
	WebSocketPingInterval time.Duration
	// MaxElementDepth bounds how deeply elements nest in a request body,
	// <body/> counting as one; deeper is refused with bad-request.
	// Key: max_element_depth.
	MaxElementDepth int
	// MaxQueueBytes bounds the stanzas waiting in one session for a request
	// to carry them; a session over it is ended with
	// undefined-condition. Key: max_queue_bytes.
	MaxQueueBytes int64
	// MaxSessions bounds the live sessions; a creation request beyond it
	// is refused with policy-violation and never dialled upstream. Zero
	// (the default) leaves the bound to the boshd command, which derives
	// it from the open file limit (three descriptors a session), so that
	// a full server refuses sessions cleanly instead of failing to accept
	// connections. Reloaded on SIGHUP. Key: max_sessions.
	MaxSessions int
	// MaxSessionsPerIP bounds the sessions held at once for one client IP
	// address, counted like MaxSessions. Zero means no limit; the default
	// is 100, which leaves room for users behind one NAT while stopping a
	// single host from exhausting upstream connections.
	// Key: max_sessions_per_ip.
	MaxSessionsPerIP int
	// MaxUpstreamLogins bounds the clients' SASL logins sent to the XMPP
	// servers and not yet answered, across all sessions: a client's
	// <auth/> beyond it waits for a place (at most 30 s, then goes
	// ahead), so that a storm of logins after a restart reaches a server
	// as fast as it completes them rather than all at once, in front of
	// the stanzas of established sessions. Zero means no limit; the
	// default is 8. Key: max_upstream_logins.
	MaxUpstreamLogins int
	// MaxConnsPerIP bounds the client connections (TCP) open at once from
	// one IP address, the TCP peer's; zero means no limit. The default is
	// 256. Key: max_conns_per_ip.
	MaxConnsPerIP int

	// LogLevel is one of debug, info, warn, error. Key: log_level.
	LogLevel string
	// LogFormat is text or json. Key: log_format.
	LogFormat string
	// ShutdownTimeout bounds a graceful stop. Key: shutdown_timeout.
	ShutdownTimeout time.Duration
	// UpgradeReadyTimeout bounds how long the new process of a live
	// upgrade (SIGUSR2) may take to be ready. Key: upgrade_ready_timeout.
	UpgradeReadyTimeout time.Duration
	// UpgradeDrainTimeout bounds how long the old process of a live
	// upgrade serves the sessions it holds. Key: upgrade_drain_timeout.
	UpgradeDrainTimeout time.Duration
}

// Default returns the configuration boshd uses when nothing is set: BOSH at
// http://127.0.0.1:5280/http-bind in front of a Prosody on 127.0.0.1:5222
// serving the domain localhost. Each key's default is in its [Setting].
func Default() Config {
	var c Config
	for _, s := range Settings() {
		if s.Default != nil {
			reflect.ValueOf(s.field(&c)).Elem().Set(reflect.ValueOf(s.Default))
		}
	}
	return c
}
