package storetest

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/store"
)

func passkey(did string, id byte) *identity.Passkey {
	return &identity.Passkey{
		ID: []byte{id, 0xfe, 0x00, 0x7f}, AccountDID: did, Name: "Laptop", PublicKey: []byte{0xa5, 1, 2, 3, id},
		AttestationType: "none", AttestationFormat: "none", AAGUID: make([]byte, 16), SignCount: 5,
		Transports: []string{"hybrid", "internal"}, Attachment: "platform", UserVerified: true, BackupEligible: true,
		CreatedAt: fixed.Add(time.Duration(id) * time.Second),
	}
}

func testPasskeyUsers(t *testing.T, s Store) {
	a, b := mustAccount(t, s, "pkuser"), mustAccount(t, s, "pkuser2")
	h1 := bytes.Repeat([]byte{1}, 32)
	got, err := s.PutPasskeyUser(ctx, a.DID, h1)
	if err != nil || !bytes.Equal(got, h1) {
		t.Fatalf("PutPasskeyUser = %x, %v", got, err)
	}
	// A second handle does not replace the first: the handle is stable.
	if got, err := s.PutPasskeyUser(ctx, a.DID, bytes.Repeat([]byte{2}, 32)); err != nil || !bytes.Equal(got, h1) {
		t.Fatalf("second PutPasskeyUser = %x, %v; want the first handle", got, err)
	}
	if did, err := s.PasskeyUser(ctx, h1); err != nil || did != a.DID {
		t.Fatalf("PasskeyUser = %q, %v", did, err)
	}
	if _, err := s.PasskeyUser(ctx, bytes.Repeat([]byte{9}, 32)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("PasskeyUser(unknown) err = %v, want ErrNotFound", err)
	}
	// Another account cannot take the same handle.
	var dup *store.DuplicateError
	if _, err := s.PutPasskeyUser(ctx, b.DID, h1); !errors.As(err, &dup) {
		t.Fatalf("PutPasskeyUser with a taken handle err = %v, want DuplicateError", err)
	}
}

func testPasskeys(t *testing.T, s Store) {
	a, b := mustAccount(t, s, "pkalice"), mustAccount(t, s, "pkbob")
	p1, p2 := passkey(a.DID, 1), passkey(a.DID, 2)
	p2.Name, p2.Transports, p2.AAGUID, p2.BackupEligible, p2.Attachment = "Key", nil, nil, false, ""
	for _, p := range []*identity.Passkey{p2, p1} {
		if err := s.CreatePasskey(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.ListPasskeys(ctx, a.DID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]*identity.Passkey{p1, p2}, got); diff != "" {
		t.Fatalf("ListPasskeys (-want +got):\n%s", diff)
	}
	// The same credential id cannot be registered twice, to any account.
	var dup *store.DuplicateError
	again := passkey(b.DID, 1)
	if err := s.CreatePasskey(ctx, again); !errors.As(err, &dup) || !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("duplicate credential id err = %v, want DuplicateError", err)
	}
	if l, _ := s.ListPasskeys(ctx, b.DID); len(l) != 0 {
		t.Fatalf("bob has passkeys after a refused registration: %v", l)
	}

	// Rename and delete only touch the owner's passkeys.
	if err := s.RenamePasskey(ctx, b.DID, p1.ID, "Stolen"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rename by another account err = %v, want ErrNotFound", err)
	}
	if err := s.DeletePasskey(ctx, b.DID, p1.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete by another account err = %v, want ErrNotFound", err)
	}
	if err := s.RenamePasskey(ctx, a.DID, p1.ID, "Phone"); err != nil {
		t.Fatal(err)
	}
	if err := s.RenamePasskey(ctx, a.DID, []byte("nope"), "Phone"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rename of an unknown passkey err = %v, want ErrNotFound", err)
	}

	// Use: the counter must advance; a zero counter (synced passkeys) stays zero.
	used := fixed.Add(time.Hour)
	if err := s.RecordPasskeyUse(ctx, p1.ID, 6, true, used); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordPasskeyUse(ctx, p1.ID, 6, false, used.Add(time.Minute)); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("counter not advancing err = %v, want ErrConflict", err)
	}
	if err := s.RecordPasskeyUse(ctx, p1.ID, 3, false, used.Add(time.Minute)); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("counter going back err = %v, want ErrConflict", err)
	}
	if err := s.RecordPasskeyUse(ctx, []byte("nope"), 1, false, used); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("use of an unknown passkey err = %v, want ErrNotFound", err)
	}
	p2.SignCount = 0
	s.DeletePasskey(ctx, a.DID, p2.ID)
	if err := s.CreatePasskey(ctx, p2); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := s.RecordPasskeyUse(ctx, p2.ID, 0, false, used); err != nil {
			t.Fatalf("zero counter: %v", err)
		}
	}
	got, _ = s.ListPasskeys(ctx, a.DID)
	w1 := *p1
	w1.Name, w1.SignCount, w1.BackupState, w1.LastUsedAt = "Phone", 6, true, &used
	w2 := *p2
	w2.LastUsedAt = &used
	if diff := cmp.Diff([]*identity.Passkey{&w1, &w2}, got); diff != "" {
		t.Fatalf("after rename and use (-want +got):\n%s", diff)
	}

	if err := s.DeletePasskey(ctx, a.DID, p1.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeletePasskey(ctx, a.DID, p1.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete err = %v, want ErrNotFound", err)
	}
	if got, _ := s.ListPasskeys(ctx, a.DID); len(got) != 1 || !bytes.Equal(got[0].ID, p2.ID) {
		t.Fatalf("after delete: %v", got)
	}
}

