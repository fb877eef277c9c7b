package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/oidc"
	"github.com/onecommons/commonsid/store"
)

// purgeBatch is the most rows one purge statement of the store deletes
// (sqlstore.PurgeBatch); the case writes more than two batches of one
// table so that the purge needs three statements for it.
const purgeBatch = 1000

// testPurgeBatches: a backlog of more than two batches of expired tokens
// and codes, with expired challenges, sessions, client assertion ids,
// pushed requests, DPoP proof ids and mailed links, is removed entirely by
// one PurgeExpired; every live row of the same tables is kept; the next
// purge finds nothing.
func testPurgeBatches(t *testing.T, s Store) {
	a := mustAccount(t, s, "backlog")
	now := fixed.Add(2 * time.Hour)
	expired := 2*purgeBatch + 1

	tctx, err := s.BeginTx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range expired {
		kind := oidc.KindAccess
		if i%3 == 1 {
			kind = oidc.KindRefresh
		} else if i%3 == 2 {
			kind = oidc.KindCode
		}
		// oauthReq expires an hour after fixed: before now.
		if err := s.CreateOAuthRequest(tctx, oauthReq(kind, fmt.Sprint("old", i), fmt.Sprint("g", i/3), a.DID, "c")); err != nil {
			s.Rollback(tctx)
			t.Fatal(err)
		}
	}
	live := []*oidc.OAuthRequest{}
	for i, kind := range []string{oidc.KindAccess, oidc.KindRefresh, oidc.KindCode} {
		r := oauthReq(kind, fmt.Sprint("live", i), "glive", a.DID, "c")
		r.ExpiresAt = now.Add(time.Microsecond) // expiry is exclusive: kept
		if i == 1 {
			r.ExpiresAt = now.Add(30 * 24 * time.Hour)
		}
		live = append(live, r)
		if err := s.CreateOAuthRequest(tctx, r); err != nil {
			s.Rollback(tctx)
			t.Fatal(err)
		}
	}
	if err := s.Commit(tctx); err != nil {
		t.Fatal(err)
	}

	others := 0
	for i, exp := range []time.Time{fixed.Add(time.Minute), now.Add(time.Hour)} {
		id := fmt.Sprint("ch", i)
		if err := s.CreateChallenge(ctx, &oidc.Challenge{IDHash: id, ClientID: "c", Form: "a=b", NotBefore: fixed, CreatedAt: fixed, ExpiresAt: exp}); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateSession(ctx, &identity.Session{IDHash: fmt.Sprint("sess", i), AccountDID: a.DID, AuthTime: fixed, CreatedAt: fixed, LastSeenAt: fixed, ExpiresAt: exp}); err != nil {
			t.Fatal(err)
		}
		if err := s.UseClientAssertionJTI(ctx, fmt.Sprint("jti", i), exp, fixed); err != nil {
			t.Fatal(err)
		}
		others += 3
		if ps, ok := s.(parStore); ok {
			if err := ps.CreatePushedRequest(ctx, &oidc.PushedRequest{URIHash: fmt.Sprint("par", i), ClientID: "c", Form: "a=b", CreatedAt: fixed, ExpiresAt: exp}); err != nil {
				t.Fatal(err)
			}
			others++
		}
		if ds, ok := s.(oidc.DPoPStore); ok {
			if err := ds.UseDPoPJTI(ctx, fmt.Sprint("dpop", i), exp, fixed); err != nil {
				t.Fatal(err)
			}
			others++
		}
		if ts, ok := s.(identity.TokenStore); ok {
			_, hash, err := identity.NewAccountToken()
			if err != nil {
				t.Fatal(err)
			}
			if err := ts.PutAccountToken(ctx, &identity.AccountToken{Hash: hash, Purpose: identity.PurposeVerifyEmail, AccountDID: a.DID,
				Email: "x@example.org", CreatedAt: fixed, ExpiresAt: exp}); err != nil {
				t.Fatal(err)
			}
			others++
		}
	}

	n, err := s.PurgeExpired(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	// Half of the other rows (index 0) had expired.
	if want := int64(expired + others/2); n != want {
		t.Fatalf("PurgeExpired removed %d rows, want %d (%d tokens and codes, %d others)", n, want, expired, others/2)
	}
	for _, i := range []int{0, 1, 2, purgeBatch - 1, purgeBatch, 2 * purgeBatch, expired - 1} {
		kind := []string{oidc.KindAccess, oidc.KindRefresh, oidc.KindCode}[i%3]
		if _, err := s.GetOAuthRequest(ctx, kind, fmt.Sprint("old", i)); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("expired %s old%d kept: %v", kind, i, err)
		}
	}
	for _, r := range live {
		if _, err := s.GetOAuthRequest(ctx, r.Kind, r.SignatureHash); err != nil {
			t.Fatalf("live %s %s purged: %v", r.Kind, r.SignatureHash, err)
		}
	}
	if _, err := s.GetChallenge(ctx, "ch0"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired challenge kept: %v", err)
	}
	if _, err := s.GetChallenge(ctx, "ch1"); err != nil {
		t.Fatalf("live challenge purged: %v", err)
	}
	if _, err := s.GetSession(ctx, "sess1"); err != nil {
		t.Fatalf("live session purged: %v", err)
	}
	// The live client assertion id is still known: a replay is refused.
	if err := s.UseClientAssertionJTI(ctx, "jti1", now.Add(time.Hour), now); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("live client assertion id forgotten: %v", err)
	}
	if n, err := s.PurgeExpired(ctx, now); err != nil || n != 0 {
		t.Fatalf("second PurgeExpired = %d, %v; want 0", n, err)
	}
}
