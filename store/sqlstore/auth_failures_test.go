package sqlstore_test

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onecommons/commonsid/internal/limits"
	"github.com/onecommons/commonsid/internal/testpg"
	"github.com/onecommons/commonsid/store/sqlstore"
)

var testPolicy = limits.Policy{Name: "test", Free: 5, Window: 15 * time.Minute, MaxDelay: 15 * time.Minute}

// runFailures checks the progressive delay of a FailureStore: five free
// failures, then 2 s, 4 s … up to the cap, a reset after a quiet window,
// refunds and clears.
func runFailures(t *testing.T, st limits.FailureStore) {
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := 1; i <= 5; i++ {
		n, wait, err := st.TakeAttempt(ctx, "k", testPolicy, t0)
		if err != nil || wait != 0 || n != i {
			t.Fatalf("attempt %d: n=%d wait=%v err=%v", i, n, wait, err)
		}
	}
	if _, wait, err := st.TakeAttempt(ctx, "k", testPolicy, t0.Add(time.Second)); err != nil || wait != time.Second {
		t.Fatalf("6th attempt 1 s later: wait %v (want 1s), err %v", wait, err)
	}
	if n, wait, _ := st.TakeAttempt(ctx, "k", testPolicy, t0.Add(2*time.Second)); wait != 0 || n != 6 {
		t.Fatalf("6th attempt after 2 s: n=%d wait=%v", n, wait)
	}
	// After 6 failures the wait is 4 s from the last one.
	if _, wait, _ := st.TakeAttempt(ctx, "k", testPolicy, t0.Add(3*time.Second)); wait != 3*time.Second {
		t.Fatalf("after 6 failures: wait %v, want 3s", wait)
	}
	// Another key is untouched.
	if n, wait, _ := st.TakeAttempt(ctx, "other", testPolicy, t0); wait != 0 || n != 1 {
		t.Fatalf("other key: n=%d wait=%v", n, wait)
	}
	// A refund takes the last attempt back.
	if err := st.RefundAttempt(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if n, wait, _ := st.TakeAttempt(ctx, "k", testPolicy, t0.Add(5*time.Second)); wait != 0 || n != 6 {
		t.Fatalf("after a refund: n=%d wait=%v, want 6, 0", n, wait)
	}
	// Quiet for the delay plus the window: a fresh start.
	if n, wait, _ := st.TakeAttempt(ctx, "k", testPolicy, t0.Add(5*time.Second+4*time.Second+15*time.Minute)); wait != 0 || n != 1 {
		t.Fatalf("after a quiet window: n=%d wait=%v, want 1, 0", n, wait)
	}
	if err := st.ClearFailures(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := st.TakeAttempt(ctx, "k", testPolicy, t0.Add(time.Hour)); n != 1 {
		t.Fatalf("after clear: n=%d, want 1", n)
	}
	// The delay is capped at MaxDelay.
	for i := 0; i < 40; i++ {
		st.ClearFailures(ctx, "cap")
	}
	at, capped := t0, false
	for i := 0; i < 40 && !capped; i++ {
		_, wait, _ := st.TakeAttempt(ctx, "cap", testPolicy, at)
		if wait > testPolicy.MaxDelay {
			t.Fatalf("wait %v over the cap", wait)
		}
		capped = wait == testPolicy.MaxDelay
		at = at.Add(wait)
	}
	if !capped {
		t.Fatal("the delay never reached its cap of 15 minutes")
	}
	if n, err := st.PurgeFailures(ctx, at.Add(time.Second)); err != nil || n < 1 {
		t.Fatalf("purge: %d %v", n, err)
	}
	if n, wait, _ := st.TakeAttempt(ctx, "cap", testPolicy, at.Add(2*time.Second)); wait != 0 || n != 1 {
		t.Fatalf("after purge: n=%d wait=%v", n, wait)
	}
}

func TestAuthFailuresSQLite(t *testing.T) {
	runFailures(t, open(t, "sqlite:"+filepath.Join(t.TempDir(), "test.db")))
}

func TestAuthFailuresPostgres(t *testing.T) {
	runFailures(t, open(t, testpg.DSN(t)))
}

func TestAuthFailuresMemory(t *testing.T) { runFailures(t, &limits.MemoryFailures{}) }

// Two processes on one PostgreSQL (two pools here) share one budget, and
// concurrent attempts from both count exactly: of 40 at once, 5 pass.
func TestAuthFailuresSharedAcrossReplicas(t *testing.T) {
	dsn := testpg.DSN(t)
	a := open(t, dsn)
	b, err := sqlstore.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var passed atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		db := a
		if i%2 == 1 {
			db = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, wait, err := db.TakeAttempt(context.Background(), "shared", testPolicy, now)
			if err != nil {
				t.Error(err)
				return
			}
			if wait == 0 {
				passed.Add(1)
			}
		}()
	}
	wg.Wait()
	if got := passed.Load(); got != 5 {
		t.Fatalf("%d of 40 concurrent attempts passed on two pools, want 5", got)
	}
}
