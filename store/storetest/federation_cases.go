package storetest

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/onecommons/commonsid/federation"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/oidc"
	"github.com/onecommons/commonsid/privacy"
	"github.com/onecommons/commonsid/store"
)

func testPeers(t *testing.T, s Store) {
	p := &federation.Peer{Issuer: "https://b.example", DID: "did:web:b.example", JWKSURI: "https://b.example/jwks.json",
		JWKS: jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}, Metadata: []byte(`{"issuer":"https://b.example"}`), AddedAt: fixed, KeysAt: fixed}
	if err := s.PutPeer(ctx, p); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetPeer(ctx, p.Issuer)
	if err != nil || got.DID != p.DID || got.Cursor != 0 || !got.AddedAt.Equal(fixed) || string(got.Metadata) != string(p.Metadata) {
		t.Fatalf("get peer: %+v %v", got, err)
	}
	// Applied events are recorded once; the cursor only moves forward.
	for i, seq := range []int64{1, 2, 2, 3} {
		fresh, err := s.MarkApplied(ctx, &federation.Applied{Peer: p.Issuer, Seq: seq, Type: "account.updated", EventAt: fixed, AppliedAt: fixed})
		if err != nil {
			t.Fatal(err)
		}
		if fresh != (i != 2) {
			t.Fatalf("event %d (#%d): fresh %v", seq, i, fresh)
		}
	}
	if fresh, _ := s.MarkApplied(ctx, &federation.Applied{Peer: p.Issuer, Seq: 3, Type: "x", EventAt: fixed, AppliedAt: fixed}); fresh {
		t.Fatal("an event was applied twice")
	}
	if err := s.SetPeerCursor(ctx, p.Issuer, 3, fixed); err != nil {
		t.Fatal(err)
	}
	s.SetPeerCursor(ctx, p.Issuer, 2, fixed)
	if got, _ := s.GetPeer(ctx, p.Issuer); got.Cursor != 3 || !got.LastEventAt.Equal(fixed) {
		t.Fatalf("cursor %d, last event %v", got.Cursor, got.LastEventAt)
	}
	applied, err := s.ListApplied(ctx, p.Issuer, 1, 10)
	if err != nil || len(applied) != 2 || applied[0].Seq != 2 || applied[1].Seq != 3 {
		t.Fatalf("applied after 1: %+v %v", applied, err)
	}
	// Re-adding keeps the cursor; keys are replaced.
	p.JWKSURI = "https://b.example/keys"
	if err := s.PutPeer(ctx, p); err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}})
	if err := s.SetPeerKeys(ctx, p.Issuer, raw, fixed.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	s.SetPeerError(ctx, p.Issuer, "boom")
	if got, _ := s.GetPeer(ctx, p.Issuer); got.Cursor != 3 || got.JWKSURI != "https://b.example/keys" || got.LastError != "boom" || !got.KeysAt.Equal(fixed.Add(time.Hour)) {
		t.Fatalf("after re-adding: %+v", got)
	}
	if err := s.RecordRejected(ctx, &federation.Rejected{Peer: p.Issuer, Seq: 4, Reason: "cloud signature does not verify", At: fixed, Event: "{}"}); err != nil {
		t.Fatal(err)
	}
	if rs, err := s.ListRejected(ctx, p.Issuer, 10); err != nil || len(rs) != 1 || rs[0].Seq != 4 {
		t.Fatalf("rejected: %+v %v", rs, err)
	}
	if ps, err := s.ListPeers(ctx); err != nil || len(ps) != 1 {
		t.Fatalf("list peers: %v %v", ps, err)
	}

	// A replica, its settings, consents, revocations and services go with
	// the peer.
	a := account("bob")
	a.Handle, a.HomeIssuer, a.PasswordHash = "bob@b.example", p.Issuer, ""
	if err := s.PutReplica(ctx, a); err != nil {
		t.Fatal(err)
	}
	a.Name = "Bob B."
	if err := s.PutReplica(ctx, a); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetAccount(ctx, a.DID); err != nil || got.Name != "Bob B." || got.HomeIssuer != p.Issuer || got.PasswordHash != "" {
		t.Fatalf("replica: %+v %v", got, err)
	}
	if rs, err := s.FindReplicas(ctx, "bob"); err != nil || len(rs) != 1 || rs[0].DID != a.DID {
		t.Fatalf("find replicas: %v %v", rs, err)
	}
	if rs, _ := s.FindReplicas(ctx, "bo"); len(rs) != 0 {
		t.Fatalf("a prefix matched: %v", rs)
	}
	st := privacy.DefaultSettings()
	st.FederationSharing = "all"
	if err := s.PutReplicaSettings(ctx, a.DID, st, fixed); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{p.Issuer + "#forum", p.Issuer + "#wiki", "local_service"} {
		if err := s.PutReplicaConsent(ctx, &privacy.Consent{AccountDID: a.DID, ClientID: id, Scopes: []string{"openid"}, GrantedAt: fixed, UpdatedAt: fixed}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteReplicaConsents(ctx, a.DID, p.Issuer+"#forum"); err != nil {
		t.Fatal(err)
	}
	if cs, _ := s.ListConsents(ctx, a.DID); len(cs) != 2 {
		t.Fatalf("after deleting one replicated consent: %d", len(cs))
	}
	s.DeleteReplicaConsents(ctx, a.DID, p.Issuer+"#")
	if cs, _ := s.ListConsents(ctx, a.DID); len(cs) != 1 || cs[0].ClientID != "local_service" {
		t.Fatalf("after deleting the peer's consents: %+v", cs)
	}
	if err := s.PutRevokedTokens(ctx, p.Issuer, []federation.RevokedToken{{Hash: "h1", ExpiresAt: fixed.Add(time.Hour)}, {Hash: "h1", ExpiresAt: fixed.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	if r, err := s.TokenRevoked(ctx, p.Issuer, "h1"); err != nil || !r {
		t.Fatalf("revoked h1: %v %v", r, err)
	}
	if r, _ := s.TokenRevoked(ctx, "https://c.example", "h1"); r {
		t.Fatal("another issuer's token counted as revoked")
	}
	if err := s.PutRemoteService(ctx, p.Issuer, "forum", []byte(`{"client_id":"forum"}`), fixed); err != nil {
		t.Fatal(err)
	}
	if md, err := s.RemoteService(ctx, p.Issuer, "forum"); err != nil || string(md) != `{"client_id":"forum"}` {
		t.Fatalf("remote service: %s %v", md, err)
	}
	if _, err := s.RemoteService(ctx, p.Issuer, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown remote service: %v", err)
	}
	if err := s.DeletePeer(ctx, p.Issuer); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAccount(ctx, a.DID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the replica outlived its peer: %v", err)
	}
	if r, _ := s.TokenRevoked(ctx, p.Issuer, "h1"); r {
		t.Fatal("revocations outlived their peer")
	}
	if _, err := s.RemoteService(ctx, p.Issuer, "forum"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("services outlived their peer")
	}
	if _, err := s.GetPeer(ctx, p.Issuer); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted peer: %v", err)
	}
	if err := s.DeletePeer(ctx, p.Issuer); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	// Expired revocations are purged.
	s.PutRevokedTokens(ctx, "https://c.example", []federation.RevokedToken{{Hash: "old", ExpiresAt: fixed}})
	if _, err := s.PurgeExpired(ctx, fixed.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if r, _ := s.TokenRevoked(ctx, "https://c.example", "old"); r {
		t.Fatal("an expired revocation was kept")
	}
}

// testEventLog checks the log peers replicate: what changes write, in
// order, with nothing personal in the payload; a forgotten account leaves
// only its deletion and DID-less revocations.
func testEventLog(t *testing.T, s Store) {
	a := mustAccount(t, s, "carol")
	if err := s.UpdateAccount(ctx, a.DID, func(x *identity.Account) error { x.Name = "Carol C."; return nil }); err != nil {
		t.Fatal(err)
	}
	s.PutSettings(ctx, a.DID, privacy.DefaultSettings(), fixed)
	s.PutConsent(ctx, &privacy.Consent{AccountDID: a.DID, ClientID: "svc", Scopes: []string{"openid"}, GrantedAt: fixed, UpdatedAt: fixed})
	live := oauthReq(oidc.KindAccess, "sig1", "req1", a.DID, "svc")
	live.ExpiresAt = time.Now().Add(time.Hour) // announced: it has not expired
	if err := s.CreateOAuthRequest(ctx, live); err != nil {
		t.Fatal(err)
	}
	s.DeleteConsent(ctx, a.DID, "svc")
	if _, err := s.DeleteGrantsOf(ctx, a.DID, "svc"); err != nil {
		t.Fatal(err)
	}
	evs, err := s.FeedEvents(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for i, e := range evs {
		types = append(types, e.Type)
		if i > 0 && e.Seq <= evs[i-1].Seq {
			t.Fatalf("events out of order: %+v", evs)
		}
		raw, _ := json.Marshal(e.Payload)
		if strings.Contains(string(raw), "Carol") || strings.Contains(string(raw), "@example") {
			t.Fatalf("personal data in event %s: %s", e.Type, raw)
		}
	}
	want := []string{"account.created", "account.updated", "privacy.updated", "consent.granted", "consent.revoked", "token.revoked"}
	if !slices.Equal(types, want) {
		t.Fatalf("events %v, want %v", types, want)
	}
	last, err := s.LastEventSeq(ctx)
	if err != nil || last != evs[len(evs)-1].Seq {
		t.Fatalf("last seq %d %v", last, err)
	}
	if got, _ := s.FeedEvents(ctx, evs[2].Seq, 2); len(got) != 2 || got[0].Seq != evs[3].Seq {
		t.Fatalf("page after %d: %+v", evs[2].Seq, got)
	}
	tokens, _ := evs[5].Payload["tokens"].([]any)
	if len(tokens) != 1 {
		t.Fatalf("token.revoked payload: %v", evs[5].Payload)
	}
	if err := s.ForgetAccount(ctx, a.DID); err != nil {
		t.Fatal(err)
	}
	evs, _ = s.FeedEvents(ctx, 0, 100)
	for _, e := range evs {
		if e.AccountDID == a.DID {
			t.Fatalf("a forgotten account's %s event is kept", e.Type)
		}
	}
	if len(evs) != 1 || evs[0].Type != "token.revoked" {
		t.Fatalf("after forgetting: %+v", evs)
	}
}

// testEventOrderConcurrent appends events from many goroutines while a
// reader pages through the log: every page is in order and the reader,
// moving its cursor as a follower does, sees every event.
func testEventOrderConcurrent(t *testing.T, s Store) {
	const writers, each = 8, 25
	var wg sync.WaitGroup
	done := make(chan struct{})
	seen := map[int64]bool{}
	var cursor int64
	go func() {
		defer close(done)
		for {
			evs, err := s.FeedEvents(ctx, cursor, 50)
			if err != nil {
				t.Error(err)
				return
			}
			for _, e := range evs {
				if e.Seq <= cursor {
					t.Errorf("event %d after cursor %d", e.Seq, cursor)
				}
				seen[e.Seq] = true
				cursor = e.Seq
			}
			if len(seen) == writers*each {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := s.AppendEvent(ctx, "test.event", "", time.Now(), map[string]any{"w": w, "i": i}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("the reader saw %d of %d events", len(seen), writers*each)
	}
}
