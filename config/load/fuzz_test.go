package load

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/viper"
)

// Fuzzing the configuration loader (issue: operations/hardening, part 4).
// See docs/FUZZING.md for how to run it and what a longer run found.

// FuzzLoad feeds Config an arbitrary YAML file, environment (one NAME=value
// a line) and command line (one argument a line), and checks:
//
//   - Config never panics;
//   - it either fails, with ErrHelp, ErrVersion or an error saying
//     "config: ...", or returns a Config that passes Validate;
//   - it is deterministic: loading the same input again gives the same
//     Config.
//
// Inputs that would make Config read a file other than the fuzzed one
// (--config, upstream_ca_file in any of the three sources) are skipped, so
// that the fuzzer cannot point it at /dev/zero.
func FuzzLoad(f *testing.F) {
	f.Add([]byte("listen: 127.0.0.1:5280\nupstreams:\n  example.org: 127.0.0.1:5222\nmax_wait: 30s\n"), "BOSHD_MAX_HOLD=2", "--max-wait=10")
	f.Add([]byte("upstreams: example.org=,example.net=127.0.0.1:5223\nupstream_tls: plaintext\n"), "", "--upstream\nexample.com=127.0.0.1:5222")
	f.Fuzz(func(t *testing.T, yaml []byte, env, args string) {
		if readsOtherFiles(yaml, env, args) {
			t.Skip("would read another file")
		}
		file := filepath.Join(t.TempDir(), "boshd.yaml")
		if err := os.WriteFile(file, yaml, 0o600); err != nil {
			t.Fatal(err)
		}
		argv := []string{"--config=" + file}
		if args != "" {
			argv = append(argv, strings.Split(args, "\n")...)
		}
		var environ []string
		if env != "" {
			environ = strings.Split(env, "\n")
		}
		c, err := Config(argv, environ)
		if err != nil {
			if !errors.Is(err, ErrHelp) && !errors.Is(err, ErrVersion) && !strings.HasPrefix(err.Error(), "config: ") {
				t.Fatalf("error %q does not start with \"config: \"", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Load returned a Config that fails Validate: %v\n%+v", err, c)
		}
		again, err := Config(argv, environ)
		if err != nil || !reflect.DeepEqual(again, c) {
			t.Fatalf("loading again: %v\n%+v\nwant\n%+v", err, again, c)
		}
	})
}

// readsOtherFiles reports whether Config would read a file named by the
// input: the command line's --config or --upstream-ca*, the environment's
// BOSHD_CONFIG or BOSHD_UPSTREAM_CA_FILE, or upstream_ca_file in the YAML
// file (as viper reads it, whatever its spelling) unless it is empty.
func readsOtherFiles(yaml []byte, env, args string) bool {
	for _, arg := range strings.Split(args, "\n") {
		if strings.HasPrefix(arg, "--config") || strings.HasPrefix(arg, "--upstream-ca") {
			return true
		}
	}
	for _, kv := range strings.Split(env, "\n") {
		name, _, _ := strings.Cut(kv, "=")
		if name == envConfig || name == "BOSHD_UPSTREAM_CA_FILE" {
			return true
		}
	}
	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(yaml)); err != nil {
		return false // Config fails the same way before reading anything
	}
	name, isString := v.Get("upstream_ca_file").(string)
	return v.IsSet("upstream_ca_file") && !(isString && name == "")
}
