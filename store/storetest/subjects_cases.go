package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/store"
)

// replicaSecrets is how the upgrade finds replicas made when peers still
// received the pairwise secret, and drops it.
type replicaSecrets interface {
	ReplicasWithSecret(ctx context.Context, home, after string, limit int) ([]*identity.Account, error)
	DropReplicaSecret(ctx context.Context, did, home string) error
}

// testReplicaSubjects: subs learned for a replica are kept per (account,
// sector), replaced when learned again, and go with the replica; the
// upgrade lists replicas still holding a secret and drops it, never the
// secret of an account homed here.
func testReplicaSubjects(t *testing.T, s Store) {
	const here = "https://cloud.example"
	home := account("hana")
	if err := s.CreateAccount(ctx, home); err != nil {
		t.Fatal(err)
	}
	rep := account("rita")
	rep.Handle, rep.HomeIssuer, rep.PasswordHash, rep.DIDKeySealed = "rita@peer.example", "https://peer.example", "", nil
	if err := s.PutReplica(ctx, rep); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReplicaSubject(ctx, rep.DID, "notes.example"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown subject: %v", err)
	}
	for i, sub := range []string{"first-sub", "second-sub"} {
		if err := s.PutReplicaSubject(ctx, rep.DID, "notes.example", sub, fixed.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutReplicaSubject(ctx, rep.DID, "forum.example", "forum-sub", fixed); err != nil {
		t.Fatal(err)
	}
	for sector, want := range map[string]string{"notes.example": "second-sub", "forum.example": "forum-sub"} {
		if got, err := s.ReplicaSubject(ctx, rep.DID, sector); err != nil || got != want {
			t.Fatalf("subject at %s: %q %v, want %q", sector, got, err, want)
		}
	}
	if _, err := s.ReplicaSubject(ctx, home.DID, "notes.example"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another account's subject: %v", err)
	}

	u, ok := s.(replicaSecrets)
	if !ok {
		t.Fatal("the store cannot upgrade replicas holding a pairwise secret")
	}
	got, err := u.ReplicasWithSecret(ctx, here, "", 10)
	if err != nil || len(got) != 1 || got[0].DID != rep.DID {
		t.Fatalf("replicas with a secret: %+v %v", got, err)
	}
	if got, err := u.ReplicasWithSecret(ctx, here, rep.DID, 10); err != nil || len(got) != 0 {
		t.Fatalf("replicas with a secret after the last: %+v %v", got, err)
	}
	for _, d := range []string{rep.DID, home.DID} {
		if err := u.DropReplicaSecret(ctx, d, here); err != nil {
			t.Fatal(err)
		}
	}
	if a, _ := s.GetAccount(ctx, rep.DID); a.PairwiseSecretSealed != nil {
		t.Fatal("the replica kept its secret")
	}
	if a, _ := s.GetAccount(ctx, home.DID); len(a.PairwiseSecretSealed) == 0 {
		t.Fatal("an account homed here lost its secret")
	}
	if got, err := u.ReplicasWithSecret(ctx, here, "", 10); err != nil || len(got) != 0 {
		t.Fatalf("after the upgrade: %+v %v", got, err)
	}

	// A replica refreshed from its home keeps its subs; dropped, it loses
	// them.
	if err := s.PutReplica(ctx, rep); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ReplicaSubject(ctx, rep.DID, "forum.example"); err != nil || got != "forum-sub" {
		t.Fatalf("after a refresh: %q %v", got, err)
	}
	if err := s.DropReplica(ctx, rep.DID); err != nil {
		t.Fatal(err)
	}
	for _, sector := range []string{"notes.example", "forum.example"} {
		if _, err := s.ReplicaSubject(ctx, rep.DID, sector); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("subject at %s outlived the replica: %v", sector, err)
		}
	}
}
