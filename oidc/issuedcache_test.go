package oidc

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ory/fosite"
)

// exchangeStore is a Store that only takes exchanges; every other method
// is the embedded nil interface's (a panic if called).
type exchangeStore struct {
	Store
	mu      sync.Mutex
	created []*OAuthRequest
}

func (e *exchangeStore) ExchangeOAuthRequests(ctx context.Context, kind, sig string, create []*OAuthRequest) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.created = append(e.created, create...)
	return nil
}

// TestIssuedTokenNotCachedPastRevocation: a person's new access token is
// cached as it is issued, once the exchange commits. When a revocation is
// announced between its creation and that commit (a concurrent reuse of
// the refresh token revoking the grant), the token must not be cached: the
// revocation may already have deleted it, and a cached copy would be
// introspected as active.
func TestIssuedTokenNotCachedPastRevocation(t *testing.T) {
	st := &exchangeStore{}
	s := &fositeStore{st: st, now: time.Now, cacheIssued: true}
	s.access.ttl, s.access.max = time.Minute, 100
	issue := func(sig string, revokeMeanwhile bool) {
		t.Helper()
		ctx, err := s.BeginTX(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		sess := newSession()
		sess.AccountDID = "did:example:alice"
		r := fosite.NewRequest()
		r.ID = "grant-" + sig
		r.Client = &fosite.DefaultClient{ID: "app"}
		r.Session = sess
		if err := s.CreateAccessTokenSession(ctx, sig, r); err != nil {
			t.Fatal(err)
		}
		if revokeMeanwhile {
			s.access.flush() // what Provider.TokensRevoked does
		}
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	issue("kept", false)
	if _, _, ok := s.access.get("kept", time.Now()); !ok {
		t.Fatal("a token issued with no revocation meanwhile is not cached")
	}
	issue("revoked", true)
	if _, _, ok := s.access.get("revoked", time.Now()); ok {
		t.Fatal("a token issued while a revocation was announced is cached: it would outlive the revocation")
	}
	if len(st.created) != 2 {
		t.Fatalf("%d rows stored, want 2", len(st.created))
	}
}
