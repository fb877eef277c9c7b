package storetest

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/store"
)

// MFAStore is a Store that keeps second factors.
type MFAStore interface {
	Store
	identity.MFAStore
	HasSecondFactor(ctx context.Context, did string) (bool, error)
}

// RunMFA runs the second-factor cases, each on a fresh store from open.
func RunMFA(t *testing.T, open func(t *testing.T) MFAStore) {
	for _, c := range []struct {
		name string
		fn   func(t *testing.T, s MFAStore)
	}{
		{"TOTPEnrolment", testTOTPEnrolment},
		{"TOTPStepOnce", testTOTPStepOnce},
		{"RecoveryCodes", testRecoveryCodes},
		{"MFARequired", testMFARequired},
		{"MFAForgottenOnDelete", testMFAForgotten},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, open(t)) })
	}
}

func testTOTPEnrolment(t *testing.T, s MFAStore) {
	a := mustAccount(t, s, "totpalice")
	if _, err := s.GetTOTP(ctx, a.DID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetTOTP(none) err = %v, want ErrNotFound", err)
	}
	if ok, err := s.HasSecondFactor(ctx, a.DID); err != nil || ok {
		t.Fatalf("HasSecondFactor(none) = %v, %v", ok, err)
	}
	if err := s.PutTOTP(ctx, &identity.TOTPFactor{AccountDID: a.DID, SecretSealed: []byte{1}, CreatedAt: fixed}); err != nil {
		t.Fatal(err)
	}
	// An enrolment is replaced by a new one.
	if err := s.PutTOTP(ctx, &identity.TOTPFactor{AccountDID: a.DID, SecretSealed: []byte{2}, CreatedAt: fixed.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	f, err := s.GetTOTP(ctx, a.DID)
	if err != nil || !bytes.Equal(f.SecretSealed, []byte{2}) || f.ConfirmedAt != nil || f.LastStep != 0 || !f.CreatedAt.Equal(fixed.Add(time.Second)) {
		t.Fatalf("GetTOTP = %+v, %v", f, err)
	}
	if ok, _ := s.HasSecondFactor(ctx, a.DID); ok {
		t.Fatal("an unconfirmed enrolment counts as a second factor")
	}
	// Using a step of an enrolment without confirming it is refused.
	if err := s.UseTOTPStep(ctx, a.DID, 100, false, fixed); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UseTOTPStep(unconfirmed, no confirm) err = %v, want ErrNotFound", err)
	}
	if err := s.UseTOTPStep(ctx, a.DID, 100, true, fixed.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	f, _ = s.GetTOTP(ctx, a.DID)
	if f.ConfirmedAt == nil || !f.ConfirmedAt.Equal(fixed.Add(time.Minute)) || f.LastStep != 100 {
		t.Fatalf("after confirm: %+v", f)
	}
	if ok, err := s.HasSecondFactor(ctx, a.DID); err != nil || !ok {
		t.Fatalf("HasSecondFactor(active) = %v, %v", ok, err)
	}
	// A confirmed factor is not replaced by a new enrolment.
	err = s.PutTOTP(ctx, &identity.TOTPFactor{AccountDID: a.DID, SecretSealed: []byte{3}, CreatedAt: fixed})
	if !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("PutTOTP over a confirmed factor err = %v, want ErrAlreadyExists", err)
	}
	if f, _ := s.GetTOTP(ctx, a.DID); !bytes.Equal(f.SecretSealed, []byte{2}) {
		t.Fatal("PutTOTP replaced a confirmed factor")
	}
	// Confirming twice is refused.
	if err := s.UseTOTPStep(ctx, a.DID, 101, true, fixed); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second confirm err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteTOTP(ctx, a.DID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteTOTP(ctx, a.DID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("DeleteTOTP(none) err = %v, want ErrNotFound", err)
	}
	if err := s.UseTOTPStep(ctx, a.DID, 200, false, fixed); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UseTOTPStep(none) err = %v, want ErrNotFound", err)
	}
	// Passkeys are second factors too.
	if err := s.CreatePasskey(ctx, passkey(a.DID, 7)); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.HasSecondFactor(ctx, a.DID); err != nil || !ok {
		t.Fatalf("HasSecondFactor(passkey) = %v, %v", ok, err)
	}
}

func testTOTPStepOnce(t *testing.T, s MFAStore) {
	a := mustAccount(t, s, "totpstep")
	if err := s.PutTOTP(ctx, &identity.TOTPFactor{AccountDID: a.DID, SecretSealed: []byte{1}, CreatedAt: fixed}); err != nil {
		t.Fatal(err)
	}
	if err := s.UseTOTPStep(ctx, a.DID, 10, true, fixed); err != nil {
		t.Fatal(err)
	}
	for _, step := range []int64{10, 9, 0} {
		if err := s.UseTOTPStep(ctx, a.DID, step, false, fixed); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("UseTOTPStep(%d) after 10 err = %v, want ErrConflict", step, err)
		}
	}
	// Of many concurrent uses of one step, exactly one succeeds.
	var (
		wg sync.WaitGroup
		mu sync.Mutex
		ok int
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.UseTOTPStep(ctx, a.DID, 11, false, fixed)
			if err != nil && !errors.Is(err, store.ErrConflict) {
				t.Error(err)
			}
			if err == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if ok != 1 {
		t.Fatalf("%d concurrent uses of one step succeeded, want 1", ok)
	}
	if f, _ := s.GetTOTP(ctx, a.DID); f.LastStep != 11 {
		t.Fatalf("LastStep = %d, want 11", f.LastStep)
	}
}

func testRecoveryCodes(t *testing.T, s MFAStore) {
	a, b := mustAccount(t, s, "rcalice"), mustAccount(t, s, "rcbob")
	if u, n, err := s.CountRecoveryCodes(ctx, a.DID); err != nil || u != 0 || n != 0 {
		t.Fatalf("CountRecoveryCodes(none) = %d, %d, %v", u, n, err)
	}
	if err := s.ReplaceRecoveryCodes(ctx, a.DID, []string{"h1", "h2", "h3"}, fixed); err != nil {
		t.Fatal(err)
	}
	if err := s.ReplaceRecoveryCodes(ctx, b.DID, []string{"h1"}, fixed); err != nil {
		t.Fatal(err)
	}
	if err := s.UseRecoveryCode(ctx, a.DID, "h2", fixed); err != nil {
		t.Fatal(err)
	}
	if err := s.UseRecoveryCode(ctx, a.DID, "h2", fixed); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second use err = %v, want ErrNotFound", err)
	}
	if err := s.UseRecoveryCode(ctx, a.DID, "nope", fixed); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown code err = %v, want ErrNotFound", err)
	}
	// Another account's code is not this one's.
	if err := s.UseRecoveryCode(ctx, b.DID, "h2", fixed); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("other account's code err = %v, want ErrNotFound", err)
	}
	if u, n, _ := s.CountRecoveryCodes(ctx, a.DID); u != 2 || n != 3 {
		t.Fatalf("CountRecoveryCodes = %d unused of %d, want 2 of 3", u, n)
	}
	// New codes replace all the old ones, used or not.
	if err := s.ReplaceRecoveryCodes(ctx, a.DID, []string{"h4"}, fixed); err != nil {
		t.Fatal(err)
	}
	if err := s.UseRecoveryCode(ctx, a.DID, "h1", fixed); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("replaced code err = %v, want ErrNotFound", err)
	}
	if u, n, _ := s.CountRecoveryCodes(ctx, a.DID); u != 1 || n != 1 {
		t.Fatalf("after replace: %d unused of %d", u, n)
	}
	if err := s.ReplaceRecoveryCodes(ctx, a.DID, []string{"x", "x"}, fixed); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("duplicate codes err = %v, want ErrAlreadyExists", err)
	}
	// The failed replacement changed nothing.
	if u, n, _ := s.CountRecoveryCodes(ctx, a.DID); u != 1 || n != 1 {
		t.Fatalf("after a failed replace: %d unused of %d", u, n)
	}
	if u, n, _ := s.CountRecoveryCodes(ctx, b.DID); u != 1 || n != 1 {
		t.Fatalf("other account: %d unused of %d", u, n)
	}
}

