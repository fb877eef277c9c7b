package storetest

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/store"
)

// TokenStore is a Store that keeps single-use account links.
type TokenStore interface {
	Store
	identity.TokenStore
}

// RunAccountTokens runs the single-use link cases, each on a fresh store.
func RunAccountTokens(t *testing.T, open func(t *testing.T) TokenStore) {
	for _, c := range []struct {
		name string
		fn   func(t *testing.T, s TokenStore)
	}{
		{"UseOnce", testTokenUseOnce},
		{"Expired", testTokenExpired},
		{"PurposeBound", testTokenPurposeBound},
		{"ConcurrentUse", testTokenConcurrentUse},
		{"DropAndForget", testTokenDrop},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, open(t)) })
	}
}

func putToken(t *testing.T, s TokenStore, did, purpose, email string, ttl time.Duration) (string, *identity.AccountToken) {
	t.Helper()
	raw, hash, err := identity.NewAccountToken()
	if err != nil {
		t.Fatal(err)
	}
	tok := &identity.AccountToken{Hash: hash, Purpose: purpose, AccountDID: did, Email: email, CreatedAt: fixed, ExpiresAt: fixed.Add(ttl)}
	if err := s.PutAccountToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	return raw, tok
}

func testTokenUseOnce(t *testing.T, s TokenStore) {
	a := mustAccount(t, s, "tokalice")
	raw, _ := putToken(t, s, a.DID, identity.PurposeVerifyEmail, "alice@example.net", time.Hour)
	got, err := s.UseAccountToken(ctx, identity.HashToken(raw), identity.PurposeVerifyEmail, fixed.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if got.AccountDID != a.DID || got.Email != "alice@example.net" || got.UsedAt == nil || !got.ExpiresAt.Equal(fixed.Add(time.Hour)) {
		t.Fatalf("token = %+v", got)
	}
	if _, err := s.UseAccountToken(ctx, identity.HashToken(raw), identity.PurposeVerifyEmail, fixed.Add(2*time.Minute)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second use: %v, want ErrNotFound", err)
	}
	if _, err := s.UseAccountToken(ctx, identity.HashToken("nope"), identity.PurposeVerifyEmail, fixed); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown: %v", err)
	}
}

func testTokenExpired(t *testing.T, s TokenStore) {
	a := mustAccount(t, s, "tokbob")
	raw, _ := putToken(t, s, a.DID, identity.PurposeResetPassword, "", 30*time.Minute)
	if _, err := s.UseAccountToken(ctx, identity.HashToken(raw), identity.PurposeResetPassword, fixed.Add(30*time.Minute)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired use: %v", err)
	}
	n, err := s.PurgeExpired(ctx, fixed.Add(31*time.Minute))
	if err != nil || n < 1 {
		t.Fatalf("purge = %d, %v", n, err)
	}
	// Purged: a later clock cannot bring it back.
	if _, err := s.UseAccountToken(ctx, identity.HashToken(raw), identity.PurposeResetPassword, fixed); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after purge: %v", err)
	}
}

func testTokenPurposeBound(t *testing.T, s TokenStore) {
	a := mustAccount(t, s, "tokcarol")
	raw, _ := putToken(t, s, a.DID, identity.PurposeVerifyEmail, "c@example.net", time.Hour)
	if _, err := s.UseAccountToken(ctx, identity.HashToken(raw), identity.PurposeResetPassword, fixed); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("verify link used as reset: %v", err)
	}
	if _, err := s.UseAccountToken(ctx, identity.HashToken(raw), identity.PurposeVerifyEmail, fixed); err != nil {
		t.Fatalf("still usable for its purpose: %v", err)
	}
}

func testTokenConcurrentUse(t *testing.T, s TokenStore) {
	a := mustAccount(t, s, "tokdave")
	raw, _ := putToken(t, s, a.DID, identity.PurposeResetPassword, "", time.Hour)
	var ok atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.UseAccountToken(ctx, identity.HashToken(raw), identity.PurposeResetPassword, fixed); err == nil {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 {
		t.Fatalf("%d concurrent uses succeeded, want 1", ok.Load())
	}
}

func testTokenDrop(t *testing.T, s TokenStore) {
	a := mustAccount(t, s, "tokerin")
	r1, _ := putToken(t, s, a.DID, identity.PurposeResetPassword, "", time.Hour)
	r2, _ := putToken(t, s, a.DID, identity.PurposeVerifyEmail, "e@example.net", time.Hour)
	n, err := s.DropAccountTokens(ctx, a.DID, identity.PurposeResetPassword)
	if err != nil || n != 1 {
		t.Fatalf("drop = %d, %v", n, err)
	}
	if _, err := s.UseAccountToken(ctx, identity.HashToken(r1), identity.PurposeResetPassword, fixed); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("dropped link: %v", err)
	}
	if _, err := s.UseAccountToken(ctx, identity.HashToken(r2), identity.PurposeVerifyEmail, fixed); err != nil {
		t.Fatalf("other purpose kept: %v", err)
	}
}
