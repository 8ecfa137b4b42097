package load

import (
	"bytes"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/boshd/boshd/config"
)

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

// normal returns c with an empty RouteAllow, CORSOrigins or TrustedProxies
// made nil, so that configs can be compared with reflect.DeepEqual.
func normal(c config.Config) config.Config {
	if len(c.RouteAllow) == 0 {
		c.RouteAllow = nil
	}
	if len(c.CORSOrigins) == 0 {
		c.CORSOrigins = nil
	}
	if len(c.TrustedProxies) == 0 {
		c.TrustedProxies = nil
	}
	if len(c.Peers) == 0 {
		c.Peers = nil
	}
	return c
}

// mustLoad calls Config and fails the test on error.
func mustLoad(t *testing.T, args, environ []string) config.Config {
	t.Helper()
	c, err := Config(args, environ)
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

// loadCase is a case of the table-driven tests of Config: a command line
// and an environment, and either what the Config must satisfy or what its
// error must contain.
type loadCase struct {
	name    string
	args    []string
	environ []string
	check   func(config.Config) bool
	wantErr []string // substrings of the error
}

// runLoadCases runs each case as a parallel subtest.
func runLoadCases(t *testing.T, cases []loadCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := Config(tc.args, tc.environ)
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

func TestFlagNames(t *testing.T) {
	t.Parallel()
	cl := newCommandLine(config.Default())
	for _, s := range config.Settings() {
		names := []string{s.Flag()}
		for _, a := range s.Aliases {
			names = append(names, a.Flag)
		}
		for _, name := range names {
			if cl.fs.Lookup(name) == nil {
				t.Errorf("no flag --%s for key %s", name, s.Key)
			}
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
	if err := config.Default().Validate(); err != nil {
		t.Errorf("config.Default().Validate() = %v", err)
	}
	if got := normal(mustLoad(t, nil, nil)); !reflect.DeepEqual(got, config.Default()) {
		t.Errorf("Config with nothing set = %+v, want config.Default() %+v", got, config.Default())
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
	d := config.Default()
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
		{"empty flag means no file", []string{"--config="}, []string{"BOSHD_CONFIG=" + a}, config.Default().Listen},
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
			c, err := Config(tc.args, []string{"BOSHD_UPSTREAMS=env.example="})
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

func TestPeerFlags(t *testing.T) {
	t.Parallel()
	secret := writeFile(t, "secret", strings.Repeat("x", 32))
	cluster := []string{"--node-id", "n1", "--cluster-secret-file", secret}
	for _, tc := range []struct {
		name    string
		args    []string
		environ []string
		want    map[string]string
		wantErr []string
	}{
		{
			name: "repeated",
			args: append([]string{"--peer", "n2=127.0.0.12:5280", "--peer=n3=127.0.0.13:5280"}, cluster...),
			want: map[string]string{"n2": "127.0.0.12:5280", "n3": "127.0.0.13:5280"},
		},
		{
			name: "with --peers",
			args: append([]string{"--peers", "n2=10.0.0.2:5280,n3=10.0.0.3:5280", "--peer", "n4=10.0.0.4:5280"}, cluster...),
			want: map[string]string{"n2": "10.0.0.2:5280", "n3": "10.0.0.3:5280", "n4": "10.0.0.4:5280"},
		},
		{
			name:    "from the environment",
			args:    cluster,
			environ: []string{"BOSHD_PEERS=n2=10.0.0.2:5280, n3=10.0.0.3:5280"},
			want:    map[string]string{"n2": "10.0.0.2:5280", "n3": "10.0.0.3:5280"},
		},
		{
			name:    "flags over the environment",
			args:    append([]string{"--peer", "n5=10.0.0.5:5280"}, cluster...),
			environ: []string{"BOSHD_PEERS=n2=10.0.0.2:5280"},
			want:    map[string]string{"n5": "10.0.0.5:5280"},
		},
		{
			name:    "no equals sign",
			args:    []string{"--peer", "n2"},
			wantErr: []string{"--peer", `"n2" is not NAME=HOST:PORT`},
		},
		{
			name:    "no equals sign in the environment",
			environ: []string{"BOSHD_PEERS=n2"},
			wantErr: []string{"config: peers: ", `"n2" is not NAME=HOST:PORT`},
		},
		{
			name:    "node twice",
			args:    []string{"--peer", "n2=10.0.0.2:5280", "--peer", "n2=10.0.0.3:5280"},
			wantErr: []string{"--peer", `node "n2" given twice`},
		},
		{
			name:    "validated",
			args:    []string{"--peer", "n2=10.0.0.2:5280"},
			wantErr: []string{"config: peers: need node_id", "config: peers: need cluster_secret_file"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := Config(tc.args, tc.environ)
			if tc.wantErr != nil {
				wantErr(t, err, tc.wantErr...)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(c.Peers, tc.want) || c.NodeID != "n1" || c.ClusterSecretFile != secret {
				t.Errorf("node_id, peers, cluster_secret_file = %q, %v, %q; want n1, %v, %q", c.NodeID, c.Peers, c.ClusterSecretFile, tc.want, secret)
			}
		})
	}
}

func TestEnvironment(t *testing.T) {
	t.Parallel()
	d := config.Default()
	runLoadCases(t, []loadCase{
		{
			name:    "upstreams",
			environ: []string{"BOSHD_UPSTREAMS=a.example=10.0.0.1:5222,b.example="},
			check: func(c config.Config) bool {
				return maps.Equal(c.Upstreams, map[string]string{"a.example": "10.0.0.1:5222", "b.example": ""})
			},
		},
		{
			name:    "upstreams with blanks",
			environ: []string{"BOSHD_UPSTREAMS= a.example = 10.0.0.1:5222 , ,b.example=,"},
			check: func(c config.Config) bool {
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
			check: func(c config.Config) bool {
				return slices.Equal(c.RouteAllow, []string{"xmpp:a.example:5222", "xmpp:b.example:5269"})
			},
		},
		{
			name:    "cors_origins",
			environ: []string{"BOSHD_CORS_ORIGINS=https://chat.example.org, *"},
			check: func(c config.Config) bool {
				return slices.Equal(c.CORSOrigins, []string{"https://chat.example.org", "*"})
			},
		},
		{
			name:    "trusted_proxies and public_url",
			environ: []string{"BOSHD_TRUSTED_PROXIES=127.0.0.1, 10.0.0.0/8", "BOSHD_PUBLIC_URL=https://chat.example.org/http-bind"},
			check: func(c config.Config) bool {
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
			check:   func(c config.Config) bool { return c.MaxSessions == 1000 && c.MaxSessionsPerIP == 0 },
		},
		{
			name:    "cors_origins validated",
			environ: []string{"BOSHD_CORS_ORIGINS=https://chat.example.org/"},
			wantErr: []string{"config: cors_origins: ", `"https://chat.example.org/"`},
		},
		{
			name:    "every kind of value",
			environ: []string{"BOSHD_PATH=/bosh", "BOSHD_MAX_HOLD=2", "BOSHD_MAX_BODY_SIZE=2048", "BOSHD_INACTIVITY=90", "BOSHD_POLLING=1m", "BOSHD_LOG_FORMAT=json"},
			check: func(c config.Config) bool {
				return c.Path == "/bosh" && c.MaxHold == 2 && c.MaxBodySize == 2048 && c.Inactivity == 90*time.Second && c.Polling == time.Minute && c.LogFormat == "json"
			},
		},
		{
			name:    "last value wins",
			environ: []string{"BOSHD_LISTEN=10.0.0.1:1", "BOSHD_LISTEN=10.0.0.2:2"},
			check:   func(c config.Config) bool { return c.Listen == "10.0.0.2:2" },
		},
		{
			name:    "empty is unset",
			environ: []string{"BOSHD_LISTEN=10.0.0.1:1", "BOSHD_LISTEN=", "BOSHD_MAX_WAIT="},
			check:   func(c config.Config) bool { return c.Listen == d.Listen && c.MaxWait == d.MaxWait },
		},
		{
			name:    "other variables ignored",
			environ: []string{"LISTEN=10.0.0.1:1", "boshd_listen=10.0.0.1:1", "BOSHD_NO_SUCH_KEY=1", "BOSHD_", "NOEQUALS"},
			check:   func(c config.Config) bool { return reflect.DeepEqual(normal(c), d) },
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
	})
}

func TestFile(t *testing.T) {
	t.Parallel()
	var cases []loadCase
	for _, tc := range []struct {
		name    string
		yaml    string
		check   func(config.Config) bool
		wantErr []string
	}{
		{
			name:  "empty",
			yaml:  "",
			check: func(c config.Config) bool { return reflect.DeepEqual(normal(c), config.Default()) },
		},
		{
			name: "durations",
			yaml: "max_wait: 90\ninactivity: \"120\"\npolling: 1m30s\nmax_pause: 1.5\nconnect_timeout: 0.5\n",
			check: func(c config.Config) bool {
				return c.MaxWait == 90*time.Second && c.Inactivity == 2*time.Minute && c.Polling == 90*time.Second &&
					c.MaxPause == 1500*time.Millisecond && c.ConnectTimeout == 500*time.Millisecond
			},
		},
		{
			name: "upstreams replace the default",
			yaml: "upstreams:\n  example.org: \"10.0.0.1:5222\"\n  example.net:\n  example.com: \"\"\n",
			check: func(c config.Config) bool {
				return maps.Equal(c.Upstreams, map[string]string{"example.org": "10.0.0.1:5222", "example.net": "", "example.com": ""})
			},
		},
		{
			name: "cors_origins and session limits",
			yaml: "cors_origins: [\"https://chat.example.org\", \"http://localhost:8080\", \"*\"]\nmax_sessions: 5000\nmax_sessions_per_ip: 10\n",
			check: func(c config.Config) bool {
				return slices.Equal(c.CORSOrigins, []string{"https://chat.example.org", "http://localhost:8080", "*"}) &&
					c.MaxSessions == 5000 && c.MaxSessionsPerIP == 10
			},
		},
		{
			name: "trusted_proxies, public_url, static_dir",
			yaml: "trusted_proxies: [\"127.0.0.1\", \"10.0.0.0/8\"]\npublic_url: https://chat.example.org/http-bind\nstatic_dir: " + os.TempDir() + "\n",
			check: func(c config.Config) bool {
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
			check: func(c config.Config) bool { return reflect.DeepEqual(normal(c), config.Default()) },
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
		cases = append(cases, loadCase{name: tc.name, args: []string{"--config", writeFile(t, "f.yaml", tc.yaml)}, check: tc.check, wantErr: tc.wantErr})
	}
	runLoadCases(t, cases)

	t.Run("missing", func(t *testing.T) {
		t.Parallel()
		name := filepath.Join(t.TempDir(), "missing.yaml")
		_, err := Config(nil, []string{"BOSHD_CONFIG=" + name})
		wantErr(t, err, name)
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("error %v is not os.ErrNotExist", err)
		}
	})
}

func TestFlags(t *testing.T) {
	t.Parallel()
	const ca = "../testdata/ca.pem"
	runLoadCases(t, []loadCase{
		{
			name: "every kind of value",
			args: []string{"--path=/bosh", "--max-hold", "2", "--max-body-size", "2048", "--inactivity", "90", "--polling=1m", "--log-format", "json", "--upstream-tls", "required"},
			check: func(c config.Config) bool {
				return c.Path == "/bosh" && c.MaxHold == 2 && c.MaxBodySize == 2048 && c.Inactivity == 90*time.Second &&
					c.Polling == time.Minute && c.LogFormat == "json" && c.UpstreamTLS == "required"
			},
		},
		{
			name:  "--upstream-ca",
			args:  []string{"--upstream-ca", ca},
			check: func(c config.Config) bool { return c.UpstreamCAFile == ca },
		},
		{
			name:  "--upstream-ca-file",
			args:  []string{"--upstream-ca-file", ca},
			check: func(c config.Config) bool { return c.UpstreamCAFile == ca },
		},
		{
			name: "--route-allow repeated and listed",
			args: []string{"--route-allow", "xmpp:a.example:5222", "--route-allow=xmpp:b.example:5222,xmpp:c.example:5222"},
			check: func(c config.Config) bool {
				return slices.Equal(c.RouteAllow, []string{"xmpp:a.example:5222", "xmpp:b.example:5222", "xmpp:c.example:5222"})
			},
		},
		{
			name: "--cors-origins repeated and listed, session limits",
			args: []string{"--cors-origins", "https://a.example", "--cors-origins=https://b.example:8443,*", "--max-sessions", "10", "--max-sessions-per-ip=3"},
			check: func(c config.Config) bool {
				return slices.Equal(c.CORSOrigins, []string{"https://a.example", "https://b.example:8443", "*"}) &&
					c.MaxSessions == 10 && c.MaxSessionsPerIP == 3
			},
		},
		{
			name: "--trusted-proxies repeated and listed, --public-url, --static-dir",
			args: []string{"--trusted-proxies", "127.0.0.1", "--trusted-proxies=10.0.0.0/8,::1", "--public-url", "https://chat.example.org/http-bind", "--static-dir", filepath.Dir(ca)},
			check: func(c config.Config) bool {
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
	})
}

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"-h", "--help"} {
		// The help comes first, whatever else is wrong.
		_, err := Config([]string{arg, "--config", "/nonexistent/boshd.yaml", "--max-hold=many"}, []string{"BOSHD_MAX_WAIT=soon"})
		if err != ErrHelp {
			t.Errorf("Config(%s) = %v, want ErrHelp", arg, err)
		}
	}
	var usage bytes.Buffer
	if err := Usage(&usage); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(usage.String(), "\n")
	// line returns the entry of flag: its line and the lines its text
	// is wrapped to, joined.
	line := func(flag string) string {
		for i, l := range lines {
			l = strings.TrimPrefix(strings.TrimSpace(l), "-h, ")
			if rest, ok := strings.CutPrefix(l, flag); ok && (strings.HasPrefix(rest, " ") || strings.HasPrefix(rest, "[")) {
				for _, more := range lines[i+1:] {
					if more = strings.TrimSpace(more); more == "" || strings.HasPrefix(more, "-") {
						break
					}
					l += " " + more
				}
				return l
			}
		}
		return ""
	}
	d := config.Default()
	for _, s := range config.Settings() {
		l := line("--" + s.Flag())
		if l == "" {
			t.Errorf("usage does not list --%s for key %s:\n%s", s.Flag(), s.Key, &usage)
			continue
		}
		if !reflect.ValueOf(s.Value(d)).IsZero() && !strings.Contains(l, "(default ") {
			t.Errorf("usage of --%s shows no default: %q", s.Flag(), l)
		}
	}
	for _, flag := range []string{"--config", "--upstream", "--upstream-ca", "--version"} {
		if line(flag) == "" {
			t.Errorf("usage does not list %s", flag)
		}
	}
	for _, want := range []string{
		`--listen HOST:PORT`, `(default "127.0.0.1:5280")`,
		"--upstream DOMAIN=HOST:PORT", "(default localhost=127.0.0.1:5222)",
		"--max-wait DURATION", "(default 1m0s)",
		"--trusted-proxies IP", "(default [127.0.0.1,::1])",
		"--max-conns-per-ip N", "(default 256)",
		"BOSHD_",
	} {
		if !strings.Contains(usage.String(), want) {
			t.Errorf("usage does not contain %s", want)
		}
	}
	for _, l := range lines {
		if len(l) > usageWidth {
			t.Errorf("usage line longer than %d: %q", usageWidth, l)
		}
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	_, err := Config([]string{"--version"}, []string{"BOSHD_MAX_WAIT=soon"})
	if err != ErrVersion {
		t.Errorf("Config(--version) = %v, want ErrVersion", err)
	}
}
