package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/onecommons/commonsid/federation"
	"github.com/onecommons/commonsid/privacy"
	"github.com/onecommons/commonsid/store"
)

// epochAdmin is how the serve and feed commands keep the feed epoch.
type epochAdmin interface {
	EnsureFeedEpoch(ctx context.Context, fresh string) (string, bool, error)
	RotateFeedEpoch(ctx context.Context, from, to string) (string, error)
	FeedEpochs(ctx context.Context) ([]string, error)
}

// testFeedEpoch: the feed epoch is made once and replaced only from the
// epoch in force, with its history kept; the head does not go down when
// events are deleted; a resync clears the peer's cursor, applied set and
// quarantine, and its sweep drops exactly the peer's replicas, services
// and consents the replay did not mark, keeping revoked tokens.
func testFeedEpoch(t *testing.T, s Store) {
	adm, ok := s.(epochAdmin)
	if !ok {
		t.Skip("the store does not keep a feed epoch")
	}
	if e, err := s.FeedEpoch(ctx); err != nil || e != "" {
		t.Fatalf("epoch before any: %q %v", e, err)
	}
	if e, made, err := adm.EnsureFeedEpoch(ctx, "e1"); err != nil || e != "e1" || !made {
		t.Fatalf("ensure: %q %v %v", e, made, err)
	}
	if e, made, err := adm.EnsureFeedEpoch(ctx, "e2"); err != nil || e != "e1" || made {
		t.Fatalf("ensure again: %q %v %v", e, made, err)
	}
	if e, err := adm.RotateFeedEpoch(ctx, "e1", "e3"); err != nil || e != "e3" {
		t.Fatalf("rotate: %q %v", e, err)
	}
	// A rotation from an epoch no longer in force loses to the one made.
	if e, err := adm.RotateFeedEpoch(ctx, "e1", "e4"); err != nil || e != "e3" {
		t.Fatalf("rotate from a stale epoch: %q %v", e, err)
	}
	if e, _ := s.FeedEpoch(ctx); e != "e3" {
		t.Fatalf("epoch %q", e)
	}
	if h, err := adm.FeedEpochs(ctx); err != nil || !slices.Equal(h, []string{"e1", "e3"}) {
		t.Fatalf("history: %v %v", h, err)
	}

	// The head is the log's counter: forgetting an account deletes its
	// events, not the head.
	if h, err := s.FeedHead(ctx); err != nil || h != 0 {
		t.Fatalf("head of an empty log: %d %v", h, err)
	}
	for _, e := range []struct{ typ, did string }{{"account.created", "did:key:z6Mkone"}, {"account.updated", "did:key:z6Mktwo"}, {"account.updated", "did:key:z6Mktwo"}} {
		if err := s.AppendEvent(ctx, e.typ, e.did, fixed, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.ForgetAccount(ctx, "did:key:z6Mktwo"); err != nil {
		t.Fatal(err)
	}
	last, _ := s.LastEventSeq(ctx)
	if h, err := s.FeedHead(ctx); err != nil || h != 3 || last != 1 {
		t.Fatalf("head %d (last event %d) after deleting the newest events: %v", h, last, err)
	}

	// Follower side.
	const peer = "https://home.example"
	p := &federation.Peer{Issuer: peer, DID: "did:web:home.example", JWKSURI: peer + "/jwks.json",
		JWKS: jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}, Metadata: []byte(`{}`), AddedAt: fixed, KeysAt: fixed}
	if err := s.PutPeer(ctx, p); err != nil {
		t.Fatal(err)
	}
	if pe, err := s.PeerEpoch(ctx, peer); err != nil || pe.Epoch != "" || pe.Resyncing || pe.Resyncs != 0 || pe.Peer != peer {
		t.Fatalf("epoch of a new peer: %+v %v", pe, err)
	}
	if err := s.SetPeerEpoch(ctx, peer, "old"); err != nil {
		t.Fatal(err)
	}
	for seq := int64(1); seq <= 5; seq++ {
		if _, err := s.MarkApplied(ctx, &federation.Applied{Peer: peer, Seq: seq, Type: "account.updated", EventAt: fixed, AppliedAt: fixed}); err != nil {
			t.Fatal(err)
		}
	}
	s.SetPeerCursor(ctx, peer, 5, fixed)
	if err := s.PutQuarantined(ctx, &federation.Quarantined{Peer: peer, Seq: 6, Type: "account.updated", Event: `{}`, Reason: "x",
		FirstSeen: fixed, LastSeen: fixed, Attempts: 1}, 10); err != nil {
		t.Fatal(err)
	}
	// Two replicas, two services, two consents of the peer; one account of
	// this cloud's own.
	local := account("local")
	if err := s.CreateAccount(ctx, local); err != nil {
		t.Fatal(err)
	}
	var replicas []string
	for _, h := range []string{"kept", "gone"} {
		a := account(h)
		a.Handle, a.HomeIssuer, a.PasswordHash, a.DIDKeySealed = h+"@home.example", peer, "", nil
		if err := s.PutReplica(ctx, a); err != nil {
			t.Fatal(err)
		}
		replicas = append(replicas, a.DID)
		if err := s.PutRemoteService(ctx, peer, "svc-"+h, []byte(`{"client_id":"svc-`+h+`"}`), fixed); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []string{"svc-kept", "svc-gone"} {
		if err := s.PutReplicaConsent(ctx, &privacy.Consent{AccountDID: replicas[0], ClientID: peer + "#" + c, Scopes: []string{"openid"},
			GrantedAt: fixed, UpdatedAt: fixed}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutRevokedTokens(ctx, peer, []federation.RevokedToken{{Hash: "abc", ExpiresAt: fixed.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}

	if err := s.StartResync(ctx, "https://nobody.example", "new", "x", fixed); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("resync of an unknown peer: %v", err)
	}
	if err := s.StartResync(ctx, peer, "new", "feed epoch changed", fixed); err != nil {
		t.Fatal(err)
	}
	got, _ := s.GetPeer(ctx, peer)
	applied, _ := s.ListApplied(ctx, peer, 0, 10)
	held, _, _ := s.QuarantineCount(ctx, peer)
	if got.Cursor != 0 || !got.LastEventAt.IsZero() || len(applied) != 0 || held != 0 {
		t.Fatalf("after the resync started: cursor %d, last event %v, %d applied, %d quarantined", got.Cursor, got.LastEventAt, len(applied), held)
	}
	pe, err := s.PeerEpoch(ctx, peer)
	if err != nil || pe.Epoch != "new" || !pe.Resyncing || pe.Reason != "feed epoch changed" || !pe.ResyncAt.Equal(fixed) || pe.Resyncs != 1 || !pe.DoneAt.IsZero() {
		t.Fatalf("resyncing: %+v %v", pe, err)
	}
	for _, m := range [][3]string{
		{federation.SeenAccount, replicas[0], ""},
		{federation.SeenAccount, replicas[0], ""}, // twice: once is kept
		{federation.SeenService, "svc-kept", ""},
		{federation.SeenConsent, replicas[0], peer + "#svc-kept"},
	} {
		if err := s.MarkResyncSeen(ctx, peer, m[0], m[1], m[2]); err != nil {
			t.Fatal(err)
		}
	}
	done := fixed.Add(time.Minute)
	sw, err := s.FinishResync(ctx, peer, done)
	if err != nil || sw != (federation.Swept{Accounts: 1, Services: 1, Consents: 1}) {
		t.Fatalf("sweep: %+v %v", sw, err)
	}
	if _, err := s.GetAccount(ctx, replicas[1]); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an unmentioned replica survived the sweep: %v", err)
	}
	if _, err := s.GetAccount(ctx, replicas[0]); err != nil {
		t.Fatalf("a mentioned replica: %v", err)
	}
	if _, err := s.GetAccount(ctx, local.DID); err != nil {
		t.Fatalf("this cloud's own account: %v", err)
	}
	if _, err := s.RemoteService(ctx, peer, "svc-gone"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an unmentioned service survived the sweep: %v", err)
	}
	if _, err := s.RemoteService(ctx, peer, "svc-kept"); err != nil {
		t.Fatalf("a mentioned service: %v", err)
	}
	cs, _ := s.ListConsents(ctx, replicas[0])
	if len(cs) != 1 || cs[0].ClientID != peer+"#svc-kept" {
		t.Fatalf("consents after the sweep: %+v", cs)
	}
	if revoked, err := s.TokenRevoked(ctx, peer, "abc"); err != nil || !revoked {
		t.Fatalf("a revoked token was swept: %v %v", revoked, err)
	}
	pe, _ = s.PeerEpoch(ctx, peer)
	if pe.Resyncing || !pe.DoneAt.Equal(done) || pe.Epoch != "new" || pe.Resyncs != 1 {
		t.Fatalf("after the sweep: %+v", pe)
	}
	// The marks went with the sweep: a second resync with none sweeps all.
	if err := s.StartResync(ctx, peer, "newer", "feed head 0 is below the cursor 3", done); err != nil {
		t.Fatal(err)
	}
	if sw, err := s.FinishResync(ctx, peer, done); err != nil || sw.Accounts != 1 || sw.Services != 1 {
		t.Fatalf("second sweep: %+v %v", sw, err)
	}
	if pe, _ := s.PeerEpoch(ctx, peer); pe.Resyncs != 2 || pe.Epoch != "newer" {
		t.Fatalf("second resync: %+v", pe)
	}
	// Removing the peer removes what is known of its epoch.
	if err := s.DeletePeer(ctx, peer); err != nil {
		t.Fatal(err)
	}
	if pe, err := s.PeerEpoch(ctx, peer); err != nil || pe.Epoch != "" || pe.Resyncs != 0 {
		t.Fatalf("after the peer is removed: %+v %v", pe, err)
	}
}
