package identity_test

import (
	"context"
	"errors"
	"net/url"
	"regexp"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/internal/testdb"
	"github.com/onecommons/commonsid/keys"
)

// code computes the authenticator app's code at t, as an app would.
func code(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newMFA(t *testing.T) (*identity.MFA, *identity.Account, *time.Time) {
	t.Helper()
	db, _ := testdb.SQLite(t)
	kek, _ := keys.NewKEK(make([]byte, 32))
	s := identity.NewService(db, kek, "https://cloud.example")
	a, err := s.Create(context.Background(), identity.CreateParams{Handle: "alice", Password: "correct horse"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 5, 6, 7, 8, 15, 0, time.UTC) // 15 s into a step
	return &identity.MFA{Store: db, Sealer: kek, Issuer: "https://cloud.example", Now: func() time.Time { return now },
		HasPasskey: func(ctx context.Context, did string) (bool, error) { return false, nil }}, a, &now
}

func TestTOTPEnrolAndVerify(t *testing.T) {
	ctx := context.Background()
	m, a, now := newMFA(t)
	if err := m.CheckTOTP(ctx, a.DID, "123456"); !errors.Is(err, identity.ErrNoFactor) {
		t.Fatalf("CheckTOTP without a factor err = %v, want ErrNoFactor", err)
	}
	e, err := m.BeginTOTP(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(e.URL)
	if err != nil || u.Scheme != "otpauth" || u.Host != "totp" || u.Query().Get("secret") != e.Secret ||
		u.Query().Get("algorithm") != "SHA1" || u.Query().Get("digits") != "6" || u.Query().Get("period") != "30" {
		t.Fatalf("enrolment URL %q", e.URL)
	}
	if !regexp.MustCompile(`^data:image/png;base64,[A-Za-z0-9+/=]{100,}$`).MatchString(e.QR) {
		t.Fatalf("QR code is not a PNG data URL: %.60s", e.QR)
	}
	// The enrolment is not a factor: its codes sign nothing.
	if err := m.CheckTOTP(ctx, a.DID, code(t, e.Secret, *now)); !errors.Is(err, identity.ErrNoFactor) {
		t.Fatalf("CheckTOTP of an unconfirmed enrolment err = %v, want ErrNoFactor", err)
	}
	// The pending enrolment shows the same secret again.
	if p, err := m.PendingTOTP(ctx, a); err != nil || p.Secret != e.Secret {
		t.Fatalf("PendingTOTP = %v, %v", p, err)
	}
	wrong := "000000"
	if code(t, e.Secret, *now) == wrong {
		wrong = "111111"
	}
	if err := m.ConfirmTOTP(ctx, a.DID, wrong); !errors.Is(err, identity.ErrBadCode) {
		t.Fatalf("ConfirmTOTP(wrong) err = %v, want ErrBadCode", err)
	}
	if err := m.ConfirmTOTP(ctx, a.DID, code(t, e.Secret, *now)); err != nil {
		t.Fatal(err)
	}
	if _, err := m.BeginTOTP(ctx, a); !errors.Is(err, identity.ErrFactorExists) {
		t.Fatalf("BeginTOTP over an active factor err = %v, want ErrFactorExists", err)
	}
	// The confirming code was this step's: it is not accepted again.
	if err := m.CheckTOTP(ctx, a.DID, code(t, e.Secret, *now)); !errors.Is(err, identity.ErrCodeUsed) {
		t.Fatalf("reused code err = %v, want ErrCodeUsed", err)
	}
	// One step later, the next code works once; typed with a space too.
	*now = now.Add(30 * time.Second)
	c := code(t, e.Secret, *now)
	if err := m.CheckTOTP(ctx, a.DID, c[:3]+" "+c[3:]); err != nil {
		t.Fatalf("next step's code: %v", err)
	}
	if err := m.CheckTOTP(ctx, a.DID, c); !errors.Is(err, identity.ErrCodeUsed) {
		t.Fatalf("same code twice err = %v, want ErrCodeUsed", err)
	}
	// An older step's code, though within the skew, is refused once a
	// later one was used.
	if err := m.CheckTOTP(ctx, a.DID, code(t, e.Secret, now.Add(-30*time.Second))); !errors.Is(err, identity.ErrCodeUsed) {
		t.Fatalf("an earlier step's code err = %v", err)
	}
	// Skew: the code of the step after the current one is accepted (the
	// phone's clock is ahead), two steps ahead is not.
	*now = now.Add(5 * time.Minute)
	if err := m.CheckTOTP(ctx, a.DID, code(t, e.Secret, now.Add(60*time.Second))); !errors.Is(err, identity.ErrBadCode) {
		t.Fatalf("a code two steps ahead err = %v, want ErrBadCode", err)
	}
	if err := m.CheckTOTP(ctx, a.DID, code(t, e.Secret, now.Add(30*time.Second))); err != nil {
		t.Fatalf("a code one step ahead: %v", err)
	}
	// …and after it, the current step (before the accepted one) is refused.
	if err := m.CheckTOTP(ctx, a.DID, code(t, e.Secret, *now)); !errors.Is(err, identity.ErrCodeUsed) {
		t.Fatalf("a step before the last used err = %v, want ErrCodeUsed", err)
	}
	// A step behind (the phone's clock is late) is accepted.
	*now = now.Add(5 * time.Minute)
	if err := m.CheckTOTP(ctx, a.DID, code(t, e.Secret, now.Add(-30*time.Second))); err != nil {
		t.Fatalf("a code one step behind: %v", err)
	}
	for _, bad := range []string{"", "12345", "1234567", "abcdef"} {
		if err := m.CheckTOTP(ctx, a.DID, bad); !errors.Is(err, identity.ErrBadCode) {
			t.Errorf("CheckTOTP(%q) err = %v, want ErrBadCode", bad, err)
		}
	}
}

func TestTOTPSecretSealedToAccount(t *testing.T) {
	ctx := context.Background()
	m, a, _ := newMFA(t)
	if _, err := m.BeginTOTP(ctx, a); err != nil {
		t.Fatal(err)
	}
	f, err := m.Store.GetTOTP(ctx, a.DID)
	if err != nil {
		t.Fatal(err)
	}
	kek, _ := keys.NewKEK(make([]byte, 32))
	if _, err := kek.Open(f.SecretSealed, []byte("commonsid/account/totp-secret/did:key:other")); err == nil {
		t.Fatal("the sealed secret opens as another account's")
	}
	if _, err := kek.Open(f.SecretSealed, []byte("commonsid/account/totp-secret/"+a.DID)); err != nil {
		t.Fatalf("the sealed secret does not open for its account: %v", err)
	}
}

func TestRecoveryCodesAndRequirement(t *testing.T) {
	ctx := context.Background()
	m, a, now := newMFA(t)
	if _, err := m.NewRecoveryCodes(ctx, a.DID); !errors.Is(err, identity.ErrNoFactor) {
		t.Fatalf("recovery codes without a factor err = %v, want ErrNoFactor", err)
	}
	if err := m.SetRequired(ctx, a.DID, true); !errors.Is(err, identity.ErrRequireNoFactor) {
		t.Fatalf("require without a factor err = %v", err)
	}
	e, _ := m.BeginTOTP(ctx, a)
	if err := m.ConfirmTOTP(ctx, a.DID, code(t, e.Secret, *now)); err != nil {
		t.Fatal(err)
	}
	codes, err := m.NewRecoveryCodes(ctx, a.DID)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, c := range codes {
		if !regexp.MustCompile(`^[2-9A-HJKMNP-Z]{5}-[2-9A-HJKMNP-Z]{5}$`).MatchString(c) || seen[c] {
			t.Fatalf("recovery code %q malformed or repeated", c)
		}
		seen[c] = true
	}
	if len(codes) != identity.RecoveryCodeCount {
		t.Fatalf("%d codes", len(codes))
	}
	if err := m.UseRecoveryCode(ctx, a.DID, codes[0]); err != nil {
		t.Fatal(err)
	}
	if err := m.UseRecoveryCode(ctx, a.DID, codes[0]); !errors.Is(err, identity.ErrBadCode) {
		t.Fatalf("a used recovery code err = %v, want ErrBadCode", err)
	}
	// Lower case and without the dash is the same code.
	c1 := codes[1][:5] + codes[1][6:]
	if err := m.UseRecoveryCode(ctx, a.DID, " "+toLower(c1)+" "); err != nil {
		t.Fatalf("code typed in lower case: %v", err)
	}
	st, _ := m.Status(ctx, a.DID)
	if !st.TOTP || st.RecoveryLeft != 8 || st.RecoveryTotal != 10 {
		t.Fatalf("status %+v", st)
	}
	if err := m.SetRequired(ctx, a.DID, true); err != nil {
		t.Fatal(err)
	}
	if need, _, _ := m.NeedsSecondFactor(ctx, a.DID, false); !need {
		t.Fatal("a required second factor is not needed")
	}
	// New codes replace the old ones.
	again, _ := m.NewRecoveryCodes(ctx, a.DID)
	if err := m.UseRecoveryCode(ctx, a.DID, codes[2]); !errors.Is(err, identity.ErrBadCode) {
		t.Fatalf("an old code after regeneration err = %v", err)
	}
	if err := m.UseRecoveryCode(ctx, a.DID, again[0]); err != nil {
		t.Fatal(err)
	}
	// Removing the last factor drops the codes and the requirement.
	if err := m.RemoveTOTP(ctx, a.DID); err != nil {
		t.Fatal(err)
	}
	st, _ = m.Status(ctx, a.DID)
	if st.Any() || st.Required || st.RecoveryTotal != 0 {
		t.Fatalf("after removing the factor: %+v", st)
	}
	if need, _, _ := m.NeedsSecondFactor(ctx, a.DID, true); need {
		t.Fatal("a second factor is needed without any")
	}
}

func toLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
