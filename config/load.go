package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// ErrVersion is returned by Load when the command line holds --version. The
// caller should print its version and exit successfully.
var ErrVersion = errors.New("config: version requested")

// envPrefix starts the name of every environment variable Load reads.
const envPrefix = "BOSHD_"

// envName returns the environment variable that sets key:
// max_wait is set by BOSHD_MAX_WAIT.
func envName(key string) string { return envPrefix + strings.ToUpper(key) }

// Load builds the configuration from the defaults, the YAML file, the
// environment and the command line, in rising precedence (see the package
// documentation), and validates it.
//
// args is the command line without the program name, like os.Args[1:]; boshd
// takes flags only, so any other argument is an error. environ is the
// environment as "NAME=value" strings, like os.Environ(); only its BOSHD_*
// variables are used, a variable set to the empty string counts as unset, and
// when a name appears more than once the last value wins. Variables with the
// prefix that name no key are ignored. Load never reads the process
// environment itself.
//
// Load writes the usage text to usage (os.Stderr if nil) when the command
// line holds -h or --help, and then returns pflag.ErrHelp. It returns
// ErrVersion when the command line holds --version. Both are returned before
// any file is read, so they work whatever the configuration. Load does not
// print errors: the caller does.
//
// The error of a bad command line, file, environment variable or value names
// the flag or key at fault; when there are several problems, all are joined
// into the error.
func Load(args []string, environ []string, usage io.Writer) (Config, error) {
	d := Default()
	cl := newCommandLine(d, usage)
	if err := cl.fs.Parse(args); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	if cl.help {
		cl.fs.Usage()
		return Config{}, pflag.ErrHelp
	}
	if cl.version {
		return Config{}, ErrVersion
	}
	if cl.fs.NArg() > 0 {
		return Config{}, fmt.Errorf("config: unexpected argument %q: boshd takes flags only", cl.fs.Arg(0))
	}
	vars := environment(environ)

	// Viper looks each key up in its override values (set with Set), then
	// in its bound flags, its config file and its defaults. Viper's own
	// environment support reads the process environment, so environment
	// variables are bound as flag values instead, and command-line values
	// are set as overrides. Every key is bound, even when its variable is
	// unset: this makes every key a single value for viper, so that an
	// upstreams map from one source replaces the map of a lower source
	// instead of merging with it.
	v := viper.New()
	for key, value := range d.settings() {
		v.SetDefault(key, value)
		value, ok := vars[envName(key)]
		if err := v.BindFlagValue(key, envValue{key, value, ok}); err != nil {
			return Config{}, fmt.Errorf("config: %w", err)
		}
	}
	file, ok := vars[envName("config")]
	if cl.fs.Changed("config") {
		file, ok = cl.config, cl.config != ""
	}
	if ok {
		if err := readFile(v, file); err != nil {
			return Config{}, err
		}
	}
	for key, value := range cl.settings() {
		v.Set(key, value)
	}

	c, err := unmarshal(v, file)
	if err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// settings returns c as a map from each key to its value.
func (c Config) settings() map[string]any {
	return map[string]any{
		"listen":                 c.Listen,
		"path":                   c.Path,
		"cors_origins":           c.CORSOrigins,
		"public_url":             c.PublicURL,
		"trusted_proxies":        c.TrustedProxies,
		"static_dir":             c.StaticDir,
		"tls_cert_file":          c.TLSCertFile,
		"tls_key_file":           c.TLSKeyFile,
		"admin_listen":           c.AdminListen,
		"upstreams":              c.Upstreams,
		"upstream_tls":           c.UpstreamTLS,
		"upstream_ca_file":       c.UpstreamCAFile,
		"route_allow":            c.RouteAllow,
		"connect_timeout":        c.ConnectTimeout,
		"upstream_write_timeout": c.UpstreamWriteTimeout,
		"max_wait":               c.MaxWait,
		"max_hold":               c.MaxHold,
		"inactivity":             c.Inactivity,
		"polling":                c.Polling,
		"max_pause":              c.MaxPause,
		"multiple_streams":       c.MultipleStreams,
		"park_held":              c.ParkHeld,
		"park_after":             c.ParkAfter,
		"max_body_size":          c.MaxBodySize,
		"max_element_depth":      c.MaxElementDepth,
		"max_queue_bytes":        c.MaxQueueBytes,
		"max_sessions":           c.MaxSessions,
		"max_sessions_per_ip":    c.MaxSessionsPerIP,
		"log_level":              c.LogLevel,
		"log_format":             c.LogFormat,
		"shutdown_timeout":       c.ShutdownTimeout,
	}
}

// environment returns the BOSHD_* variables of environ by name.
func environment(environ []string) map[string]string {
	vars := make(map[string]string)
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, envPrefix) {
			continue
		}
		if value == "" {
			delete(vars, name)
			continue
		}
		vars[name] = value
	}
	return vars
}

