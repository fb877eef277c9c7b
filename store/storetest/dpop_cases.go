package storetest

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onecommons/commonsid/oidc"
	"github.com/onecommons/commonsid/store"
)

// testDPoPJTIs: a DPoP proof id is accepted once until it expires, then
// again (the row is taken over, purged or not); of concurrent uses of one
// id exactly one wins; the purge removes expired ids only.
func testDPoPJTIs(t *testing.T, s Store) {
	ds, ok := s.(oidc.DPoPStore)
	if !ok {
		t.Fatal("the store does not implement oidc.DPoPStore")
	}
	exp := fixed.Add(2 * time.Minute)
	if err := ds.UseDPoPJTI(ctx, "a", exp, fixed); err != nil {
		t.Fatal(err)
	}
	if err := ds.UseDPoPJTI(ctx, "a", exp, fixed.Add(time.Minute)); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("replayed proof id: %v", err)
	}
	if err := ds.UseDPoPJTI(ctx, "b", exp, fixed); err != nil {
		t.Fatalf("another id: %v", err)
	}
	// After expiry, unpurged: the id may be used again, once.
	later := exp.Add(time.Second)
	if err := ds.UseDPoPJTI(ctx, "a", later.Add(2*time.Minute), later); err != nil {
		t.Fatalf("id after expiry: %v", err)
	}
	if err := ds.UseDPoPJTI(ctx, "a", later.Add(2*time.Minute), later); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("id after expiry, replayed: %v", err)
	}

	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := ds.UseDPoPJTI(ctx, "race", exp, fixed)
			switch {
			case err == nil:
				wins.Add(1)
			case !errors.Is(err, store.ErrAlreadyExists):
				t.Errorf("use %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if n := wins.Load(); n != 1 {
		t.Fatalf("%d concurrent uses of one proof id succeeded, want 1", n)
	}

	// The purge removes "b" and "race" (expired at exp) but keeps "a".
	for i := range 3 {
		if err := ds.UseDPoPJTI(ctx, fmt.Sprint("keep", i), later.Add(time.Hour), later); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.PurgeExpired(ctx, later)
	if err != nil {
		t.Fatal(err)
	}
	if n < 2 {
		t.Fatalf("purge removed %d rows, want at least the 2 expired proof ids", n)
	}
	if err := ds.UseDPoPJTI(ctx, "keep0", later.Add(time.Hour), later); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("the purge removed a live proof id: %v", err)
	}
}
