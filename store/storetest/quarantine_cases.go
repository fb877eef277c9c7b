package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/onecommons/commonsid/federation"
	"github.com/onecommons/commonsid/store"
)

// testQuarantine: quarantined peer events are kept once per (peer, seq),
// a new attempt updates the reason and counts, the bound drops the oldest
// and counts them, and removing the peer removes its quarantine.
func testQuarantine(t *testing.T, s Store) {
	p := &federation.Peer{Issuer: "https://q.example", DID: "did:web:q.example", JWKSURI: "https://q.example/jwks.json",
		JWKS: jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}, Metadata: []byte(`{}`), AddedAt: fixed, KeysAt: fixed}
	if err := s.PutPeer(ctx, p); err != nil {
		t.Fatal(err)
	}
	put := func(seq int64, reason string, at time.Time) {
		t.Helper()
		q := &federation.Quarantined{Peer: p.Issuer, Seq: seq, Type: "account.updated", AccountDID: "did:key:z6Mkq", Event: `{"seq":1}`,
			Reason: reason, FirstSeen: at, LastSeen: at, Attempts: 1}
		if err := s.PutQuarantined(ctx, q, 3); err != nil {
			t.Fatal(err)
		}
	}
	put(7, "cloud signature does not verify", fixed)
	put(7, "still does not verify", fixed.Add(time.Minute))
	qs, err := s.ListQuarantined(ctx, p.Issuer, 10)
	if err != nil || len(qs) != 1 {
		t.Fatalf("list: %+v %v", qs, err)
	}
	q := qs[0]
	if q.Seq != 7 || q.Attempts != 2 || q.Reason != "still does not verify" || !q.FirstSeen.Equal(fixed) ||
		!q.LastSeen.Equal(fixed.Add(time.Minute)) || q.Event != `{"seq":1}` || q.AccountDID != "did:key:z6Mkq" {
		t.Fatalf("after a second attempt: %+v", q)
	}
	for _, seq := range []int64{9, 3, 8} {
		put(seq, "malformed JWS", fixed)
	}
	qs, _ = s.ListQuarantined(ctx, "", 10)
	if len(qs) != 3 || qs[0].Seq != 7 || qs[1].Seq != 8 || qs[2].Seq != 9 {
		t.Fatalf("bounded to 3, oldest dropped: %+v", qs)
	}
	if n, dropped, err := s.QuarantineCount(ctx, p.Issuer); err != nil || n != 3 || dropped != 1 {
		t.Fatalf("count: %d %d %v", n, dropped, err)
	}
	if err := s.DeleteQuarantined(ctx, p.Issuer, 8); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteQuarantined(ctx, p.Issuer, 8); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	if err := s.DeletePeer(ctx, p.Issuer); err != nil {
		t.Fatal(err)
	}
	if n, dropped, err := s.QuarantineCount(ctx, p.Issuer); err != nil || n != 0 || dropped != 0 {
		t.Fatalf("after the peer is removed: %d %d %v", n, dropped, err)
	}
}
