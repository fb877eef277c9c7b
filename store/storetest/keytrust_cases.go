package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/onecommons/commonsid/federation"
)

// testPendingKeys: a pending key of a peer is kept once per (peer, kid),
// a new sighting updates its reason and last seen time and is not new,
// the bound forgets the oldest, clearing forgets them all, and removing
// the peer removes its pending keys.
func testPendingKeys(t *testing.T, s Store) {
	var peers []*federation.Peer
	for _, h := range []string{"k1", "k2"} {
		p := &federation.Peer{Issuer: "https://" + h + ".example", DID: "did:web:" + h + ".example", JWKSURI: "https://" + h + ".example/jwks.json",
			JWKS: jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}, Metadata: []byte(`{}`), AddedAt: fixed, KeysAt: fixed}
		if err := s.PutPeer(ctx, p); err != nil {
			t.Fatal(err)
		}
		peers = append(peers, p)
	}
	put := func(peer, kid, reason string, at time.Time, max int) bool {
		t.Helper()
		fresh, err := s.PutPendingKey(ctx, &federation.PendingKey{Peer: peer, KID: kid, Reason: reason, FirstSeen: at, LastSeen: at}, max)
		if err != nil {
			t.Fatal(err)
		}
		return fresh
	}
	a, b := peers[0].Issuer, peers[1].Issuer
	if !put(a, "new", "not vouched", fixed, 3) {
		t.Fatal("a first sighting is not new")
	}
	if put(a, "new", "still not vouched", fixed.Add(time.Minute), 3) {
		t.Fatal("a second sighting is new")
	}
	put(b, "other", "not vouched", fixed, 3)
	ks, err := s.ListPendingKeys(ctx, a)
	if err != nil || len(ks) != 1 {
		t.Fatalf("list: %+v %v", ks, err)
	}
	if k := ks[0]; k.Peer != a || k.KID != "new" || k.Reason != "still not vouched" || !k.FirstSeen.Equal(fixed) || !k.LastSeen.Equal(fixed.Add(time.Minute)) {
		t.Fatalf("after a second sighting: %+v", k)
	}
	// The bound forgets the oldest of that peer only.
	for i := range 4 {
		put(a, fmt.Sprintf("k%d", i), "not vouched", fixed.Add(time.Duration(i+2)*time.Minute), 3)
	}
	ks, _ = s.ListPendingKeys(ctx, a)
	if len(ks) != 3 || ks[0].KID != "k1" || ks[2].KID != "k3" {
		t.Fatalf("bounded: %+v", ks)
	}
	if ks, _ := s.ListPendingKeys(ctx, b); len(ks) != 1 {
		t.Fatalf("the other peer's keys: %+v", ks)
	}
	if err := s.ClearPendingKeys(ctx, a); err != nil {
		t.Fatal(err)
	}
	if ks, _ := s.ListPendingKeys(ctx, a); len(ks) != 0 {
		t.Fatalf("after clearing: %+v", ks)
	}
	if err := s.DeletePeer(ctx, b); err != nil {
		t.Fatal(err)
	}
	if ks, _ := s.ListPendingKeys(ctx, b); len(ks) != 0 {
		t.Fatalf("after removing the peer: %+v", ks)
	}
}
