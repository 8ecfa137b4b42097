package config

import (
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestSettings checks the table itself: one setting for each field of
// Config, in field order, with defaults of the field's type, and names
// that cannot clash.
func TestSettings(t *testing.T) {
	t.Parallel()
	var c Config
	base := reflect.ValueOf(&c).Elem()
	fields := reflect.TypeFor[Config]()
	flags := map[string]string{"config": "", "version": "", "help": ""} // the loader's own
	keyPattern := regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	settings := Settings()
	if len(settings) != fields.NumField() {
		t.Errorf("%d settings for the %d fields of Config", len(settings), fields.NumField())
	}
	for i, s := range settings {
		if !keyPattern.MatchString(s.Key) {
			t.Errorf("key %q is not lower_snake_case", s.Key)
		}
		ptr := reflect.ValueOf(s.Field(&c))
		if i < fields.NumField() && ptr.Pointer() != base.Field(i).Addr().Pointer() {
			t.Errorf("setting %d, %s, is not field %d, %s: the table must follow the fields", i, s.Key, i, fields.Field(i).Name)
		}
		if s.Default != nil && reflect.TypeOf(s.Default) != ptr.Type().Elem() {
			t.Errorf("%s: default %#v is a %T, want a %s", s.Key, s.Default, s.Default, ptr.Type().Elem())
		}
		if s.Help == "" || strings.ContainsAny(s.Help, "\n") || strings.HasSuffix(s.Help, ".") {
			t.Errorf("%s: help %q must be one line without a final period", s.Key, s.Help)
		}
		names := []string{s.Flag()}
		for _, a := range s.Aliases {
			names = append(names, a.Flag)
		}
		for _, name := range names {
			if other, dup := flags[name]; dup {
				t.Errorf("flag --%s of %s is also that of %q", name, s.Key, other)
			}
			flags[name] = s.Key
		}
		if got, ok := Lookup(s.Key); !ok || got.Key != s.Key {
			t.Errorf("Lookup(%q) = %q, %v", s.Key, got.Key, ok)
		}
	}
	if _, ok := Lookup("no_such_key"); ok {
		t.Error("Lookup found no_such_key")
	}
}

func TestSettingNames(t *testing.T) {
	t.Parallel()
	s, _ := Lookup("upstream_ca_file")
	if got := s.Flag(); got != "upstream-ca-file" {
		t.Errorf("Flag() = %q", got)
	}
	if got := s.Env(); got != "BOSHD_UPSTREAM_CA_FILE" {
		t.Errorf("Env() = %q", got)
	}
}

func TestDefault(t *testing.T) {
	t.Parallel()
	d := Default()
	if err := d.Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
	for _, s := range Settings() {
		want := s.Default
		if want == nil {
			want = reflect.Zero(reflect.TypeOf(s.Field(&d)).Elem()).Interface()
		}
		if got := s.Value(d); !reflect.DeepEqual(got, want) {
			t.Errorf("Default() %s = %#v, want %#v", s.Key, got, want)
		}
	}
	// Each call returns maps and lists of its own.
	d.Upstreams["example.org"] = ""
	d.TrustedProxies[0] = "192.0.2.1"
	if again := Default(); len(again.Upstreams) != 1 || again.TrustedProxies[0] != "127.0.0.1" {
		t.Errorf("changing one Default() changed the next: %v %v", again.Upstreams, again.TrustedProxies)
	}
}

func TestBound(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{time.Hour, "1h"},
		{90 * time.Minute, "1h30m"},
		{time.Minute, "1m"},
		{20 * time.Minute, "20m"},
		{10 * time.Second, "10s"},
		{time.Second, "1s"},
		{1500 * time.Millisecond, "1.5s"},
		{0, "0s"},
	} {
		if got := bound(tc.d); got != tc.want {
			t.Errorf("bound(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
	if got := bound(1024); got != "1024" {
		t.Errorf("bound(1024) = %q", got)
	}
}
