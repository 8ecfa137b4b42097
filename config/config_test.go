package config

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"maps"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// keys returns the mapstructure keys of Config, in field order.
func keys(t *testing.T) []string {
	t.Helper()
	typ := reflect.TypeFor[Config]()
	var keys []string
	for f := range typ.Fields() {
		key := f.Tag.Get("mapstructure")
		if key == "" {
			t.Fatalf("field %s has no mapstructure key", f.Name)
		}
		keys = append(keys, key)
	}
	return keys
}

// writeFile writes content to a new file in a temporary directory and
// returns its name.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	name = filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

// writeCA writes a PEM file holding a self-signed CA certificate and returns
// its name.
func writeCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "boshd test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, "ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
}

// normal returns c with an empty RouteAllow, CORSOrigins or TrustedProxies
// made nil, so that configs can be compared with reflect.DeepEqual.
func normal(c Config) Config {
	if len(c.RouteAllow) == 0 {
		c.RouteAllow = nil
	}
	if len(c.CORSOrigins) == 0 {
		c.CORSOrigins = nil
	}
	if len(c.TrustedProxies) == 0 {
		c.TrustedProxies = nil
	}
	return c
}

// mustLoad calls Load and fails the test on error.
func mustLoad(t *testing.T, args, environ []string) Config {
	t.Helper()
	c, err := Load(args, environ, io.Discard)
	if err != nil {
		t.Fatalf("Load(%q, %q): %v", args, environ, err)
	}
	return c
}

// wantErr checks that err is not nil and contains every one of want.
func wantErr(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}

func TestKeys(t *testing.T) {
	t.Parallel()
	settings := Default().settings()
	if got, want := slices.Sorted(maps.Keys(settings)), slices.Sorted(slices.Values(keys(t))); !slices.Equal(got, want) {
		t.Errorf("settings() keys = %q, want the Config keys %q", got, want)
	}
	cl := newCommandLine(Default(), io.Discard)
	for _, key := range keys(t) {
		if cl.fs.Lookup(flagName(key)) == nil {
			t.Errorf("no flag --%s for key %s", flagName(key), key)
		}
	}
	for _, name := range []string{"config", "upstream", "upstream-ca", "route-allow", "version", "help"} {
		if cl.fs.Lookup(name) == nil {
			t.Errorf("no flag --%s", name)
		}
	}
}

func TestDefault(t *testing.T) {
	t.Parallel()
	if err := Default().Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
	if got := normal(mustLoad(t, nil, nil)); !reflect.DeepEqual(got, Default()) {
		t.Errorf("Load with nothing set = %+v, want Default() %+v", got, Default())
	}
}

func TestPrecedence(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "boshd.yaml", `
listen: "10.0.0.1:5280"
upstreams:
  file.example: "127.0.0.1:5201"
route_allow: ["xmpp:file.example:5222"]
max_wait: 10
max_hold: 2
`)
	env := []string{
		"BOSHD_LISTEN=10.0.0.2:5280",
		"BOSHD_UPSTREAMS=env.example=127.0.0.1:5202",
		"BOSHD_ROUTE_ALLOW=xmpp:env.example:5222",
		"BOSHD_MAX_WAIT=20s",
		"BOSHD_MAX_HOLD=3",
	}
	flags := []string{
		"--listen", "10.0.0.3:5280",
		"--upstream", "flag.example=127.0.0.1:5203",
		"--route-allow", "xmpp:flag.example:5222",
		"--max-wait", "30",
		"--max-hold=4",
	}
	type want struct {
		listen    string
		upstreams map[string]string
		route     []string
		maxWait   time.Duration
		maxHold   int
	}
	d := Default()
	fromDefault := want{d.Listen, d.Upstreams, nil, d.MaxWait, d.MaxHold}
	fromFile := want{"10.0.0.1:5280", map[string]string{"file.example": "127.0.0.1:5201"}, []string{"xmpp:file.example:5222"}, 10 * time.Second, 2}
	fromEnv := want{"10.0.0.2:5280", map[string]string{"env.example": "127.0.0.1:5202"}, []string{"xmpp:env.example:5222"}, 20 * time.Second, 3}
	fromFlags := want{"10.0.0.3:5280", map[string]string{"flag.example": "127.0.0.1:5203"}, []string{"xmpp:flag.example:5222"}, 30 * time.Second, 4}

	for _, tc := range []struct {
		name             string
		file, env, flags bool
		want             want
	}{
		{"none", false, false, false, fromDefault},
		{"file", true, false, false, fromFile},
		{"env", false, true, false, fromEnv},
		{"flags", false, false, true, fromFlags},
		{"file+env", true, true, false, fromEnv},
		{"file+flags", true, false, true, fromFlags},
		{"env+flags", false, true, true, fromFlags},
		{"file+env+flags", true, true, true, fromFlags},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var args, environ []string
			if tc.file {
				args = append(args, "--config", file)
			}
			if tc.env {
				environ = env
			}
			if tc.flags {
				args = append(args, flags...)
			}
			c := mustLoad(t, args, environ)
			got := want{c.Listen, c.Upstreams, c.RouteAllow, c.MaxWait, c.MaxHold}
			if len(got.route) == 0 {
				got.route = nil
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			if c.LogLevel != d.LogLevel || c.ShutdownTimeout != d.ShutdownTimeout {
				t.Errorf("keys set nowhere changed: log_level %q, shutdown_timeout %v", c.LogLevel, c.ShutdownTimeout)
			}
		})
	}
}