func testMFARequired(t *testing.T, s MFAStore) {
	a := mustAccount(t, s, "mfareq")
	if req, err := s.MFARequired(ctx, a.DID); err != nil || req {
		t.Fatalf("MFARequired(never set) = %v, %v", req, err)
	}
	if err := s.SetMFARequired(ctx, a.DID, true, fixed); err != nil {
		t.Fatal(err)
	}
	if req, err := s.MFARequired(ctx, a.DID); err != nil || !req {
		t.Fatalf("MFARequired = %v, %v; want true", req, err)
	}
	if err := s.SetMFARequired(ctx, a.DID, false, fixed); err != nil {
		t.Fatal(err)
	}
	if req, _ := s.MFARequired(ctx, a.DID); req {
		t.Fatal("MFARequired still true")
	}
	if err := s.SetMFARequired(ctx, "did:key:nobody", true, fixed); err == nil {
		t.Fatal("SetMFARequired for an unknown account succeeded")
	}
}

func testMFAForgotten(t *testing.T, s MFAStore) {
	a := mustAccount(t, s, "mfagone")
	if err := s.PutTOTP(ctx, &identity.TOTPFactor{AccountDID: a.DID, SecretSealed: []byte{1}, CreatedAt: fixed}); err != nil {
		t.Fatal(err)
	}
	if err := s.ReplaceRecoveryCodes(ctx, a.DID, []string{"h1"}, fixed); err != nil {
		t.Fatal(err)
	}
	if err := s.SetMFARequired(ctx, a.DID, true, fixed); err != nil {
		t.Fatal(err)
	}
	err := s.UpdateAccount(ctx, a.DID, func(x *identity.Account) error { x.Status = identity.StatusDeleted; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetTOTP(ctx, a.DID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a deleted account keeps its authenticator: %v", err)
	}
	if _, n, _ := s.CountRecoveryCodes(ctx, a.DID); n != 0 {
		t.Fatalf("a deleted account keeps %d recovery codes", n)
	}
	if req, _ := s.MFARequired(ctx, a.DID); req {
		t.Fatal("a deleted account still requires a second factor")
	}
}
