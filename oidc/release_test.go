package oidc_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/internal/testdb"
	"github.com/onecommons/commonsid/oidc"
	"github.com/onecommons/commonsid/privacy"
	"github.com/onecommons/commonsid/store/sqlstore"
)

// countingStore counts the reads of release contexts that reach the store.
type countingStore struct {
	*sqlstore.DB
	reads    atomic.Int32
	duringRd func() // runs inside each read, after the rows are read
}

func (c *countingStore) ReleaseContext(ctx context.Context, did, clientID string) (*identity.Account, *privacy.Consent, *privacy.Settings, error) {
	c.reads.Add(1)
	a, cs, s, err := c.DB.ReleaseContext(ctx, did, clientID)
	if c.duringRd != nil {
		c.duringRd()
	}
	return a, cs, s, err
}

// TestReleaseCache: the account, consent and settings read for one sign-in
// are read once for its authorization request, ID token and UserInfo; any
// announced change, and any token revocation, makes the next use read them
// again; what a caller changes in its copy never reaches the cache; and a
// read that an announcement overtook is not kept.
func TestReleaseCache(t *testing.T) {
	ctx := context.Background()
	db, _ := testdb.SQLite(t)
	now := time.Now().UTC().Truncate(time.Second)
	a := &identity.Account{DID: "did:key:z6Mkrelease", Handle: "rel", Email: "rel@example.org", Name: "Rel", Status: identity.StatusActive,
		HomeIssuer: "https://id.example", DIDKeySealed: []byte{1}, PairwiseSecretSealed: []byte{2}, CreatedAt: now, UpdatedAt: now}
	if err := db.CreateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := db.PutConsent(ctx, &privacy.Consent{AccountDID: a.DID, ClientID: "svc", Scopes: []string{"openid", "email"}, Claims: []string{"email"}, GrantedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	cs := &countingStore{DB: db}
	p := oidc.NewReleaseTestProvider(cs)

	read := func() (*identity.Account, *privacy.Consent, *privacy.Settings) {
		t.Helper()
		acct, consent, settings, err := p.ReleaseContext(ctx, a.DID, "svc")
		if err != nil {
			t.Fatal(err)
		}
		return acct, consent, settings
	}
	acct, consent, _ := read()
	for range 2 {
		read()
	}
	if n := cs.reads.Load(); n != 1 {
		t.Fatalf("%d store reads for three uses within the second, want 1", n)
	}
	// A caller's changes stay in its copy.
	acct.Name, consent.Scopes[0] = "changed", "changed"
	if acct2, consent2, _ := read(); acct2.Name != "Rel" || consent2.Scopes[0] != "openid" {
		t.Fatalf("cache changed through a caller's copy: %q %v", acct2.Name, consent2.Scopes)
	}

	// A use of the consent recorded meanwhile shows in the cached copy, so
	// that it is not recorded again at each sign-in of the second.
	used := now.Add(time.Minute)
	before := cs.reads.Load()
	p.ConsentUsed(a.DID, "svc", used)
	if _, consent, _ := read(); consent.LastUsedAt == nil || !consent.LastUsedAt.Equal(used) || cs.reads.Load() != before {
		t.Fatalf("last use %v after it was noted (store reads %d → %d)", consent.LastUsedAt, before, cs.reads.Load())
	}

	// A revoked consent is seen at once once announced.
	if err := db.DeleteConsent(ctx, a.DID, "svc"); err != nil {
		t.Fatal(err)
	}
	p.EventsAppended()
	if _, consent, _ := read(); consent != nil {
		t.Fatalf("consent %v after it was revoked and announced", consent)
	}
	before = cs.reads.Load()
	p.TokensRevoked()
	read()
	if cs.reads.Load() != before+1 {
		t.Fatal("a token revocation did not empty the release cache")
	}

	// A read overtaken by an announcement is used, not kept.
	cs.duringRd = p.EventsAppended
	p.EventsAppended()
	read()
	cs.duringRd = nil
	before = cs.reads.Load()
	read()
	if cs.reads.Load() != before+1 {
		t.Fatal("a read that an announcement overtook was kept")
	}

	// Entries live about a second.
	before = cs.reads.Load()
	time.Sleep(2100 * time.Millisecond)
	read()
	if cs.reads.Load() != before+1 {
		t.Fatal("an entry outlived its lifetime")
	}
}
