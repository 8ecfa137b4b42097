package integration

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// TestConformanceNamesRealTests checks that every test docs/CONFORMANCE.md
// names as covering a rule exists, in the package it names: a test renamed
// or moved without the file following would leave a rule claimed but
// unchecked.
func TestConformanceNamesRealTests(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(filepath.Join("..", "docs", "CONFORMANCE.md"))
	if err != nil {
		t.Fatal(err)
	}
	dirs := map[string]string{
		"bosh":        "bosh",
		"gateway":     "gateway",
		"wsbind":      "wsbind",
		"session":     "session",
		"xmpp":        "xmpp",
		"rawxml":      "internal/rawxml",
		"integration": "integration",
		"config":      "config",
		"admin":       "admin",
		"boshd":       "cmd/boshd",
	}
	cited := regexp.MustCompile("`([a-z]+)\\.(Test[A-Za-z0-9_]+)`").FindAllSubmatch(doc, -1)
	if len(cited) < 100 {
		t.Fatalf("docs/CONFORMANCE.md names %d tests; expected over 100: has its format changed?", len(cited))
	}
	defined := map[string]map[string]bool{} // package dir -> test names
	testFunc := regexp.MustCompile(`(?m)^func (Test[A-Za-z0-9_]+)\(`)
	var missing []string
	for _, c := range cited {
		pkg, name := string(c[1]), string(c[2])
		if pkg == "package" {
			continue // the format, as the file's introduction gives it
		}
		dir, ok := dirs[pkg]
		if !ok {
			missing = append(missing, pkg+"."+name+" (unknown package)")
			continue
		}
		if defined[dir] == nil {
			defined[dir] = testsIn(t, filepath.Join("..", dir), testFunc)
		}
		if !defined[dir][name] {
			missing = append(missing, pkg+"."+name)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		t.Errorf("docs/CONFORMANCE.md names tests that do not exist:\n\t%s", strings.Join(dedupe(missing), "\n\t"))
	}
}

// testsIn returns the names of the test functions in dir's _test.go files.
func testsIn(t *testing.T, dir string, testFunc *regexp.Regexp) map[string]bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files in %s (%v)", dir, err)
	}
	names := map[string]bool{}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range testFunc.FindAllSubmatch(src, -1) {
			names[string(m[1])] = true
		}
	}
	return names
}

// dedupe returns sorted s without repeats.
func dedupe(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
