package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/onecommons/commonsid/oidc"
	"github.com/onecommons/commonsid/store"
)

// parStore is what the provider needs for pushed authorization requests.
type parStore interface {
	CreatePushedRequest(ctx context.Context, p *oidc.PushedRequest) error
	TakePushedRequest(ctx context.Context, uriHash string, now time.Time) (*oidc.PushedRequest, error)
}

// testPushedRequests: a pushed authorization request is taken once (even by
// concurrent takers), an expired one is never returned, a duplicate key is
// refused, and the purge removes expired ones.
func testPushedRequests(t *testing.T, s Store) {
	ps, ok := s.(parStore)
	if !ok {
		t.Fatal("the store does not keep pushed authorization requests")
	}
	want := &oidc.PushedRequest{URIHash: "u1", ClientID: "c1", Form: "client_id=c1&scope=openid", CreatedAt: fixed, ExpiresAt: fixed.Add(time.Minute)}
	if err := ps.CreatePushedRequest(ctx, want); err != nil {
		t.Fatal(err)
	}
	if err := ps.CreatePushedRequest(ctx, want); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("duplicate request_uri: %v, want ErrAlreadyExists", err)
	}
	got, err := ps.TakePushedRequest(ctx, "u1", fixed.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if *got != *want {
		t.Fatalf("taken %+v, want %+v", got, want)
	}
	if _, err := ps.TakePushedRequest(ctx, "u1", fixed.Add(time.Second)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second take: %v, want ErrNotFound", err)
	}

	// Expiry is exclusive: at expires_at the request is gone.
	exp := &oidc.PushedRequest{URIHash: "u2", ClientID: "c1", Form: "a=b", CreatedAt: fixed, ExpiresAt: fixed.Add(time.Minute)}
	if err := ps.CreatePushedRequest(ctx, exp); err != nil {
		t.Fatal(err)
	}
	if _, err := ps.TakePushedRequest(ctx, "u2", fixed.Add(time.Minute)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired take: %v, want ErrNotFound", err)
	}

	// Concurrent takers: exactly one gets it.
	if err := ps.CreatePushedRequest(ctx, &oidc.PushedRequest{URIHash: "u3", ClientID: "c1", Form: "a=b", CreatedAt: fixed, ExpiresAt: fixed.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		wins int
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := ps.TakePushedRequest(ctx, "u3", fixed)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrConflict):
				t.Errorf("concurrent take: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d concurrent takes succeeded, want 1", wins)
	}

	// The purge removes expired pushed requests and keeps live ones.
	for _, p := range []*oidc.PushedRequest{
		{URIHash: "old", ClientID: "c1", Form: "a=b", CreatedAt: fixed, ExpiresAt: fixed.Add(time.Minute)},
		{URIHash: "live", ClientID: "c1", Form: "a=b", CreatedAt: fixed, ExpiresAt: fixed.Add(48 * time.Hour)},
	} {
		if err := ps.CreatePushedRequest(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.PurgeExpired(ctx, fixed.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := ps.TakePushedRequest(ctx, "old", fixed); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired pushed request survived the purge: %v", err)
	}
	if _, err := ps.TakePushedRequest(ctx, "live", fixed); err != nil {
		t.Fatalf("live pushed request purged: %v", err)
	}
}
