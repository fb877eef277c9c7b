package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/onecommons/commonsid/access"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/store"
)

// AccessStore is a Store that keeps contribution grants.
type AccessStore interface {
	Store
	access.Store
}

// RunAccess runs the contribution-grant cases, each on a fresh store from open.
func RunAccess(t *testing.T, open func(t *testing.T) AccessStore) {
	for _, c := range []struct {
		name string
		fn   func(t *testing.T, s AccessStore)
	}{
		{"AccessSetGet", testAccessSetGet},
		{"AccessNoticeOnce", testAccessNoticeOnce},
		{"AccessReplica", testAccessReplica},
		{"AccessForgottenOnDelete", testAccessForgotten},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, open(t)) })
	}
}

func testAccessSetGet(t *testing.T, s AccessStore) {
	a := mustAccount(t, s, "accalice")
	if _, err := s.GetAccess(ctx, a.DID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetAccess(none) err = %v, want ErrNotFound", err)
	}
	before, _ := s.LastEventSeq(ctx)
	g := &access.Grant{AccountDID: a.DID, Level: "enhanced", ExpiresAt: fixed.Add(24 * time.Hour), Source: access.SourceOperator, SetAt: fixed}
	if err := s.SetAccess(ctx, g); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetAccess(ctx, a.DID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(g, got); diff != "" {
		t.Fatalf("GetAccess mismatch (-want +got):\n%s", diff)
	}
	evs, err := s.FeedEvents(ctx, before, 10)
	if err != nil || len(evs) != 1 || evs[0].Type != "account.updated" || evs[0].AccountDID != a.DID {
		t.Fatalf("SetAccess announced %+v, %v; want one account.updated", evs, err)
	}
	// A new grant replaces the old one; basic has no expiry.
	b := &access.Grant{AccountDID: a.DID, Level: access.Basic, Source: access.SourceOperator, SetAt: fixed.Add(time.Minute)}
	if err := s.SetAccess(ctx, b); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetAccess(ctx, a.DID); err != nil || got.Level != access.Basic || !got.ExpiresAt.IsZero() {
		t.Fatalf("GetAccess after basic = %+v, %v", got, err)
	}
	// A grant for an account that does not exist is refused.
	if err := s.SetAccess(ctx, &access.Grant{AccountDID: "did:key:z6Mknobody", Level: "enhanced", ExpiresAt: fixed, Source: "operator", SetAt: fixed}); err == nil {
		t.Fatal("SetAccess for an unknown account succeeded")
	}
}

func testAccessNoticeOnce(t *testing.T, s AccessStore) {
	a := mustAccount(t, s, "accnotice")
	g := &access.Grant{AccountDID: a.DID, Level: "enhanced", ExpiresAt: fixed.Add(time.Hour), Source: "notice:pay", SetAt: fixed, NoticeID: "n-1"}
	if err := s.SetAccess(ctx, g); err != nil {
		t.Fatal(err)
	}
	before, _ := s.LastEventSeq(ctx)
	// The same notice id again, even with another level, changes nothing.
	again := &access.Grant{AccountDID: a.DID, Level: "patron", ExpiresAt: fixed.Add(2 * time.Hour), Source: "notice:pay", SetAt: fixed.Add(time.Second), NoticeID: "n-1"}
	if err := s.SetAccess(ctx, again); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("replayed notice err = %v, want ErrAlreadyExists", err)
	}
	if got, _ := s.GetAccess(ctx, a.DID); got == nil || got.Level != "enhanced" || got.NoticeID != "n-1" {
		t.Fatalf("after a replay the grant is %+v", got)
	}
	if after, _ := s.LastEventSeq(ctx); after != before {
		t.Fatalf("a refused notice appended events: %d → %d", before, after)
	}
	// Another service may use the same id.
	other := &access.Grant{AccountDID: a.DID, Level: "patron", ExpiresAt: fixed.Add(2 * time.Hour), Source: "notice:other", SetAt: fixed.Add(time.Second), NoticeID: "n-1"}
	if err := s.SetAccess(ctx, other); err != nil {
		t.Fatalf("the same id from another service: %v", err)
	}
}

func testAccessReplica(t *testing.T, s AccessStore) {
	a := mustAccount(t, s, "accreplica")
	before, _ := s.LastEventSeq(ctx)
	g := &access.Grant{AccountDID: "ignored", Level: "enhanced", ExpiresAt: fixed.Add(time.Hour), Source: "notice:pay", SetAt: fixed, NoticeID: "n-9"}
	if err := s.PutReplicaAccess(ctx, a.DID, g); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetAccess(ctx, a.DID)
	if err != nil || got.AccountDID != a.DID || got.Level != "enhanced" || !got.ExpiresAt.Equal(fixed.Add(time.Hour)) {
		t.Fatalf("GetAccess(replica) = %+v, %v", got, err)
	}
	if after, _ := s.LastEventSeq(ctx); after != before {
		t.Fatal("PutReplicaAccess announced the account")
	}
	// The home's notice id is not recorded here as a local notice.
	if err := s.SetAccess(ctx, &access.Grant{AccountDID: a.DID, Level: "enhanced", ExpiresAt: fixed, Source: "notice:pay", SetAt: fixed, NoticeID: "n-9"}); err != nil {
		t.Fatalf("a replica's notice id blocks a local one: %v", err)
	}
	if err := s.PutReplicaAccess(ctx, a.DID, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAccess(ctx, a.DID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetAccess after removal err = %v", err)
	}
}

func testAccessForgotten(t *testing.T, s AccessStore) {
	a := mustAccount(t, s, "accgone")
	if err := s.SetAccess(ctx, &access.Grant{AccountDID: a.DID, Level: "enhanced", ExpiresAt: fixed.Add(time.Hour), Source: "notice:pay", SetAt: fixed, NoticeID: "gone-1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateAccount(ctx, a.DID, func(x *identity.Account) error { x.Status = identity.StatusDeleted; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAccess(ctx, a.DID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a deleted account keeps its grant: %v", err)
	}
	b := mustAccount(t, s, "accgone2")
	if err := s.SetAccess(ctx, &access.Grant{AccountDID: b.DID, Level: "enhanced", ExpiresAt: fixed.Add(time.Hour), Source: "operator", SetAt: fixed}); err != nil {
		t.Fatal(err)
	}
	if err := s.ForgetAccount(ctx, b.DID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAccess(ctx, b.DID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a forgotten account keeps its grant: %v", err)
	}
}
