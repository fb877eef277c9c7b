package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/onecommons/commonsid/oidc"
	"github.com/onecommons/commonsid/store"
)

// testRefreshReuse: the exchange of a refresh token is a compare-and-set,
// so that of two concurrent uses exactly one wins and the other learns it
// lost (store.ErrNotFound, nothing stored); RevokeGrant then removes the
// whole chain, the winner's new tokens included, and keeps the grant's
// code; and a revocation racing an exchange of the same grant never leaves
// the exchange's new tokens alive.
func testRefreshReuse(t *testing.T, s Store) {
	gone := func(t *testing.T, kind, sig string) {
		t.Helper()
		if _, err := s.GetOAuthRequest(ctx, kind, sig); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%s %s outlived its grant's revocation: %v", kind, sig, err)
		}
	}
	issue := func(round, racer int, grant string) []*oidc.OAuthRequest {
		acc := oauthReq(oidc.KindAccess, fmt.Sprintf("acc-%d-%d", round, racer), grant, "did:a", "c")
		ref := oauthReq(oidc.KindRefresh, fmt.Sprintf("ref-%d-%d", round, racer), grant, "did:a", "c")
		ref.AccessSignatureHash = acc.SignatureHash
		return []*oidc.OAuthRequest{acc, ref}
	}

	const rounds = 10
	for round := range rounds {
		grant := fmt.Sprintf("g-%d", round)
		used := fmt.Sprintf("rt-%d", round)
		for _, r := range []*oidc.OAuthRequest{oauthReq(oidc.KindCode, "code-"+grant, grant, "did:a", "c"),
			oauthReq(oidc.KindAccess, "at-"+grant, grant, "did:a", "c"), oauthReq(oidc.KindRefresh, used, grant, "did:a", "c")} {
			if err := s.CreateOAuthRequest(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		var (
			wg     sync.WaitGroup
			errs   [2]error
			issued [2][]*oidc.OAuthRequest
		)
		for i := range 2 {
			issued[i] = issue(round, i, grant)
			wg.Go(func() { errs[i] = s.ExchangeOAuthRequests(ctx, oidc.KindRefresh, used, issued[i]) })
		}
		wg.Wait()
		won := -1
		for i, err := range errs {
			switch {
			case err == nil && won < 0:
				won = i
			case errors.Is(err, store.ErrNotFound):
				for _, r := range issued[i] {
					gone(t, r.Kind, r.SignatureHash) // the loser stored nothing
				}
			default:
				t.Fatalf("round %d: racers got %v and %v, want one nil and one not found", round, errs[0], errs[1])
			}
		}
		if won < 0 {
			t.Fatalf("round %d: neither of two exchanges of one refresh token won: %v, %v", round, errs[0], errs[1])
		}
		for _, r := range issued[won] {
			if _, err := s.GetOAuthRequest(ctx, r.Kind, r.SignatureHash); err != nil {
				t.Fatalf("round %d: the winner's %s: %v", round, r.Kind, err)
			}
		}
		// The loser is a reuse: the whole chain goes.
		if err := s.RevokeGrant(ctx, grant); err != nil {
			t.Fatal(err)
		}
		for _, r := range issued[won] {
			gone(t, r.Kind, r.SignatureHash)
		}
		gone(t, oidc.KindRefresh, used)
		gone(t, oidc.KindAccess, "at-"+grant)
		if _, err := s.GetOAuthRequest(ctx, oidc.KindCode, "code-"+grant); err != nil {
			t.Fatalf("revoking a grant removed its code (kept to recognise a replay): %v", err)
		}
	}
	if err := s.RevokeGrant(ctx, "no-such-grant"); err != nil {
		t.Fatalf("revoking a grant that issued nothing: %v", err)
	}

	// A revocation racing an exchange of the grant's refresh token: in
	// whichever order they commit, nothing of the grant survives.
	for round := range 20 {
		grant := fmt.Sprintf("race-%d", round)
		used := "rt-" + grant
		if err := s.CreateOAuthRequest(ctx, oauthReq(oidc.KindRefresh, used, grant, "did:a", "c")); err != nil {
			t.Fatal(err)
		}
		issued := issue(100+round, 0, grant)
		var wg sync.WaitGroup
		var xerr, rerr error
		wg.Go(func() { xerr = s.ExchangeOAuthRequests(ctx, oidc.KindRefresh, used, issued) })
		wg.Go(func() { rerr = s.RevokeGrant(ctx, grant) })
		wg.Wait()
		if rerr != nil {
			t.Fatalf("round %d: revoke: %v", round, rerr)
		}
		if xerr != nil && !errors.Is(xerr, store.ErrNotFound) {
			t.Fatalf("round %d: exchange: %v", round, xerr)
		}
		gone(t, oidc.KindRefresh, used)
		for _, r := range issued {
			gone(t, r.Kind, r.SignatureHash)
		}
	}
}
