package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onecommons/commonsid/keys"
)

// TestDataDirTightened: a data folder that exists at 0755 and a key file at
// 0644 are tightened to 0700 and 0600 when the cloud opens, each with an
// info line saying so; a private folder is left as it is, silently.
func TestDataDirTightened(t *testing.T) {
	t.Parallel()
	e := sqliteEnv(t)
	e["COMMONSID_LOG_LEVEL"] = "info"
	dir := e["COMMONSID_DATA"]
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755) // whatever the umask
	e.must(t, "", "migrate", "up")
	kek := filepath.Join(dir, keys.KEKFile)
	mode := func(p string) os.FileMode {
		t.Helper()
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode().Perm()
	}
	if got := mode(dir); got != 0o700 {
		t.Fatalf("data folder created at 0755 is %v after the first run, want 0700", got)
	}

	os.Chmod(dir, 0o755)
	os.Chmod(kek, 0o644)
	r := e.run(t, "", "user", "list")
	if r.code != 0 {
		t.Fatalf("user list with a 0755 folder and a 0644 key file: exit %d\n%s", r.code, r.stderr)
	}
	if mode(dir) != 0o700 || mode(kek) != 0o600 {
		t.Fatalf("modes after opening: folder %v, key %v; want 0700 and 0600", mode(dir), mode(kek))
	}
	for _, want := range []string{"data folder permissions tightened", "key-encryption key file permissions tightened"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("log lacks %q:\n%s", want, r.stderr)
		}
	}

	if r := e.run(t, "", "user", "list"); r.code != 0 || strings.Contains(r.stderr, "tightened") {
		t.Fatalf("a private folder: exit %d, log %q; want no change reported", r.code, r.stderr)
	}
}
