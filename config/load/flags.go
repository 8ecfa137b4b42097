package load

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/boshd/boshd/config"
)

// commandLine is the command line of Config: a flag for every setting and
// its aliases, plus --config, --version and --help.
type commandLine struct {
	fs      *pflag.FlagSet
	config  string
	version bool
	help    bool
	// values holds the values of the settings' flags: the defaults,
	// then what the command line sets.
	values config.Config
	// byFlag maps each flag name of a setting, aliases included, to
	// the setting.
	byFlag map[string]config.Setting
}

// newCommandLine defines the flags of Config, with d as their defaults.
func newCommandLine(d config.Config) *commandLine {
	fs := pflag.NewFlagSet("boshd", pflag.ContinueOnError)
	fs.SetOutput(io.Discard) // Config prints nothing
	fs.SortFlags = false
	cl := &commandLine{fs: fs, values: d, byFlag: make(map[string]config.Setting)}

	fs.StringVar(&cl.config, "config", "", "read settings from the YAML `FILE` (also BOSHD_CONFIG)")
	for _, s := range config.Settings() {
		name := s.Flag()
		switch p := s.Field(&cl.values).(type) {
		case *string:
			fs.StringVar(p, name, *p, s.Help)
		case *[]string:
			fs.StringSliceVar(p, name, *p, s.Help)
		case *map[string]string:
			fs.Var(&pairsValue{m: p, key: s.Key}, name, s.Help)
		case *time.Duration:
			fs.Var((*durationValue)(p), name, s.Help)
		case *int:
			fs.IntVar(p, name, *p, s.Help)
		case *int64:
			fs.Int64Var(p, name, *p, s.Help)
		case *bool:
			fs.BoolVar(p, name, *p, s.Help)
		default:
			panic(fmt.Sprintf("load: setting %s has a field of type %T", s.Key, p))
		}
		cl.byFlag[name] = s
		for _, a := range s.Aliases {
			fs.Var(fs.Lookup(name).Value, a.Flag, a.Help)
			cl.byFlag[a.Flag] = s
		}
	}
	fs.BoolVar(&cl.version, "version", false, "print the version and exit")
	fs.BoolVarP(&cl.help, "help", "h", false, "print this help and exit")
	return cl
}

// Usage writes boshd's --help text to w: what the sources of the settings
// are, and every flag with its default.
func Usage(w io.Writer) error {
	_, err := io.WriteString(w, usageHeader+newCommandLine(config.Default()).fs.FlagUsagesWrapped(usageWidth))
	return err
}

// usageWidth is the width --help wraps its lines to.
const usageWidth = 100

const usageHeader = `Usage: boshd [flags]

boshd is an XMPP BOSH connection manager. Each setting is taken from the
first of: these flags; the environment variable BOSHD_<KEY> (for example
BOSHD_MAX_WAIT=30s, BOSHD_UPSTREAMS=example.org=127.0.0.1:5222,example.net=,
BOSHD_ROUTE_ALLOW=xmpp:a.example:5222,xmpp:b.example:5222); the YAML file
named by --config or BOSHD_CONFIG (keys spelled max_wait); the default shown.
Durations are Go durations (30s, 1m30s) or whole seconds (30). A flag that
takes a list or a map may be repeated, or given a comma-separated list.

Flags:
`

// settings returns the keys set on the command line, mapped to their values.
func (cl *commandLine) settings() map[string]any {
	m := make(map[string]any)
	cl.fs.Visit(func(f *pflag.Flag) {
		if s, ok := cl.byFlag[f.Name]; ok {
			m[s.Key] = s.Value(cl.values)
		}
	})
	return m
}

// durationValue is a pflag.Value for a time.Duration that, unlike pflag's
// own, also accepts a whole number of seconds.
type durationValue time.Duration

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

// pairsValue is the pflag.Value of a map setting and its alias:
// --upstreams and --upstream, --peers and --peer. The first value given
// replaces the default map; later ones add to it.
type pairsValue struct {
	m   *map[string]string
	key string // the setting's key, for parsePairs
	set bool
}

func (u *pairsValue) Set(s string) error {
	add, err := parsePairs(u.key, s)
	if err != nil {
		return err
	}
	if !u.set {
		*u.m = make(map[string]string)
		u.set = true
	}
	for name, addr := range add {
		if _, dup := (*u.m)[name]; dup {
			return fmt.Errorf("%s %q given twice", pairName(u.key), name)
		}
		(*u.m)[name] = addr
	}
	return nil
}

func (u *pairsValue) String() string {
	pairs := make([]string, 0, len(*u.m))
	for _, name := range slices.Sorted(maps.Keys(*u.m)) {
		pairs = append(pairs, name+"="+(*u.m)[name])
	}
	return strings.Join(pairs, ",")
}

func (u *pairsValue) Type() string { return u.key }

// pairName is what the names of the map setting key are: the domains of
// upstreams, the nodes of peers.
func pairName(key string) string {
	if key == "upstreams" {
		return "domain"
	}
	return "node"
}

// parsePairs parses a comma-separated list of name=host:port pairs, as
// taken by --upstream and BOSHD_UPSTREAMS (a domain, and an empty
// host:port for a DNS SRV lookup) or --peer and BOSHD_PEERS (a node) for
// the map setting key. Names and addresses are checked by Validate.
func parsePairs(key, s string) (map[string]string, error) {
	form := "NAME=HOST:PORT"
	if key == "upstreams" {
		form = "DOMAIN=HOST:PORT (or DOMAIN= for DNS SRV)"
	}
	m := make(map[string]string)
	for pair := range strings.SplitSeq(s, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		name, addr, ok := strings.Cut(pair, "=")
		if !ok {
			return nil, fmt.Errorf("%q is not %s", pair, form)
		}
		name, addr = strings.TrimSpace(name), strings.TrimSpace(addr)
		if _, dup := m[name]; dup {
			return nil, fmt.Errorf("%s %q given twice", pairName(key), name)
		}
		m[name] = addr
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
