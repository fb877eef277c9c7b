// Package testpg gives tests a fresh PostgreSQL database.
//
// The server is COMMONSID_TEST_POSTGRES_DSN when set, else the local default
// (postgres://postgres@127.0.0.1:5432/postgres). Each call creates a uniquely
// named database and drops it when the test ends. When no server answers the
// test is skipped, unless COMMONSID_TEST_REQUIRE_POSTGRES=1, when it fails.
package testpg

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultDSN is tried when COMMONSID_TEST_POSTGRES_DSN is not set.
const DefaultDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// DSN returns the URL of a new, empty database, dropped at the end of t.
func DSN(t testing.TB) string {
	t.Helper()
	base := os.Getenv("COMMONSID_TEST_POSTGRES_DSN")
	if base == "" {
		base = DefaultDSN
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		if os.Getenv("COMMONSID_TEST_REQUIRE_POSTGRES") == "1" {
			t.Fatalf("PostgreSQL required but not reachable: %v", err)
		}
		t.Skipf("PostgreSQL not reachable (set COMMONSID_TEST_POSTGRES_DSN): %v", err)
	}
	defer conn.Close(context.Background())
	b := make([]byte, 6)
	rand.Read(b)
	name := "commonsid_test_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Logf("drop test database %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("drop test database %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("COMMONSID_TEST_POSTGRES_DSN: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}
