package storetest

import (
	"context"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"

	"github.com/onecommons/commonsid/federation"
	"github.com/onecommons/commonsid/oidc"
	"github.com/onecommons/commonsid/privacy"
)

// consentSectorStore is what detaching a removed peer's families needs.
type consentSectorStore interface {
	ConsentsWithSector(ctx context.Context, clientID, sector string) ([]*privacy.Consent, error)
}

// testSectorHolders: the services holding a sector as their own are this
// cloud's clients (not peers' sign-in clients) and peers' announcements,
// matched exactly (no LIKE wildcards, no letter case), bounded; consents
// are found by client and subject sector.
func testSectorHolders(t *testing.T, s Store) {
	p := &federation.Peer{Issuer: "https://h.example", DID: "did:web:h.example", JWKSURI: "https://h.example/jwks.json",
		JWKS: jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}, Metadata: []byte(`{}`), AddedAt: fixed, KeysAt: fixed}
	if err := s.PutPeer(ctx, p); err != nil {
		t.Fatal(err)
	}
	clients := map[string]string{
		"bank":      `{"client_name":"Bank","x_sector":"bank.example"}`,
		"bank2":     `{"client_name":"Bank 2","x_sector":"bank.example"}`,
		"peerlogin": `{"client_name":"peer","x_sector":"bank.example","x_peer":true}`,
		"under":     `{"client_name":"Under","x_sector":"bank_example"}`,
		"upper":     `{"client_name":"Upper","x_sector":"BANK.example"}`,
		"family":    `{"client_name":"Fork","x_sector":"fork.example","x_family_sector":"bank.example"}`,
	}
	for _, id := range []string{"bank", "bank2", "peerlogin", "under", "upper", "family"} {
		if err := s.CreateClient(ctx, &oidc.StoredClient{ClientID: id, Metadata: []byte(clients[id]), CreatedAt: fixed, UpdatedAt: fixed}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutRemoteService(ctx, p.Issuer, "shop", []byte(`{"client_id":"shop","x_sector":"bank.example"}`), fixed); err != nil {
		t.Fatal(err)
	}
	if err := s.PutRemoteService(ctx, p.Issuer, "pct", []byte(`{"client_id":"pct","x_sector":"bank%example"}`), fixed); err != nil {
		t.Fatal(err)
	}
	got, err := s.SectorHolders(ctx, "bank.example", 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []federation.SectorHolder{{Issuer: "", ClientID: "bank"}, {Issuer: "", ClientID: "bank2"}, {Issuer: p.Issuer, ClientID: "shop"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("holders of bank.example (-want +got):\n%s", diff)
	}
	if got, _ := s.SectorHolders(ctx, "bank_example", 10); len(got) != 1 || got[0].ClientID != "under" {
		t.Fatalf("holders of bank_example: %+v", got)
	}
	if got, _ := s.SectorHolders(ctx, "bank%example", 10); len(got) != 1 || got[0].ClientID != "pct" {
		t.Fatalf("holders of bank%%example: %+v", got)
	}
	if got, _ := s.SectorHolders(ctx, "bank.example", 1); len(got) != 1 {
		t.Fatalf("bounded to 1: %+v", got)
	}
	if got, _ := s.SectorHolders(ctx, "nobody.example", 10); len(got) != 0 {
		t.Fatalf("holders of an unknown sector: %+v", got)
	}

	cs, ok := s.(consentSectorStore)
	if !ok {
		t.Fatal("the store does not list consents by subject sector")
	}
	for i, sector := range []string{"bank.example", "fork.example", "bank.example"} {
		a := account([]string{"ann", "ben", "cat"}[i])
		if err := s.CreateAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
		if err := s.PutConsent(ctx, &privacy.Consent{AccountDID: a.DID, ClientID: "family", Scopes: []string{"openid"}, SubjectSector: sector,
			GrantedAt: fixed, UpdatedAt: fixed}); err != nil {
			t.Fatal(err)
		}
	}
	found, err := cs.ConsentsWithSector(ctx, "family", "bank.example")
	if err != nil || len(found) != 2 || found[0].SubjectSector != "bank.example" || found[1].SubjectSector != "bank.example" {
		t.Fatalf("consents with the family sector: %+v %v", found, err)
	}
	if found, _ := cs.ConsentsWithSector(ctx, "bank", "bank.example"); len(found) != 0 {
		t.Fatalf("another client's consents: %+v", found)
	}
}
