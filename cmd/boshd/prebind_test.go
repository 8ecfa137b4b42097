package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestTokenFile: the prebind token is read trimmed, read again on
// reload, and kept when the file cannot be read or holds none.
func TestTokenFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "token")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("  first\n")
	f, err := loadTokenFile(path)
	if err != nil || string(f.get()) != "first" {
		t.Fatalf("loadTokenFile = %q, %v; want first", f.get(), err)
	}
	for _, tc := range []struct {
		content string // "" removes the file
		want    string
		fails   bool
	}{
		{"second\n", "second", false},
		{" \n", "second", true},
		{"", "second", true},
		{"third", "third", false},
	} {
		if tc.content == "" {
			os.Remove(path)
		} else {
			write(tc.content)
		}
		err := f.reload()
		if (err != nil) != tc.fails || string(f.get()) != tc.want {
			t.Errorf("file %q: reload = %v, token %q; want failure %v, token %q", tc.content, err, f.get(), tc.fails, tc.want)
		}
	}
	if _, err := loadTokenFile(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("loadTokenFile of a missing file succeeded")
	}
}
