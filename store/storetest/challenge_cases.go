package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/oidc"
	"github.com/onecommons/commonsid/store"
)

// liveChallengeCounter is what the provider uses to bound the number of
// pending sign-ins.
type liveChallengeCounter interface {
	CountLiveChallenges(ctx context.Context, now time.Time, limit int) (int, error)
}

// testChallengeBounds: what anonymous requests write (sign-in challenges,
// passkey ceremonies) is purged once expired, however many rows a flood left
// (more than one purge batch), and live challenges are counted up to a limit.
func testChallengeBounds(t *testing.T, s Store) {
	counter, ok := s.(liveChallengeCounter)
	if !ok {
		t.Fatal("the store cannot count live challenges (CountLiveChallenges)")
	}
	const flood = 2500
	err := s.InTx(ctx, func(ctx context.Context) error {
		for i := range flood {
			ch := &oidc.Challenge{IDHash: fmt.Sprintf("old-%d", i), ClientID: "c", Form: "a=b", NotBefore: fixed, CreatedAt: fixed, ExpiresAt: fixed.Add(time.Minute)}
			if err := s.CreateChallenge(ctx, ch); err != nil {
				return err
			}
		}
		for i := range 3 {
			ch := &oidc.Challenge{IDHash: fmt.Sprintf("live-%d", i), ClientID: "c", Form: "a=b", NotBefore: fixed, CreatedAt: fixed, ExpiresAt: fixed.Add(48 * time.Hour)}
			if err := s.CreateChallenge(ctx, ch); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	at := fixed.Add(2 * time.Hour)
	for _, c := range []struct{ limit, want int }{{10, 3}, {2, 2}} {
		if n, err := counter.CountLiveChallenges(ctx, at, c.limit); err != nil || n != c.want {
			t.Fatalf("CountLiveChallenges(limit %d) = %d, %v; want %d", c.limit, n, err, c.want)
		}
	}
	// Expiry is exclusive: a challenge is no longer live at its expires_at.
	if n, err := counter.CountLiveChallenges(ctx, fixed.Add(time.Minute), flood+10); err != nil || n != 3 {
		t.Fatalf("CountLiveChallenges at the flood's expiry = %d, %v; want 3", n, err)
	}
	if n, err := counter.CountLiveChallenges(ctx, fixed, flood+10); err != nil || n != flood+3 {
		t.Fatalf("CountLiveChallenges before expiry = %d, %v; want %d", n, err, flood+3)
	}

	oldC := &identity.Ceremony{IDHash: "cer-old", Kind: identity.CeremonyLogin, Data: []byte(`{}`), ExpiresAt: fixed.Add(5 * time.Minute)}
	liveC := &identity.Ceremony{IDHash: "cer-live", Kind: identity.CeremonyLogin, Data: []byte(`{}`), ExpiresAt: fixed.Add(72 * time.Hour)}
	for _, c := range []*identity.Ceremony{oldC, liveC} {
		if err := s.PutCeremony(ctx, c); err != nil {
			t.Fatal(err)
		}
	}

	n, err := s.PurgeExpired(ctx, at)
	if err != nil || n != flood+1 {
		t.Fatalf("PurgeExpired = %d, %v; want %d (the expired challenges and ceremony)", n, err, flood+1)
	}
	if n, err := counter.CountLiveChallenges(ctx, fixed, flood+10); err != nil || n != 3 {
		t.Fatalf("challenges left = %d, %v; want the 3 live ones", n, err)
	}
	for i := range 3 {
		if _, err := s.GetChallenge(ctx, fmt.Sprintf("live-%d", i)); err != nil {
			t.Fatalf("live challenge %d purged: %v", i, err)
		}
	}
	if _, err := s.GetChallenge(ctx, "old-0"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired challenge kept: %v", err)
	}
	// Taken at a time it was still live, the expired ceremony is gone all
	// the same: the purge removed it, not the take.
	if _, err := s.TakeCeremony(ctx, oldC.IDHash, oldC.Kind, fixed); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired ceremony kept by PurgeExpired: %v", err)
	}
	if _, err := s.TakeCeremony(ctx, liveC.IDHash, liveC.Kind, fixed); err != nil {
		t.Fatalf("live ceremony purged: %v", err)
	}
	if n, err := s.PurgeExpired(ctx, at); err != nil || n != 0 {
		t.Fatalf("second PurgeExpired = %d, %v; want 0", n, err)
	}
}
