package storetest

import (
	"testing"

	"github.com/onecommons/commonsid/privacy"
)

// testConsentTermsHash: a consent keeps the hash of the commitments the
// person saw (migration 0020); an upsert replaces it; ListConsents and
// ReleaseContext read it back.
func testConsentTermsHash(t *testing.T, s Store) {
	a := mustAccount(t, s, "termshash")
	c := &privacy.Consent{AccountDID: a.DID, ClientID: "svc", Scopes: []string{"openid"}, GrantedAt: fixed, UpdatedAt: fixed,
		TermsHash: "sha256-first"}
	if err := s.PutConsent(ctx, c); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetConsent(ctx, a.DID, "svc"); err != nil || got.TermsHash != "sha256-first" {
		t.Fatalf("GetConsent = %+v, %v; want terms hash sha256-first", got, err)
	}
	c.TermsHash = "sha256-second"
	if err := s.PutConsent(ctx, c); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListConsents(ctx, a.DID)
	if err != nil || len(list) != 1 || list[0].TermsHash != "sha256-second" {
		t.Fatalf("ListConsents after upsert = %+v, %v; want terms hash sha256-second", list, err)
	}
	_, rc, _, err := s.ReleaseContext(ctx, a.DID, "svc")
	if err != nil || rc == nil || rc.TermsHash != "sha256-second" {
		t.Fatalf("ReleaseContext consent = %+v, %v; want terms hash sha256-second", rc, err)
	}
	// A consent without commitments keeps "".
	if err := s.PutConsent(ctx, &privacy.Consent{AccountDID: a.DID, ClientID: "plain", Scopes: []string{"openid"}, GrantedAt: fixed, UpdatedAt: fixed}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetConsent(ctx, a.DID, "plain"); err != nil || got.TermsHash != "" {
		t.Fatalf("plain consent = %+v, %v", got, err)
	}
}
