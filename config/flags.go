package config

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// flagName returns the command-line flag that sets key:
// upstream_ca_file is set by --upstream-ca-file.
func flagName(key string) string { return strings.ReplaceAll(key, "_", "-") }

// commandLine is the command line of Load: one flag for every key, plus
// --config, --upstream, --upstream-ca, --version and --help.
type commandLine struct {
	fs        *pflag.FlagSet
	config    string
	version   bool
	help      bool
	upstreams *upstreamsValue // shared by --upstream and --upstreams
}

// newCommandLine defines the flags of Load, with d as their defaults. Usage
// and errors are written to usage (os.Stderr if nil).
func newCommandLine(d Config, usage io.Writer) *commandLine {
	fs := pflag.NewFlagSet("boshd", pflag.ContinueOnError)
	fs.SetOutput(usage)
	fs.SortFlags = false
	cl := &commandLine{fs: fs, upstreams: newUpstreamsValue(d.Upstreams)}

	fs.StringVar(&cl.config, "config", "", "read settings from the YAML `FILE` (also BOSHD_CONFIG)")
	fs.String("listen", d.Listen, "listen for HTTP on `HOST:PORT`")
	fs.String("path", d.Path, "serve BOSH at the URL `PATH`")
	fs.StringSlice("cors-origins", d.CORSOrigins, "let web pages from `ORIGIN` (scheme://host[:port], or * for any) call boshd\nfrom a browser (CORS); repeatable")
	fs.String("public-url", d.PublicURL, "advertise `URL` as the BOSH URL in /.well-known/host-meta (XEP-0156);\ndefault: derived from --listen and --path")
	fs.StringSlice("trusted-proxies", d.TrustedProxies, "believe X-Forwarded-For from the reverse proxies at `IP` or CIDR; repeatable")
	fs.String("tls-cert-file", d.TLSCertFile, "serve HTTPS with the PEM certificate chain in `FILE` (with --tls-key-file); reread on SIGHUP")
	fs.String("tls-key-file", d.TLSKeyFile, "the PEM private key in `FILE` for --tls-cert-file")
	fs.String("admin-listen", d.AdminListen, "serve /metrics, /healthz, /readyz and a status page on `ADDR` (operators only); default: off")
	fs.String("static-dir", d.StaticDir, "serve the files in `DIR` at / (a web chat page, say); default: none")

	fs.Var(cl.upstreams, "upstream", "serve `DOMAIN=HOST:PORT`, replacing the default upstreams; repeatable;\nan empty HOST:PORT (DOMAIN=) looks DOMAIN up through DNS SRV")
	fs.Var(cl.upstreams, "upstreams", "serve a comma-separated `LIST` of DOMAIN=HOST:PORT, like --upstream")
	fs.String("upstream-tls", d.UpstreamTLS, "secure upstream streams by `MODE`: starttls, required or plaintext")
	var caFile string
	fs.StringVar(&caFile, "upstream-ca-file", d.UpstreamCAFile, "trust the CA certificates in the PEM `FILE` for upstream TLS\ninstead of the system roots")
	fs.StringVar(&caFile, "upstream-ca", d.UpstreamCAFile, "trust the CA certificates in the PEM `FILE` (alias of --upstream-ca-file)")
	fs.StringSlice("route-allow", d.RouteAllow, "let clients pick their upstream with the route `xmpp:HOST:PORT`; repeatable")
	durationVar(fs, "connect-timeout", d.ConnectTimeout, "give up connecting to an upstream after `DURATION`")
	durationVar(fs, "upstream-write-timeout", d.UpstreamWriteTimeout, "end a session whose upstream does not read for `DURATION`")

	durationVar(fs, "max-wait", d.MaxWait, "hold a request for at most `DURATION` (the highest BOSH wait)")
	fs.Int("max-hold", d.MaxHold, "hold at most `N` requests per session (the highest BOSH hold)")
	durationVar(fs, "inactivity", d.Inactivity, "end a session that has had no request held for `DURATION`")
	durationVar(fs, "polling", d.Polling, "require `DURATION` between two empty requests of a polling session")
	fs.Bool("multiple-streams", d.MultipleStreams, "let clients open several XMPP streams in one session (XEP-0124 §16)")
	durationVar(fs, "max-pause", d.MaxPause, "let a client pause its session for at most `DURATION` (0 disables pause)")

	fs.Bool("park-held", d.ParkHeld, "let requests held longer than --park-after wait without a goroutine (docs/design/002)")
	durationVar(fs, "park-after", d.ParkAfter, "park a request once it has been held for `DURATION` (0: at once)")

	fs.Int("max-element-depth", d.MaxElementDepth, "refuse request bodies whose elements nest deeper than `N` levels")
	fs.Int64("max-body-size", d.MaxBodySize, "accept request bodies of at most `BYTES`")
	fs.Int64("max-queue-bytes", d.MaxQueueBytes, "end a session with more than `BYTES` of stanzas waiting for a request")
	fs.Int("max-sessions", d.MaxSessions, "hold at most `N` live sessions (0: as many as the open file limit allows)")
	fs.Int("max-sessions-per-ip", d.MaxSessionsPerIP, "hold at most `N` sessions at once per client IP address (0: no limit)")

	fs.String("log-level", d.LogLevel, "log at `LEVEL`: debug, info, warn or error")
	fs.String("log-format", d.LogFormat, "write logs as `FORMAT`: text or json")
	durationVar(fs, "shutdown-timeout", d.ShutdownTimeout, "give a graceful stop at most `DURATION`")

	fs.BoolVar(&cl.version, "version", false, "print the version and exit")
	fs.BoolVarP(&cl.help, "help", "h", false, "print this help and exit")

	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageHeader)
		fs.PrintDefaults()
	}
	return cl
}

