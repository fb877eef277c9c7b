// Package testdb gives tests a migrated SQLite store in a temporary folder,
// and a key manager over it.
package testdb

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/onecommons/commonsid/keys"
	"github.com/onecommons/commonsid/store/sqlstore"
)

// SQLite opens and migrates a fresh SQLite database, closed when the test
// ends, and returns it with the path of its file.
func SQLite(t testing.TB) (*sqlstore.DB, string) {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "test.db")
	db, err := sqlstore.Open(ctx, "sqlite:"+path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return db, path
}

// Keys returns a key manager over db, sealing with an all-zero test KEK,
// holding an active key of the default algorithm.
func Keys(t testing.TB, db *sqlstore.DB) (*keys.Manager, *keys.KEK) {
	t.Helper()
	kek, err := keys.NewKEK(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	km := &keys.Manager{Store: db, KEK: kek}
	if _, err := km.Ensure(context.Background(), keys.DefaultAlg); err != nil {
		t.Fatal(err)
	}
	return km, kek
}