func TestConfigFileName(t *testing.T) {
	t.Parallel()
	a := writeFile(t, "a.yaml", "listen: 10.0.0.1:1\n")
	b := writeFile(t, "b.yaml", "listen: 10.0.0.2:2\n")
	for _, tc := range []struct {
		name    string
		args    []string
		environ []string
		want    string
	}{
		{"env", nil, []string{"BOSHD_CONFIG=" + a}, "10.0.0.1:1"},
		{"flag", []string{"--config", b}, nil, "10.0.0.2:2"},
		{"flag over env", []string{"--config=" + b}, []string{"BOSHD_CONFIG=" + a}, "10.0.0.2:2"},
		{"empty flag means no file", []string{"--config="}, []string{"BOSHD_CONFIG=" + a}, Default().Listen},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := mustLoad(t, tc.args, tc.environ).Listen; got != tc.want {
				t.Errorf("listen = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestUpstreamFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		args    []string
		want    map[string]string
		wantErr []string
	}{
		{
			name: "one replaces the default",
			args: []string{"--upstream", "example.org=10.0.0.1:5222"},
			want: map[string]string{"example.org": "10.0.0.1:5222"},
		},
		{
			name: "repeated",
			args: []string{"--upstream", "example.org=10.0.0.1:5222", "--upstream=example.net=[2001:db8::1]:5222"},
			want: map[string]string{"example.org": "10.0.0.1:5222", "example.net": "[2001:db8::1]:5222"},
		},
		{
			name: "empty address means DNS SRV",
			args: []string{"--upstream", "example.org="},
			want: map[string]string{"example.org": ""},
		},
		{
			name: "with --upstreams",
			args: []string{"--upstreams", "a.example=10.0.0.1:5222,b.example=", "--upstream", "c.example=10.0.0.3:5222"},
			want: map[string]string{"a.example": "10.0.0.1:5222", "b.example": "", "c.example": "10.0.0.3:5222"},
		},
		{
			name: "over the file and the environment",
			args: []string{"--upstream", "flag.example=", "--config", writeFile(t, "u.yaml", "upstreams: {file.example: \"\"}\n")},
			want: map[string]string{"flag.example": ""},
		},
		{
			name:    "no equals sign",
			args:    []string{"--upstream", "example.org"},
			wantErr: []string{"--upstream", "DOMAIN=HOST:PORT"},
		},
		{
			name:    "domain twice",
			args:    []string{"--upstream", "example.org=", "--upstream", "example.org=10.0.0.1:5222"},
			wantErr: []string{"--upstream", "twice"},
		},
		{
			name:    "validated",
			args:    []string{"--upstream", "example.org=10.0.0.1"},
			wantErr: []string{"config: upstreams: ", `"10.0.0.1"`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := Load(tc.args, []string{"BOSHD_UPSTREAMS=env.example="}, io.Discard)
			if tc.wantErr != nil {
				wantErr(t, err, tc.wantErr...)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(c.Upstreams, tc.want) {
				t.Errorf("upstreams = %v, want %v", c.Upstreams, tc.want)
			}
		})
	}
}

func TestEnvironment(t *testing.T) {
	t.Parallel()
	d := Default()
	for _, tc := range []struct {
		name    string
		environ []string
		check   func(Config) bool
		wantErr []string
	}{
		{
			name:    "upstreams",
			environ: []string{"BOSHD_UPSTREAMS=a.example=10.0.0.1:5222,b.example="},
			check: func(c Config) bool {
				return maps.Equal(c.Upstreams, map[string]string{"a.example": "10.0.0.1:5222", "b.example": ""})
			},
		},
		{
			name:    "upstreams with blanks",
			environ: []string{"BOSHD_UPSTREAMS= a.example = 10.0.0.1:5222 , ,b.example=,"},
			check: func(c Config) bool {
				return maps.Equal(c.Upstreams, map[string]string{"a.example": "10.0.0.1:5222", "b.example": ""})
			},
		},
		{
			name:    "upstreams without equals sign",
			environ: []string{"BOSHD_UPSTREAMS=a.example"},
			wantErr: []string{"config: upstreams: ", `"a.example"`},
		},
		{
			name:    "upstreams with a domain twice",
			environ: []string{"BOSHD_UPSTREAMS=a.example=,a.example=10.0.0.1:5222"},
			wantErr: []string{"config: upstreams: ", "twice"},
		},
		{
			name:    "route_allow",
			environ: []string{"BOSHD_ROUTE_ALLOW=xmpp:a.example:5222, xmpp:b.example:5269"},
			check: func(c Config) bool {
				return slices.Equal(c.RouteAllow, []string{"xmpp:a.example:5222", "xmpp:b.example:5269"})
			},
		},
		{
			name:    "cors_origins",
			environ: []string{"BOSHD_CORS_ORIGINS=https://chat.example.org, *"},
			check: func(c Config) bool {
				return slices.Equal(c.CORSOrigins, []string{"https://chat.example.org", "*"})
			},
		},
		{
			name:    "trusted_proxies and public_url",
			environ: []string{"BOSHD_TRUSTED_PROXIES=127.0.0.1, 10.0.0.0/8", "BOSHD_PUBLIC_URL=https://chat.example.org/http-bind"},
			check: func(c Config) bool {
				return slices.Equal(c.TrustedProxies, []string{"127.0.0.1", "10.0.0.0/8"}) && c.PublicURL == "https://chat.example.org/http-bind"
			},
		},
		{
			name:    "trusted_proxies validated",
			environ: []string{"BOSHD_TRUSTED_PROXIES=proxy.example.org"},
			wantErr: []string{"config: trusted_proxies: ", `"proxy.example.org"`},
		},
		{
			name:    "session limits",
			environ: []string{"BOSHD_MAX_SESSIONS=1000", "BOSHD_MAX_SESSIONS_PER_IP=0"},
			check:   func(c Config) bool { return c.MaxSessions == 1000 && c.MaxSessionsPerIP == 0 },
		},
		{
			name:    "cors_origins validated",
			environ: []string{"BOSHD_CORS_ORIGINS=https://chat.example.org/"},
			wantErr: []string{"config: cors_origins: ", `"https://chat.example.org/"`},
		},
		{
			name:    "every kind of value",
			environ: []string{"BOSHD_PATH=/bosh", "BOSHD_MAX_HOLD=2", "BOSHD_MAX_BODY_SIZE=2048", "BOSHD_INACTIVITY=90", "BOSHD_POLLING=1m", "BOSHD_LOG_FORMAT=json"},
			check: func(c Config) bool {
				return c.Path == "/bosh" && c.MaxHold == 2 && c.MaxBodySize == 2048 && c.Inactivity == 90*time.Second && c.Polling == time.Minute && c.LogFormat == "json"
			},
		},
		{
			name:    "last value wins",
			environ: []string{"BOSHD_LISTEN=10.0.0.1:1", "BOSHD_LISTEN=10.0.0.2:2"},
			check:   func(c Config) bool { return c.Listen == "10.0.0.2:2" },
		},
		{
			name:    "empty is unset",
			environ: []string{"BOSHD_LISTEN=10.0.0.1:1", "BOSHD_LISTEN=", "BOSHD_MAX_WAIT="},
			check:   func(c Config) bool { return c.Listen == d.Listen && c.MaxWait == d.MaxWait },
		},
		{
			name:    "other variables ignored",
			environ: []string{"LISTEN=10.0.0.1:1", "boshd_listen=10.0.0.1:1", "BOSHD_NO_SUCH_KEY=1", "BOSHD_", "NOEQUALS"},
			check:   func(c Config) bool { return reflect.DeepEqual(normal(c), d) },
		},
		{
			name:    "bad integer",
			environ: []string{"BOSHD_MAX_HOLD=many"},
			wantErr: []string{"config: max_hold: ", `"many"`},
		},
		{
			name:    "bad duration",
			environ: []string{"BOSHD_MAX_WAIT=soon"},
			wantErr: []string{"config: max_wait: ", `"soon"`},
		},
		{
			name:    "validated",
			environ: []string{"BOSHD_MAX_WAIT=0"},
			wantErr: []string{"config: max_wait: ", `"0s"`},
		},
		{
			name:    "all errors at once",
			environ: []string{"BOSHD_MAX_WAIT=soon", "BOSHD_MAX_HOLD=many"},
			wantErr: []string{"config: max_wait: ", "config: max_hold: "},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := Load(nil, tc.environ, io.Discard)
			if tc.wantErr != nil {
				wantErr(t, err, tc.wantErr...)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Errorf("got %+v", c)
			}
		})
	}
}

func TestFile(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		yaml    string
		check   func(Config) bool
		wantErr []string
	}{
		{
			name:  "empty",
			yaml:  "",
			check: func(c Config) bool { return reflect.DeepEqual(normal(c), Default()) },
		},
		{
			name: "durations",
			yaml: "max_wait: 90\ninactivity: \"120\"\npolling: 1m30s\nmax_pause: 1.5\nconnect_timeout: 0.5\n",
			check: func(c Config) bool {
				return c.MaxWait == 90*time.Second && c.Inactivity == 2*time.Minute && c.Polling == 90*time.Second &&
					c.MaxPause == 1500*time.Millisecond && c.ConnectTimeout == 500*time.Millisecond
			},
		},
		{
			name: "upstreams replace the default",
			yaml: "upstreams:\n  example.org: \"10.0.0.1:5222\"\n  example.net:\n  example.com: \"\"\n",
			check: func(c Config) bool {
				return maps.Equal(c.Upstreams, map[string]string{"example.org": "10.0.0.1:5222", "example.net": "", "example.com": ""})
			},
		},
		{
			name: "cors_origins and session limits",
			yaml: "cors_origins: [\"https://chat.example.org\", \"http://localhost:8080\", \"*\"]\nmax_sessions: 5000\nmax_sessions_per_ip: 10\n",
			check: func(c Config) bool {
				return slices.Equal(c.CORSOrigins, []string{"https://chat.example.org", "http://localhost:8080", "*"}) &&
					c.MaxSessions == 5000 && c.MaxSessionsPerIP == 10
			},
		},
		{
			name: "trusted_proxies, public_url, static_dir",
			yaml: "trusted_proxies: [\"127.0.0.1\", \"10.0.0.0/8\"]\npublic_url: https://chat.example.org/http-bind\nstatic_dir: " + os.TempDir() + "\n",
			check: func(c Config) bool {
				return slices.Equal(c.TrustedProxies, []string{"127.0.0.1", "10.0.0.0/8"}) &&
					c.PublicURL == "https://chat.example.org/http-bind" && c.StaticDir == os.TempDir()
			},
		},
		{
			name:    "max_sessions_per_ip not a number",
			yaml:    "max_sessions_per_ip: lots\n",
			wantErr: []string{"config: max_sessions_per_ip"},
		},
		{
			name:  "null value keeps the default",
			yaml:  "upstreams:\nlisten:\n",
			check: func(c Config) bool { return reflect.DeepEqual(normal(c), Default()) },
		},
		{
			name:    "unknown key",
			yaml:    "listen: 127.0.0.1:5280\nmax_wiat: 30s\n",
			wantErr: []string{"f.yaml", `unknown key "max_wiat"`},
		},
		{
			name:    "unknown key without value",
			yaml:    "upstream_ca:\n",
			wantErr: []string{`unknown key "upstream_ca"`},
		},
		{
			name:    "unknown nested key",
			yaml:    "tls:\n  mode: required\n",
			wantErr: []string{`unknown key "tls.mode"`},
		},
		{
			name:    "bad duration",
			yaml:    "max_wait: soon\n",
			wantErr: []string{"config: max_wait: ", `"soon"`},
		},
		{
			name:    "fraction of a request",
			yaml:    "max_hold: 1.5\n",
			wantErr: []string{"config: max_hold: ", "1.5"},
		},
		{
			name:    "wrong type",
			yaml:    "route_allow: {a: b}\n",
			wantErr: []string{"config: route_allow"},
		},
		{
			name:    "every error at once",
			yaml:    "bogus: 1\nmax_wait: soon\nmax_hold: many\n",
			wantErr: []string{`"bogus"`, "max_wait", "max_hold"},
		},
		{
			name:    "not YAML",
			yaml:    "listen: [\n",
			wantErr: []string{"f.yaml"},
		},
		{
			name:    "validated",
			yaml:    "path: bosh\n",
			wantErr: []string{"config: path: ", `"bosh"`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := Load([]string{"--config", writeFile(t, "f.yaml", tc.yaml)}, nil, io.Discard)
			if tc.wantErr != nil {
				wantErr(t, err, tc.wantErr...)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Errorf("got %+v", c)
			}
		})
	}

	t.Run("missing", func(t *testing.T) {
		t.Parallel()
		name := filepath.Join(t.TempDir(), "missing.yaml")
		_, err := Load(nil, []string{"BOSHD_CONFIG=" + name}, io.Discard)
		wantErr(t, err, name)
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("error %v is not os.ErrNotExist", err)
		}
	})
}