// envValue is an environment variable bound into viper as a flag value; it
// implements viper.FlagValue. Its value is decoded like the same value
// written as a string in the YAML file.
type envValue struct {
	key   string
	value string
	set   bool
}

func (e envValue) HasChanged() bool    { return e.set }
func (e envValue) Name() string        { return e.key }
func (e envValue) ValueString() string { return e.value }
func (e envValue) ValueType() string   { return "string" }

// readFile reads the YAML file name into v.
func readFile(v *viper.Viper, name string) error {
	data, err := os.ReadFile(name)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
		return fmt.Errorf("config: %s: %w", name, err)
	}
	return nil
}

// unmarshal decodes the merged settings of v into a Config. Keys that are
// not settings of Config can only have come from the file, which is named
// in their error.
func unmarshal(v *viper.Viper, file string) (Config, error) {
	known := Config{}.settings()
	var errs []error
	for _, key := range slices.Sorted(slices.Values(v.AllKeys())) {
		if _, ok := known[key]; !ok {
			errs = append(errs, fmt.Errorf("config: %s: unknown key %q", file, key))
		}
	}
	var c Config
	if err := v.Unmarshal(&c, viper.DecodeHook(mapstructure.DecodeHookFuncType(decodeHook))); err != nil {
		errs = decodeErrors(errs, err)
	}
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	return c, nil
}

// decodeHook converts the strings of the environment and the command line,
// and the strings and numbers of the YAML file, into the types of Config
// that mapstructure cannot convert by itself, or not with errors that show
// the bad value.
func decodeHook(from, to reflect.Type, data any) (any, error) {
	switch to {
	case reflect.TypeFor[time.Duration]():
		return toDuration(from, data)
	case reflect.TypeFor[map[string]string]():
		if from.Kind() == reflect.String {
			return parseUpstreams(reflect.ValueOf(data).String())
		}
	case reflect.TypeFor[[]string]():
		if from.Kind() == reflect.String {
			return splitList(reflect.ValueOf(data).String()), nil
		}
	}
	if k := to.Kind(); k == reflect.Int || k == reflect.Int64 {
		switch val := reflect.ValueOf(data); from.Kind() {
		case reflect.String:
			s := strings.TrimSpace(val.String())
			n, err := strconv.ParseInt(s, 10, to.Bits())
			if err != nil {
				return nil, fmt.Errorf("invalid integer %q", s)
			}
			return n, nil
		case reflect.Float32, reflect.Float64:
			if f := val.Float(); f != math.Trunc(f) {
				return nil, fmt.Errorf("invalid integer %v", data)
			}
		}
	}
	return data, nil
}

// toDuration converts data to a time.Duration: a string in Go syntax or a
// number of seconds, or a plain number of seconds.
func toDuration(from reflect.Type, data any) (any, error) {
	if from == reflect.TypeFor[time.Duration]() {
		return data, nil
	}
	val := reflect.ValueOf(data)
	var secs float64
	switch from.Kind() {
	case reflect.String:
		return parseDuration(val.String())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		secs = float64(val.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		secs = float64(val.Uint())
	case reflect.Float32, reflect.Float64:
		secs = val.Float()
	default:
		return data, nil
	}
	return seconds(secs, fmt.Sprint(data))
}

// parseDuration parses a duration in Go syntax ("1m30s") or a whole number
// of seconds ("90").
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return seconds(float64(n), s)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: want Go syntax such as \"90s\" or \"1m30s\", or whole seconds", s)
	}
	return d, nil
}

// seconds returns secs seconds as a duration; text is secs as written.
func seconds(secs float64, text string) (time.Duration, error) {
	d := secs * float64(time.Second)
	if math.IsNaN(d) || d >= math.MaxInt64 || d <= math.MinInt64 {
		return 0, fmt.Errorf("duration %s seconds is out of range", text)
	}
	return time.Duration(d), nil
}

// decodeErrors appends the errors within err, returned by mapstructure, to
// errs, each naming the key at fault.
func decodeErrors(errs []error, err error) []error {
	var de *mapstructure.DecodeError
	switch e := err.(type) {
	case *mapstructure.DecodeError:
		if errors.As(e.Unwrap(), &de) {
			return decodeErrors(errs, e.Unwrap())
		}
		return append(errs, fmt.Errorf("config: %s: %w", e.Name(), e.Unwrap()))
	case interface{ Unwrap() []error }:
		for _, err := range e.Unwrap() {
			errs = decodeErrors(errs, err)
		}
		return errs
	}
	if errors.As(err, &de) {
		return decodeErrors(errs, errors.Unwrap(err))
	}
	return append(errs, fmt.Errorf("config: %w", err))
}