// testPasskeysForgotten: deleting an account (by any path: the status
// change) removes its passkeys and user handle, and only its own.
func testPasskeysForgotten(t *testing.T, s Store) {
	a, b := mustAccount(t, s, "pkgone"), mustAccount(t, s, "pkstay")
	for i, acct := range []*identity.Account{a, b} {
		if _, err := s.PutPasskeyUser(ctx, acct.DID, bytes.Repeat([]byte{byte(i + 1)}, 32)); err != nil {
			t.Fatal(err)
		}
		if err := s.CreatePasskey(ctx, passkey(acct.DID, byte(10+i))); err != nil {
			t.Fatal(err)
		}
	}
	// Disabling keeps them (re-enabling restores sign-in).
	if err := s.UpdateAccount(ctx, a.DID, func(x *identity.Account) error { x.Status = identity.StatusDisabled; return nil }); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.ListPasskeys(ctx, a.DID); len(l) != 1 {
		t.Fatalf("disabling removed the passkeys: %v", l)
	}
	err := s.UpdateAccount(ctx, a.DID, func(x *identity.Account) error {
		x.Status, x.DeletedAt = identity.StatusDeleted, &fixed
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if l, err := s.ListPasskeys(ctx, a.DID); err != nil || len(l) != 0 {
		t.Fatalf("deleted account still has passkeys: %v %v", l, err)
	}
	if _, err := s.PasskeyUser(ctx, bytes.Repeat([]byte{1}, 32)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted account's user handle: %v", err)
	}
	if l, _ := s.ListPasskeys(ctx, b.DID); len(l) != 1 {
		t.Fatalf("another account lost its passkeys: %v", l)
	}
	if did, err := s.PasskeyUser(ctx, bytes.Repeat([]byte{2}, 32)); err != nil || did != b.DID {
		t.Fatalf("another account lost its user handle: %v", err)
	}
}

func testCeremonies(t *testing.T, s Store) {
	c := &identity.Ceremony{IDHash: "c1", Kind: identity.CeremonyLogin, Data: []byte(`{"challenge":"x"}`), ExpiresAt: fixed.Add(5 * time.Minute)}
	if err := s.PutCeremony(ctx, c); err != nil {
		t.Fatal(err)
	}
	var dup *store.DuplicateError
	if err := s.PutCeremony(ctx, c); !errors.As(err, &dup) {
		t.Fatalf("same id twice err = %v, want DuplicateError", err)
	}
	// Another kind does not take it, and leaves it in place.
	if _, err := s.TakeCeremony(ctx, "c1", identity.CeremonyRegister, fixed); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("take with another kind err = %v, want ErrNotFound", err)
	}
	got, err := s.TakeCeremony(ctx, "c1", identity.CeremonyLogin, fixed)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(c, got); diff != "" {
		t.Fatalf("ceremony (-want +got):\n%s", diff)
	}
	// Single use.
	if _, err := s.TakeCeremony(ctx, "c1", identity.CeremonyLogin, fixed); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second take err = %v, want ErrNotFound", err)
	}
	// Expired.
	old := &identity.Ceremony{IDHash: "c2", Kind: identity.CeremonyLogin, Data: []byte("{}"), ExpiresAt: fixed}
	if err := s.PutCeremony(ctx, old); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TakeCeremony(ctx, "c2", identity.CeremonyLogin, fixed.Add(time.Second)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired take err = %v, want ErrNotFound", err)
	}
	if _, err := s.TakeCeremony(ctx, "c2", identity.CeremonyLogin, fixed); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an expired ceremony was not dropped: %v", err)
	}

	// Of concurrent takes, exactly one wins.
	race := &identity.Ceremony{IDHash: "c3", Kind: identity.CeremonyRegister, Data: []byte("{}"), ExpiresAt: fixed.Add(time.Minute)}
	if err := s.PutCeremony(ctx, race); err != nil {
		t.Fatal(err)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		wins int
	)
	for range 8 {
		wg.Go(func() {
			_, err := s.TakeCeremony(ctx, "c3", identity.CeremonyRegister, fixed)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				wins++
			} else if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("concurrent take: %v", err)
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d concurrent takes succeeded, want 1", wins)
	}
}
