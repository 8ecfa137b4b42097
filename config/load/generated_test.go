package load

import (
	"bytes"
	"flag"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/boshd/boshd/config"
)

// update makes the tests that compare a committed file with the text
// generated from config.Settings write the generated text instead:
//
//	go test ./config/load -run 'ExampleFile|Readme' -update
var update = flag.Bool("update", false, "rewrite boshd.example.yaml and README.md's flag table from config.Settings")

// exampleFile is the example configuration file at the root of the module.
const exampleFile = "../../boshd.example.yaml"

// exampleHeader starts the example configuration file.
const exampleHeader = `# Example boshd configuration: every key, set to its default.
#
# Generated from config.Settings (config/settings.go) by
# go test ./config/load -run ExampleFile -update; edit the table, not this file.
#
# Use it with:  boshd --config boshd.example.yaml   (or BOSHD_CONFIG=...)
#
# Any key may be left out, and then takes its default. Every key can also be
# set in the environment as BOSHD_<KEY> (BOSHD_MAX_WAIT=30s) and on the command
# line as --<key-with-dashes> (--max-wait=30s). Flags win over the environment,
# which wins over this file. A key boshd does not know is an error.
#
# Durations are Go durations ("30s", "1m30s") or whole seconds (30).
`

// exampleYAML returns the example configuration file: every setting with
// its help text, its detail and its default.
func exampleYAML() []byte {
	var b bytes.Buffer
	b.WriteString(exampleHeader)
	d := config.Default()
	for _, s := range config.Settings() {
		b.WriteString("\n")
		text := sentence(s.Help)
		if s.Doc != "" {
			text += " " + strings.Join(strings.Fields(s.Doc), " ")
		}
		if s.Reloadable {
			text += " Applied again on reload (SIGHUP)."
		}
		for _, line := range wrap(text, 78) {
			b.WriteString("# " + line + "\n")
		}
		b.WriteString(s.Key + ":" + yamlValue(s.Value(d)) + "\n")
	}
	return b.Bytes()
}

// sentence turns a help text into a sentence: capitalised, without back
// quotes, ending with a period.
func sentence(help string) string {
	help = strings.ReplaceAll(help, "`", "")
	return strings.ToUpper(help[:1]) + help[1:] + "."
}

// wrap breaks text into lines of at most width characters, between words.
func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(text) {
		if line != "" && len(line)+1+len(word) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += word
	}
	return append(lines, line)
}

// yamlValue formats a setting's value as YAML, after the key's colon.
func yamlValue(v any) string {
	switch v := v.(type) {
	case string:
		return " " + strconv.Quote(v)
	case []string:
		quoted := make([]string, len(v))
		for i, item := range v {
			quoted[i] = strconv.Quote(item)
		}
		return " [" + strings.Join(quoted, ", ") + "]"
	case map[string]string:
		if len(v) == 0 {
			return " {}"
		}
		var b strings.Builder
		for _, k := range slices.Sorted(maps.Keys(v)) {
			fmt.Fprintf(&b, "\n  %s: %s", k, strconv.Quote(v[k]))
		}
		return b.String()
	case time.Duration:
		if v%time.Second == 0 {
			return fmt.Sprintf(" %ds", v/time.Second)
		}
		return " " + v.String()
	default: // int, int64, bool
		return fmt.Sprint(" ", v)
	}
}

// TestExampleFile checks that boshd.example.yaml is the text generated
// from config.Settings, and that it loads as the defaults.
func TestExampleFile(t *testing.T) {
	want := exampleYAML()
	if *update {
		if err := os.WriteFile(exampleFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(exampleFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from config.Settings; run go test ./config/load -run ExampleFile -update\n%s", exampleFile, lineDiff(got, want))
	}
	c := mustLoad(t, []string{"--config", exampleFile}, nil)
	if !reflect.DeepEqual(normal(c), config.Default()) {
		t.Errorf("%s loads as\n%+v\nwant the defaults\n%+v", exampleFile, c, config.Default())
	}
}

// lineDiff returns the first line where got and want differ, with its
// number, for a test failure.
func lineDiff(got, want []byte) string {
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := range max(len(g), len(w)) {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d: got\n\t%q\nwant\n\t%q", i+1, gl, wl)
		}
	}
	return "same lines"
}

// readmeFile is the README at the root of the module, whose Configuration
// section has a table of the flags used most, generated between
// readmeBegin and readmeEnd.
const (
	readmeFile  = "../../README.md"
	readmeBegin = "<!-- Flag table generated from config.Settings by go test ./config/load -run Readme -update: edit the table, not these lines. -->\n"
	readmeEnd   = "<!-- End of the generated flag table. -->\n"
)

// readmeTable returns README's table of the flags used most: each flag with
// its value's name, its help and its default.
func readmeTable() []byte {
	var b bytes.Buffer
	b.WriteString("| flag | meaning |\n|---|---|\n")
	fs := newCommandLine(config.Default()).fs
	for _, name := range []string{"listen", "upstream", "upstream-ca", "upstream-tls", "trusted-proxies", "config", "log-level"} {
		f := fs.Lookup(name)
		arg, help := pflag.UnquoteUsage(f)
		if arg != "" {
			arg = " " + arg
		}
		if f.DefValue != "" && f.DefValue != "[]" {
			help += fmt.Sprintf(" (default `%s`)", strings.Trim(f.DefValue, "[]"))
		}
		fmt.Fprintf(&b, "| `--%s%s` | %s |\n", name, arg, help)
	}
	return b.Bytes()
}

// TestReadmeFlags checks that README's flag table is the one generated
// from the flags, and so from config.Settings.
func TestReadmeFlags(t *testing.T) {
	text, err := os.ReadFile(readmeFile)
	if err != nil {
		t.Fatal(err)
	}
	before, rest, ok1 := bytes.Cut(text, []byte(readmeBegin))
	got, after, ok2 := bytes.Cut(rest, []byte(readmeEnd))
	if !ok1 || !ok2 {
		t.Fatalf("%s has no lines\n%s...\n%s around its flag table", readmeFile, readmeBegin, readmeEnd)
	}
	want := readmeTable()
	if *update {
		text = slices.Concat(before, []byte(readmeBegin), want, []byte(readmeEnd), after)
		if err := os.WriteFile(readmeFile, text, 0o644); err != nil {
			t.Fatal(err)
		}
		got = want
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s's flag table differs from config.Settings; run go test ./config/load -run Readme -update\n%s", readmeFile, lineDiff(got, want))
	}
}