const usageHeader = `Usage: boshd [flags]

boshd is an XMPP BOSH connection manager. Each setting is taken from the
first of: these flags; the environment variable BOSHD_<KEY> (for example
BOSHD_MAX_WAIT=30s, BOSHD_UPSTREAMS=example.org=127.0.0.1:5222,example.net=,
BOSHD_ROUTE_ALLOW=xmpp:a.example:5222,xmpp:b.example:5222); the YAML file
named by --config or BOSHD_CONFIG (keys spelled max_wait); the default shown.
Durations are Go durations (30s, 1m30s) or whole seconds (30).

Flags:
`

// settings returns the keys set on the command line, mapped to their values.
func (cl *commandLine) settings() map[string]any {
	m := make(map[string]any)
	cl.fs.Visit(func(f *pflag.Flag) {
		switch f.Name {
		case "config", "version", "help":
		case "upstream", "upstreams":
			m["upstreams"] = maps.Clone(cl.upstreams.m)
		case "upstream-ca":
			m["upstream_ca_file"] = f.Value.String()
		case "route-allow", "cors-origins", "trusted-proxies":
			m[strings.ReplaceAll(f.Name, "-", "_")] = f.Value.(pflag.SliceValue).GetSlice()
		default:
			// The string forms of the remaining values are decoded
			// like the same value in the YAML file.
			m[strings.ReplaceAll(f.Name, "-", "_")] = f.Value.String()
		}
	})
	return m
}

// durationValue is a pflag.Value for a time.Duration that, unlike pflag's
// own, also accepts a whole number of seconds.
type durationValue time.Duration

func durationVar(fs *pflag.FlagSet, name string, value time.Duration, usage string) {
	d := durationValue(value)
	fs.Var(&d, name, usage)
}

func (d *durationValue) Set(s string) error {
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	*d = durationValue(v)
	return nil
}

func (d *durationValue) String() string { return time.Duration(*d).String() }
func (d *durationValue) Type() string   { return "duration" }

// upstreamsValue is the pflag.Value of --upstream and --upstreams. The first
// value given replaces the default map; later ones add to it.
type upstreamsValue struct {
	m   map[string]string
	set bool
}

func newUpstreamsValue(defaults map[string]string) *upstreamsValue {
	return &upstreamsValue{m: maps.Clone(defaults)}
}

func (u *upstreamsValue) Set(s string) error {
	add, err := parseUpstreams(s)
	if err != nil {
		return err
	}
	if !u.set {
		u.m = make(map[string]string)
		u.set = true
	}
	for domain, addr := range add {
		if _, dup := u.m[domain]; dup {
			return fmt.Errorf("domain %q given twice", domain)
		}
		u.m[domain] = addr
	}
	return nil
}

func (u *upstreamsValue) String() string {
	pairs := make([]string, 0, len(u.m))
	for _, domain := range slices.Sorted(maps.Keys(u.m)) {
		pairs = append(pairs, domain+"="+u.m[domain])
	}
	return strings.Join(pairs, ",")
}

func (u *upstreamsValue) Type() string { return "upstreams" }

// parseUpstreams parses a comma-separated list of domain=host:port pairs, as
// taken by --upstream and BOSHD_UPSTREAMS. An empty host:port is kept: it
// means a DNS SRV lookup. Domains and addresses are checked by Validate.
func parseUpstreams(s string) (map[string]string, error) {
	m := make(map[string]string)
	for pair := range strings.SplitSeq(s, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		domain, addr, ok := strings.Cut(pair, "=")
		if !ok {
			return nil, fmt.Errorf("%q is not DOMAIN=HOST:PORT (or DOMAIN= for DNS SRV)", pair)
		}
		domain, addr = strings.TrimSpace(domain), strings.TrimSpace(addr)
		if _, dup := m[domain]; dup {
			return nil, fmt.Errorf("domain %q given twice", domain)
		}
		m[domain] = addr
	}
	return m, nil
}

// splitList parses a comma-separated list, as taken by BOSHD_ROUTE_ALLOW,
// BOSHD_CORS_ORIGINS and BOSHD_TRUSTED_PROXIES, dropping blanks around and
// between the items.
func splitList(s string) []string {
	var list []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			list = append(list, item)
		}
	}
	return list
}
