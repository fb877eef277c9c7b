package storetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/onecommons/commonsid/oidfed"
	"github.com/onecommons/commonsid/store"
)

// OIDFedStore is a full store with the OpenID Federation tables.
type OIDFedStore interface {
	Store
	oidfed.Store
}

// RunOIDFed runs the OpenID Federation cases, each on a fresh store.
func RunOIDFed(t *testing.T, open func(t *testing.T) OIDFedStore) {
	for _, c := range []struct {
		name string
		fn   func(t *testing.T, s OIDFedStore)
	}{
		{"Subordinates", testSubordinates},
		{"AnchorsAndMembers", testAnchorsMembers},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, open(t)) })
	}
}

func oneKey(t *testing.T, kid string) jose.JSONWebKeySet {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{KeyID: kid, Algorithm: "ES256", Use: "sig", Key: &priv.PublicKey}}}
}

// testSubordinates: a subordinate is stored with its keys and metadata,
// updated in place (added_at kept), listed by entity ID and deleted once.
func testSubordinates(t *testing.T, s OIDFedStore) {
	if _, err := s.GetSubordinate(ctx, "https://none.example"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown subordinate: %v", err)
	}
	ks := oneKey(t, "k1")
	for _, id := range []string{"https://b.example", "https://a.example"} {
		if err := s.PutSubordinate(ctx, &oidfed.Subordinate{EntityID: id, JWKS: ks, AddedAt: fixed, UpdatedAt: fixed}); err != nil {
			t.Fatal(err)
		}
	}
	meta := map[string]map[string]any{"openid_provider": {"issuer": "https://a.example"}}
	if err := s.PutSubordinate(ctx, &oidfed.Subordinate{EntityID: "https://a.example", JWKS: ks, Metadata: meta,
		AddedAt: fixed.Add(time.Hour), UpdatedAt: fixed.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetSubordinate(ctx, "https://a.example")
	if err != nil {
		t.Fatal(err)
	}
	if !got.AddedAt.Equal(fixed) || !got.UpdatedAt.Equal(fixed.Add(time.Hour)) || got.Metadata["openid_provider"]["issuer"] != "https://a.example" {
		t.Fatalf("after update: %+v", got)
	}
	if len(got.JWKS.Keys) != len(ks.Keys) || got.JWKS.Keys[0].KeyID != ks.Keys[0].KeyID {
		t.Fatalf("keys: %+v", got.JWKS)
	}
	list, err := s.ListSubordinates(ctx)
	if err != nil || len(list) != 2 || list[0].EntityID != "https://a.example" || list[1].EntityID != "https://b.example" {
		t.Fatalf("list: %+v %v", list, err)
	}
	if err := s.DeleteSubordinate(ctx, "https://a.example"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSubordinate(ctx, "https://a.example"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := s.GetSubordinate(ctx, "https://a.example"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
}

// testAnchorsMembers: anchors keep joined_at across updates and carry
// their trust mark; members are upserted, listed and deleted.
func testAnchorsMembers(t *testing.T, s OIDFedStore) {
	ks := oneKey(t, "k1")
	if err := s.PutAnchor(ctx, &oidfed.Anchor{EntityID: "https://anchor.example", JWKS: ks, JoinedAt: fixed}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutAnchor(ctx, &oidfed.Anchor{EntityID: "https://anchor.example", JWKS: ks, JoinedAt: fixed.Add(time.Hour), TrustMark: "a.b.c"}); err != nil {
		t.Fatal(err)
	}
	as, err := s.ListAnchors(ctx)
	if err != nil || len(as) != 1 || !as[0].JoinedAt.Equal(fixed) || as[0].TrustMark != "a.b.c" || len(as[0].JWKS.Keys) != len(ks.Keys) {
		t.Fatalf("anchors: %+v %v", as, err)
	}
	if err := s.DeleteAnchor(ctx, "https://anchor.example"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAnchor(ctx, "https://anchor.example"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	m := &oidfed.Member{Issuer: "https://m.example", Anchor: "https://anchor.example", Expiry: fixed.Add(time.Hour), CheckedAt: fixed}
	if err := s.PutMember(ctx, m); err != nil {
		t.Fatal(err)
	}
	m.LastError, m.CheckedAt = "could not fetch", fixed.Add(time.Minute)
	if err := s.PutMember(ctx, m); err != nil {
		t.Fatal(err)
	}
	ms, err := s.ListMembers(ctx)
	if err != nil || len(ms) != 1 || ms[0].LastError != "could not fetch" || !ms[0].CheckedAt.Equal(fixed.Add(time.Minute)) || !ms[0].Expiry.Equal(fixed.Add(time.Hour)) {
		t.Fatalf("members: %+v %v", ms, err)
	}
	if err := s.DeleteMember(ctx, m.Issuer); err != nil {
		t.Fatal(err)
	}
	if ms, _ := s.ListMembers(ctx); len(ms) != 0 {
		t.Fatalf("after delete: %+v", ms)
	}
}
