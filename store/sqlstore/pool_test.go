package sqlstore

import (
	"context"
	"runtime"
	"strings"
	"testing"

	"github.com/onecommons/commonsid/internal/testpg"
)

// TestPoolSize: a few connections per core by default; pool_max_conns in
// the URL sets it and is not passed on to the server; a bad value is a
// clear error.
func TestPoolSize(t *testing.T) {
	dsn := testpg.DSN(t)
	ctx := context.Background()
	d, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := d.db.Stats().MaxOpenConnections, max(4, 4*runtime.GOMAXPROCS(0)); got != want {
		t.Errorf("default pool %d, want %d", got, want)
	}
	d.Close()

	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	d, err = Open(ctx, dsn+sep+"pool_max_conns=3")
	if err != nil {
		t.Fatalf("with pool_max_conns: %v", err)
	}
	if got := d.db.Stats().MaxOpenConnections; got != 3 {
		t.Errorf("pool %d, want 3", got)
	}
	if err := d.Ping(ctx); err != nil {
		t.Fatalf("the server was given pool_max_conns: %v", err)
	}
	d.Close()

	for _, bad := range []string{"0", "x", "-2", "100000"} {
		_, err := Open(ctx, dsn+sep+"pool_max_conns="+bad)
		if err == nil || !strings.Contains(err.Error(), "pool_max_conns") {
			t.Errorf("pool_max_conns=%s: %v, want an error naming it", bad, err)
		}
	}
}
