package sqlstore_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/onecommons/commonsid/internal/testpg"
	"github.com/onecommons/commonsid/store/sqlstore"
)

// TestLockCloud: shared holders coexist; the exclusive lock is refused
// while one holds it, and shared ones while it is held; release frees it.
func TestLockCloud(t *testing.T) {
	for name, dsn := range map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "c.db") },
		"postgres": func(t *testing.T) string { return testpg.DSN(t) },
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			d := dsn(t)
			a, b := open(t, d), open(t, d)
			s1, err := a.LockCloud(ctx, false)
			if err != nil {
				t.Fatal(err)
			}
			s2, err := b.LockCloud(ctx, false)
			if err != nil {
				t.Fatalf("second shared lock: %v", err)
			}
			if _, err := b.LockCloud(ctx, true); !errors.Is(err, sqlstore.ErrLocked) {
				t.Fatalf("exclusive while shared held: %v", err)
			}
			s1()
			if _, err := a.LockCloud(ctx, true); !errors.Is(err, sqlstore.ErrLocked) {
				t.Fatalf("exclusive while one shared still held: %v", err)
			}
			s2()
			x, err := a.LockCloud(ctx, true)
			if err != nil {
				t.Fatalf("exclusive once free: %v", err)
			}
			if _, err := b.LockCloud(ctx, false); !errors.Is(err, sqlstore.ErrLocked) {
				t.Fatalf("shared while exclusive held: %v", err)
			}
			x()
			s3, err := b.LockCloud(ctx, false)
			if err != nil {
				t.Fatalf("shared after exclusive released: %v", err)
			}
			s3()
		})
	}
}