func TestFlags(t *testing.T) {
	t.Parallel()
	ca := writeCA(t)
	for _, tc := range []struct {
		name    string
		args    []string
		check   func(Config) bool
		wantErr []string
	}{
		{
			name: "every kind of value",
			args: []string{"--path=/bosh", "--max-hold", "2", "--max-body-size", "2048", "--inactivity", "90", "--polling=1m", "--log-format", "json", "--upstream-tls", "required"},
			check: func(c Config) bool {
				return c.Path == "/bosh" && c.MaxHold == 2 && c.MaxBodySize == 2048 && c.Inactivity == 90*time.Second &&
					c.Polling == time.Minute && c.LogFormat == "json" && c.UpstreamTLS == "required"
			},
		},
		{
			name:  "--upstream-ca",
			args:  []string{"--upstream-ca", ca},
			check: func(c Config) bool { return c.UpstreamCAFile == ca },
		},
		{
			name:  "--upstream-ca-file",
			args:  []string{"--upstream-ca-file", ca},
			check: func(c Config) bool { return c.UpstreamCAFile == ca },
		},
		{
			name: "--route-allow repeated and listed",
			args: []string{"--route-allow", "xmpp:a.example:5222", "--route-allow=xmpp:b.example:5222,xmpp:c.example:5222"},
			check: func(c Config) bool {
				return slices.Equal(c.RouteAllow, []string{"xmpp:a.example:5222", "xmpp:b.example:5222", "xmpp:c.example:5222"})
			},
		},
		{
			name: "--cors-origins repeated and listed, session limits",
			args: []string{"--cors-origins", "https://a.example", "--cors-origins=https://b.example:8443,*", "--max-sessions", "10", "--max-sessions-per-ip=3"},
			check: func(c Config) bool {
				return slices.Equal(c.CORSOrigins, []string{"https://a.example", "https://b.example:8443", "*"}) &&
					c.MaxSessions == 10 && c.MaxSessionsPerIP == 3
			},
		},
		{
			name: "--trusted-proxies repeated and listed, --public-url, --static-dir",
			args: []string{"--trusted-proxies", "127.0.0.1", "--trusted-proxies=10.0.0.0/8,::1", "--public-url", "https://chat.example.org/http-bind", "--static-dir", filepath.Dir(ca)},
			check: func(c Config) bool {
				return slices.Equal(c.TrustedProxies, []string{"127.0.0.1", "10.0.0.0/8", "::1"}) &&
					c.PublicURL == "https://chat.example.org/http-bind" && c.StaticDir == filepath.Dir(ca)
			},
		},
		{
			name:    "static-dir validated",
			args:    []string{"--static-dir", ca},
			wantErr: []string{"config: static_dir: ", "not a directory"},
		},
		{
			name:    "bad max-sessions",
			args:    []string{"--max-sessions", "-1"},
			wantErr: []string{"config: max_sessions: ", "-1"},
		},
		{
			name:    "unknown flag",
			args:    []string{"--max-wiat", "30s"},
			wantErr: []string{"max-wiat"},
		},
		{
			name:    "bad integer",
			args:    []string{"--max-hold", "many"},
			wantErr: []string{"--max-hold", "many"},
		},
		{
			name:    "bad duration",
			args:    []string{"--max-wait", "soon"},
			wantErr: []string{"--max-wait", "soon"},
		},
		{
			name:    "argument",
			args:    []string{"--listen", "127.0.0.1:5280", "serve"},
			wantErr: []string{`"serve"`},
		},
		{
			name:    "validated",
			args:    []string{"--log-level", "loud"},
			wantErr: []string{"config: log_level: ", `"loud"`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := Load(tc.args, nil, io.Discard)
			if tc.wantErr != nil {
				wantErr(t, err, tc.wantErr...)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Errorf("got %+v", c)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"-h", "--help"} {
		t.Run(arg, func(t *testing.T) {
			t.Parallel()
			var usage bytes.Buffer
			// The help comes first, whatever else is wrong.
			_, err := Load([]string{arg, "--config", "/nonexistent/boshd.yaml"}, []string{"BOSHD_MAX_WAIT=soon"}, &usage)
			if err != pflag.ErrHelp {
				t.Fatalf("Load(%s) = %v, want pflag.ErrHelp", arg, err)
			}
			lines := strings.Split(usage.String(), "\n")
			line := func(flag string) string {
				for _, l := range lines {
					l = strings.TrimPrefix(strings.TrimSpace(l), "-h, ")
					if rest, ok := strings.CutPrefix(l, flag); ok && (strings.HasPrefix(rest, " ") || strings.HasPrefix(rest, "[")) {
						return l
					}
				}
				return ""
			}
			settings := Default().settings()
			for _, key := range keys(t) {
				l := line("--" + flagName(key))
				if l == "" {
					t.Errorf("usage does not list --%s for key %s:\n%s", flagName(key), key, &usage)
					continue
				}
				if !reflect.ValueOf(settings[key]).IsZero() && !strings.Contains(l, "(default ") {
					t.Errorf("usage of --%s shows no default: %q", flagName(key), l)
				}
			}
			for _, flag := range []string{"--config", "--upstream", "--upstream-ca", "--version"} {
				if line(flag) == "" {
					t.Errorf("usage does not list %s", flag)
				}
			}
			for _, want := range []string{`(default "127.0.0.1:5280")`, "(default localhost=127.0.0.1:5222)", "(default 1m0s)", "BOSHD_"} {
				if !strings.Contains(usage.String(), want) {
					t.Errorf("usage does not contain %s", want)
				}
			}
		})
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	_, err := Load([]string{"--version"}, []string{"BOSHD_MAX_WAIT=soon"}, io.Discard)
	if err != ErrVersion {
		t.Errorf("Load(--version) = %v, want ErrVersion", err)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	ca := writeCA(t)
	notPEM := writeFile(t, "ca.pem", "not a certificate\n")
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
		{"max_sessions_per_ip negative", func(c *Config) { c.MaxSessionsPerIP = -5 }, []string{"config: max_sessions_per_ip: ", "got -5"}},
		{"tls_cert_file without key", func(c *Config) { c.TLSCertFile = "cert.pem" }, []string{"config: tls_cert_file: ", "set together"}},
		{"tls files missing", func(c *Config) { c.TLSCertFile, c.TLSKeyFile = "/nonexistent/cert.pem", "/nonexistent/key.pem" }, []string{"config: tls_cert_file: "}},
		{"max_element_depth too small", func(c *Config) { c.MaxElementDepth = 2 }, []string{"config: max_element_depth: ", "got 2"}},
		{"admin_listen not host:port", func(c *Config) { c.AdminListen = "5282" }, []string{"config: admin_listen: ", `got "5282"`}},
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
			wantErr(t, err, tc.want...)
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
	err := c.Validate()
	wantErr(t, err, "listen", "max_wait", "log_level", `"x"`, `"y"`)
	if errs := err.(interface{ Unwrap() []error }).Unwrap(); len(errs) != 5 {
		t.Errorf("got %d errors, want 5: %v", len(errs), err)
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

func TestExampleFile(t *testing.T) {
	t.Parallel()
	const name = "../boshd.example.yaml"
	c := mustLoad(t, []string{"--config", name}, nil)
	if !reflect.DeepEqual(normal(c), Default()) {
		t.Errorf("%s loads as\n%+v\nwant the defaults\n%+v", name, c, Default())
	}
	text, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range keys(t) {
		if !bytes.Contains(text, []byte("\n"+key+":")) {
			t.Errorf("%s does not set %s", name, key)
		}
	}
}
