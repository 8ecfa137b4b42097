package load

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/boshd/boshd/config"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// ErrVersion is returned by Config when the command line holds --version.
// The caller should print its version and exit successfully.
var ErrVersion = errors.New("config: version requested")

// ErrHelp is returned by Config when the command line holds -h or --help.
// The caller should print Usage and exit successfully.
var ErrHelp = pflag.ErrHelp

// envConfig is the environment variable that names the YAML file, like
// --config.
const envConfig = "BOSHD_CONFIG"

// Config builds the configuration from the defaults, the YAML file, the
// environment and the command line, in rising precedence (see the package
// documentation), and validates it.
//
// args is the command line without the program name, like os.Args[1:]; boshd
// takes flags only, so any other argument is an error. environ is the
// environment as "NAME=value" strings, like os.Environ(); only its BOSHD_*
// variables are used, a variable set to the empty string counts as unset, and
// when a name appears more than once the last value wins. Variables with the
// prefix that name no key are ignored. Config never reads the process
// environment itself.
//
// Config returns ErrHelp when the command line holds -h or --help, and
// ErrVersion when it holds --version, before any file is read, so that
// both work whatever the configuration. It prints nothing: the caller
// prints the errors, and Usage for ErrHelp.
//
// The error of a bad command line, file, environment variable or value names
// the flag or key at fault; when there are several problems, all are joined
// into the error.
func Config(args []string, environ []string) (config.Config, error) {
	d := config.Default()
	cl := newCommandLine(d)
	err := cl.fs.Parse(args)
	if cl.help { // even if a later flag is bad
		return config.Config{}, ErrHelp
	}
	if err != nil {
		return config.Config{}, fmt.Errorf("config: %w", err)
	}
	if cl.version {
		return config.Config{}, ErrVersion
	}
	if cl.fs.NArg() > 0 {
		return config.Config{}, fmt.Errorf("config: unexpected argument %q: boshd takes flags only", cl.fs.Arg(0))
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
	for _, s := range config.Settings() {
		v.SetDefault(s.Key, s.Value(d))
		value, ok := vars[s.Env()]
		if err := v.BindFlagValue(s.Key, envValue{s.Key, value, ok}); err != nil {
			return config.Config{}, fmt.Errorf("config: %w", err)
		}
	}
	file, ok := vars[envConfig]
	if cl.fs.Changed("config") {
		file, ok = cl.config, cl.config != ""
	}
	if ok {
		if err := readFile(v, file); err != nil {
			return config.Config{}, err
		}
	}
	for key, value := range cl.settings() {
		v.Set(key, value)
	}

	c, err := decode(v, file)
	if err != nil {
		return config.Config{}, err
	}
	if err := c.Validate(); err != nil {
		return config.Config{}, err
	}
	return c, nil
}

// environment returns the BOSHD_* variables of environ by name.
func environment(environ []string) map[string]string {
	vars := make(map[string]string)
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, "BOSHD_") {
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

// decode decodes the merged settings of v into a Config, each key into its
// field. Keys that are not settings can only have come from the file, which
// is named in their error.
func decode(v *viper.Viper, file string) (config.Config, error) {
	var errs []error
	for _, key := range slices.Sorted(slices.Values(v.AllKeys())) {
		if _, ok := config.Lookup(key); !ok {
			errs = append(errs, fmt.Errorf("config: %s: unknown key %q", file, key))
		}
	}
	var c config.Config
	for _, s := range config.Settings() {
		if err := decodeValue(s.Key, v.Get(s.Key), s.Field(&c)); err != nil {
			errs = append(errs, fmt.Errorf("config: %s: %w", s.Key, err))
		}
	}
	if len(errs) > 0 {
		return config.Config{}, errors.Join(errs...)
	}
	return c, nil
}

// decodeValue decodes in, a value of the YAML file, the environment, the
// command line or the defaults, into the field out points to, that of the
// setting key.
func decodeValue(key string, in, out any) error {
	hook := func(from, to reflect.Type, data any) (any, error) { return decodeHook(key, from, to, data) }
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		DecodeHook:       mapstructure.DecodeHookFuncType(hook),
		WeaklyTypedInput: true,
		Result:           out,
	})
	if err != nil {
		return err
	}
	err = dec.Decode(in)
	// The error names no field: keep the innermost, which says what
	// is wrong with the value.
	for {
		var de *mapstructure.DecodeError
		if !errors.As(err, &de) {
			return err
		}
		err = de.Unwrap()
	}
}

// decodeHook converts the strings of the environment and the command line,
// and the strings and numbers of the YAML file, into the types of Config
// that mapstructure cannot convert by itself, or not with errors that show
// the bad value. key names the setting decoded.
func decodeHook(key string, from, to reflect.Type, data any) (any, error) {
	switch to {
	case reflect.TypeFor[time.Duration]():
		return toDuration(from, data)
	case reflect.TypeFor[map[string]string]():
		if from.Kind() == reflect.String {
			return parsePairs(key, reflect.ValueOf(data).String())
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
