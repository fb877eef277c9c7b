package storetest

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/onecommons/commonsid/privacy"
	"github.com/onecommons/commonsid/store"
)

// testPeerGrants: a grant to a peer cloud is a consent row whose writes log
// privacy.updated (never consent.*), and a failed revocation logs nothing.
func testPeerGrants(t *testing.T, s Store) {
	a := mustAccount(t, s, "grant")
	const peer = "https://b.example"
	lastEvent := func() (int64, string, string) {
		seq, err := s.LastEventSeq(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if seq == 0 {
			return 0, "", ""
		}
		evs, err := s.FeedEvents(ctx, seq-1, 1)
		if err != nil || len(evs) != 1 {
			t.Fatalf("feed events: %v %v", evs, err)
		}
		return seq, evs[0].Type, evs[0].AccountDID
	}
	c := &privacy.Consent{AccountDID: a.DID, ClientID: peer, Scopes: []string{"openid"}, GrantedAt: fixed, UpdatedAt: fixed}
	if err := s.PutPeerGrant(ctx, c); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetConsent(ctx, a.DID, peer)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(c, got); diff != "" {
		t.Fatalf("grant (-want +got):\n%s", diff)
	}
	seq, typ, who := lastEvent()
	if typ != "privacy.updated" || who != a.DID {
		t.Fatalf("event after a grant: %s %s", typ, who)
	}
	if err := s.DeletePeerGrant(ctx, a.DID, peer); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetConsent(ctx, a.DID, peer); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("grant after revocation: %v", err)
	}
	seq2, typ, who := lastEvent()
	if seq2 != seq+1 || typ != "privacy.updated" || who != a.DID {
		t.Fatalf("event after a revocation: %d %s %s (grant at %d)", seq2, typ, who, seq)
	}
	if err := s.DeletePeerGrant(ctx, a.DID, peer); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoking a grant that is gone: %v", err)
	}
	if seq3, _, _ := lastEvent(); seq3 != seq2 {
		t.Fatalf("a failed revocation logged event %d", seq3)
	}
}
