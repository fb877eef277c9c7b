package sqlstore_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/onecommons/commonsid/internal/testpg"
	"github.com/onecommons/commonsid/store/sqlstore"
)

// backlog writes n expired and 3 live rows into oauth_requests,
// backchannel_deliveries and auth_failures, straight in SQL.
func backlog(t *testing.T, db *sqlstore.DB, n int, now time.Time) {
	t.Helper()
	ctx := context.Background()
	tx, err := db.SQL().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	past, future := now.Add(-time.Minute).UnixMicro(), now.Add(time.Hour).UnixMicro()
	for i := range n + 3 {
		exp := past
		if i >= n {
			exp = future
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO oauth_requests (kind, signature_hash, request_id, client_id, requested_at, expires_at, request)
			VALUES ('access', $1, 'g', 'c', 0, $2, '{}')`, fmt.Sprint("sig", i), exp); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 || i >= n {
			if _, err := tx.ExecContext(ctx, `INSERT INTO backchannel_deliveries (id, client_id, uri, status, next_at, created_at, expires_at)
				VALUES ($1, 'c', 'https://rp.example/bc', 'done', 0, 0, $2)`, fmt.Sprint("bc", i), exp); err != nil {
				t.Fatal(err)
			}
			// Counters: old ones have their last attempt before the cut.
			if _, err := tx.ExecContext(ctx, `INSERT INTO auth_failures (key_hash, window_start, count, last_at) VALUES ($1, 0, 1, $2)`,
				fmt.Sprint("k", i), exp-int64(time.Hour/time.Microsecond)*map[bool]int64{true: 0, false: 1}[i >= n]); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func count(t *testing.T, db *sqlstore.DB, table string) int {
	t.Helper()
	var n int
	if err := db.SQL().QueryRow(`SELECT COUNT(*) FROM ` + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSweep: a backlog of several batches is removed in statements of at
// most Batch rows, pausing between them, counted per table; live rows, and
// failure counters newer than FailuresBefore, stay.
func TestSweep(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			dsn := "sqlite:" + filepath.Join(t.TempDir(), "t.db")
			if dialect == "postgres" {
				dsn = testpg.DSN(t)
			}
			db := open(t, dsn)
			now := time.Now()
			backlog(t, db, 250, now)
			var (
				mu      sync.Mutex
				batches = map[string][]int64{}
			)
			start := time.Now()
			res, err := db.Sweep(context.Background(), now, sqlstore.SweepOptions{
				Batch: 100, Pause: 20 * time.Millisecond, FailuresBefore: now.Add(-30 * time.Minute),
				Deleted: func(table string, n int64) { mu.Lock(); batches[table] = append(batches[table], n); mu.Unlock() },
			})
			if err != nil || res.Skipped {
				t.Fatalf("Sweep = %+v, %v", res, err)
			}
			if got := fmt.Sprint(batches["oauth_requests"]); got != "[100 100 50]" {
				t.Fatalf("oauth_requests batches %s, want [100 100 50]", got)
			}
			if res.Rows["oauth_requests"] != 250 || res.Rows["backchannel_deliveries"] != 25 || res.Rows["auth_failures"] != 25 || res.Total() != 300 {
				t.Fatalf("rows removed %v", res.Rows)
			}
			// Two pauses for oauth_requests at least.
			if el := time.Since(start); el < 40*time.Millisecond {
				t.Fatalf("sweep took %v: the pauses between batches were skipped", el)
			}
			for _, tb := range []string{"oauth_requests", "backchannel_deliveries", "auth_failures"} {
				if n := count(t, db, tb); n != 3 {
					t.Fatalf("%s holds %d rows after the sweep, want the 3 live ones", tb, n)
				}
			}
			// Without FailuresBefore the counters are left alone.
			res, err = db.Sweep(context.Background(), now.Add(2*time.Hour), sqlstore.SweepOptions{})
			if err != nil || res.Rows["oauth_requests"] != 3 || res.Rows["auth_failures"] != 0 {
				t.Fatalf("second sweep = %+v, %v", res, err)
			}
			// A cancelled sweep stops and says so.
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if _, err := db.Sweep(ctx, now, sqlstore.SweepOptions{}); err == nil {
				t.Fatal("a cancelled sweep reported success")
			}
		})
	}
}

// TestSweepOneAtATime: on PostgreSQL, a replica's sweep is skipped while
// another process of the same database holds the sweep's lock, and
// replicas sweeping together remove every row exactly once between them.
func TestSweepOneAtATime(t *testing.T) {
	t.Parallel()
	dsn := testpg.DSN(t)
	a, b := open(t, dsn), open(t, dsn)
	now := time.Now()
	backlog(t, a, 3000, now)

	ctx := context.Background()
	holder, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(ctx)
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_lock(hashtext('commonsid/purge/' || current_schema()))`); err != nil {
		t.Fatal(err)
	}
	res, err := b.Sweep(ctx, now, sqlstore.SweepOptions{})
	if err != nil || !res.Skipped || res.Total() != 0 {
		t.Fatalf("sweep while another holds the lock = %+v, %v; want skipped", res, err)
	}
	if n := count(t, b, "oauth_requests"); n != 3003 {
		t.Fatalf("a skipped sweep removed rows: %d left", n)
	}
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_unlock(hashtext('commonsid/purge/' || current_schema()))`); err != nil {
		t.Fatal(err)
	}

	var (
		wg      sync.WaitGroup
		results [2]sqlstore.SweepResult
		errs    [2]error
	)
	for i, db := range []*sqlstore.DB{a, b} {
		wg.Go(func() {
			results[i], errs[i] = db.Sweep(ctx, now, sqlstore.SweepOptions{Pause: 5 * time.Millisecond})
		})
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	if got := results[0].Rows["oauth_requests"] + results[1].Rows["oauth_requests"]; got != 3000 {
		t.Fatalf("two replicas removed %d + %d rows, want 3000 between them", results[0].Rows["oauth_requests"], results[1].Rows["oauth_requests"])
	}
	if n := count(t, a, "oauth_requests"); n != 3 {
		t.Fatalf("%d rows left, want the 3 live ones", n)
	}
	// The lock was given back: a later sweep runs.
	if res, err := a.Sweep(ctx, now, sqlstore.SweepOptions{}); err != nil || res.Skipped {
		t.Fatalf("sweep after both finished = %+v, %v", res, err)
	}
}
