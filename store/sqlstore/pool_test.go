package sqlstore

import (
	"context"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
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

// TestSQLiteKeepsConnections: connections opened for concurrent readers
// are kept for the next ones instead of closed after use (each new SQLite
// connection applies the pragmas and parses the whole schema again).
func TestSQLiteKeepsConnections(t *testing.T) {
	ctx := context.Background()
	d, err := Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	readers := sqliteIdleConns()
	for round := range 3 {
		// Each reader holds its connection until all have one.
		var held, done sync.WaitGroup
		held.Add(readers)
		release := make(chan struct{})
		for range readers {
			done.Add(1)
			go func() {
				defer done.Done()
				rows, err := d.db.QueryContext(ctx, `SELECT 1`)
				held.Done()
				if err != nil {
					t.Error(err)
					return
				}
				<-release
				rows.Close()
			}()
		}
		held.Wait()
		close(release)
		done.Wait()
		st := d.db.Stats()
		if st.MaxIdleClosed != 0 || st.OpenConnections < readers {
			t.Fatalf("round %d: %d connections open, %d closed as surplus idle; want %d kept", round, st.OpenConnections, st.MaxIdleClosed, readers)
		}
	}
}
