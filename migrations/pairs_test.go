package migrations

import (
	"io/fs"
	"regexp"
	"testing"
)

var name = regexp.MustCompile(`^(\d{4})_[a-z0-9_]+\.sql$`)

func versions(t *testing.T, fsys fs.FS) map[string]string {
	t.Helper()
	ents, err := fs.ReadDir(fsys, ".")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range ents {
		m := name.FindStringSubmatch(e.Name())
		if m == nil {
			t.Errorf("migration %q is not named NNNN_name.sql", e.Name())
			continue
		}
		out[m[1]] = e.Name()
	}
	return out
}

// TestDialectsPaired fails when a migration version exists in one dialect only.
func TestDialectsPaired(t *testing.T) {
	sq, pg := versions(t, SQLite()), versions(t, Postgres())
	if len(sq) == 0 {
		t.Fatal("no migrations embedded")
	}
	for v, n := range sq {
		if pn, ok := pg[v]; !ok {
			t.Errorf("sqlite/%s has no postgres counterpart", n)
		} else if pn != n {
			t.Errorf("version %s named %s (sqlite) but %s (postgres)", v, n, pn)
		}
	}
	for v, n := range pg {
		if _, ok := sq[v]; !ok {
			t.Errorf("postgres/%s has no sqlite counterpart", n)
		}
	}
}
