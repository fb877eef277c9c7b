package identity

// Second factors: an authenticator app (TOTP) and one-time recovery codes.
//
// States of an account's authenticator app:
//
//	none ──BeginTOTP──► enrolling ──ConfirmTOTP(correct code)──► active
//	 ▲                     │ BeginTOTP again: a new secret        │
//	 └──── RemoveTOTP ◄────┴──────────────────────────────────────┘
//
// Rules:
//
//   - TOTP is RFC 6238 with the parameters every authenticator app knows:
//     HMAC-SHA-1, 6 digits, 30-second steps. A code of the current step or
//     of one step before or after is accepted (clock skew), and each step's
//     code is accepted once only: the store keeps the last accepted step and
//     refuses any step not after it, atomically, so two replicas cannot both
//     accept the same code.
//   - The secret is sealed with the key-encryption key, bound to the
//     account's DID and its purpose; it is never shown again after the
//     enrolment (the enrolment page shows it until confirmed).
//   - An enrolment signs nothing until a correct code confirms it.
//   - Recovery codes are RecoveryCodeCount random codes of
//     RecoveryCodeChars characters (about 50 bits each), shown once; only
//     their SHA-256 is kept. Each works once. Making new ones replaces all
//     the old ones.
//   - "Require a second factor" can be turned on only while a factor is
//     active (the authenticator app or a passkey); removing the last factor
//     turns it off and deletes the recovery codes.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"image/png"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/onecommons/commonsid/store"
)

// TOTP parameters (RFC 6238 with the defaults of authenticator apps).
const (
	TOTPPeriod = 30 * time.Second
	TOTPDigits = 6
	TOTPSkew   = 1 // steps accepted before and after the current one
)

// Recovery codes.
const (
	RecoveryCodeCount = 10
	// RecoveryCodeChars is the length of a code in the Crockford-like
	// alphabet below (5 bits each: 50 bits).
	RecoveryCodeChars = 10
)

// recoveryAlphabet has no 0/O, 1/I/L: easy to read back from paper.
const recoveryAlphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"

// Errors of second-factor checks.
var (
	ErrBadCode         = errors.New("the code is not correct")
	ErrCodeUsed        = errors.New("this code was already used; wait for the next one")
	ErrNoFactor        = errors.New("no second factor is set up")
	ErrFactorExists    = errors.New("an authenticator app is already set up; remove it first")
	ErrNoEnrolment     = errors.New("no authenticator app is being set up; start again")
	ErrRequireNoFactor = errors.New("set up a second factor before requiring one")
)

// TOTPFactor is an account's authenticator app as stored.
type TOTPFactor struct {
	AccountDID   string
	SecretSealed []byte
	CreatedAt    time.Time
	ConfirmedAt  *time.Time // nil while enrolling
	LastStep     int64      // the last accepted time step (0: none)
}

// MFAStore persists second factors.
type MFAStore interface {
	// PutTOTP stores a new enrolment, replacing an unconfirmed one; with a
	// confirmed factor it returns store.ErrAlreadyExists.
	PutTOTP(ctx context.Context, f *TOTPFactor) error
	// GetTOTP returns the account's factor (store.ErrNotFound: none).
	GetTOTP(ctx context.Context, did string) (*TOTPFactor, error)
	// UseTOTPStep records step as accepted when it is after the last
	// accepted one (and confirms an enrolment at at when confirm is set);
	// a step not after it returns store.ErrConflict, no factor
	// store.ErrNotFound.
	UseTOTPStep(ctx context.Context, did string, step int64, confirm bool, at time.Time) error
	// DeleteTOTP removes the factor (store.ErrNotFound: none).
	DeleteTOTP(ctx context.Context, did string) error
	// ReplaceRecoveryCodes deletes the account's codes and stores hashes.
	ReplaceRecoveryCodes(ctx context.Context, did string, hashes []string, at time.Time) error
	// UseRecoveryCode marks an unused code spent; unknown or used:
	// store.ErrNotFound.
	UseRecoveryCode(ctx context.Context, did, hash string, at time.Time) error
	// CountRecoveryCodes returns the unused and all codes of the account.
	CountRecoveryCodes(ctx context.Context, did string) (unused, total int, err error)
	// SetMFARequired records the person's choice.
	SetMFARequired(ctx context.Context, did string, required bool, at time.Time) error
	// MFARequired reports the choice (false when never made).
	MFARequired(ctx context.Context, did string) (bool, error)
}

// MFA manages an account's second factors.
type MFA struct {
	Store  MFAStore
	Sealer Sealer
	// Issuer names this cloud in authenticator apps.
	Issuer string
	Now    func() time.Time
	// HasPasskey reports whether the account has a passkey, which is a
	// second factor too; nil: passkeys do not count.
	HasPasskey func(ctx context.Context, did string) (bool, error)
}

func aadTOTP(did string) []byte { return []byte("commonsid/account/totp-secret/" + did) }

var totpOpts = totp.ValidateOpts{Period: uint(TOTPPeriod / time.Second), Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// TOTPEnrolment is what the person needs to add the app: the key to type
// and the QR code of its otpauth:// URL.
type TOTPEnrolment struct {
	Secret string // base32, as authenticator apps take it
	URL    string // otpauth://totp/…
	QR     string // data:image/png;base64,… of URL
}

// MFAStatus is what the dashboard shows.
type MFAStatus struct {
	TOTP          bool // an active authenticator app
	Enrolling     bool // an enrolment waits for its first code
	Passkey       bool
	RecoveryLeft  int
	RecoveryTotal int
	Required      bool
}

// Any reports whether a second factor is active.
func (s *MFAStatus) Any() bool { return s.TOTP || s.Passkey }

func (m *MFA) now() time.Time {
	if m.Now == nil {
		return time.Now().UTC()
	}
	return m.Now().UTC()
}

// Status returns the account's second factors.
func (m *MFA) Status(ctx context.Context, did string) (*MFAStatus, error) {
	st := &MFAStatus{}
	f, err := m.Store.GetTOTP(ctx, did)
	switch {
	case err == nil:
		st.TOTP, st.Enrolling = f.ConfirmedAt != nil, f.ConfirmedAt == nil
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	if m.HasPasskey != nil {
		if st.Passkey, err = m.HasPasskey(ctx, did); err != nil {
			return nil, err
		}
	}
	if st.RecoveryLeft, st.RecoveryTotal, err = m.Store.CountRecoveryCodes(ctx, did); err != nil {
		return nil, err
	}
	if st.Required, err = m.Store.MFARequired(ctx, did); err != nil {
		return nil, err
	}
	return st, nil
}

// BeginTOTP starts (or restarts) an enrolment with a fresh secret.
func (m *MFA) BeginTOTP(ctx context.Context, a *Account) (*TOTPEnrolment, error) {
	if f, err := m.Store.GetTOTP(ctx, a.DID); err == nil && f.ConfirmedAt != nil {
		return nil, ErrFactorExists
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: m.label(), AccountName: a.Handle, Period: totpOpts.Period,
		SecretSize: 20, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return nil, fmt.Errorf("new authenticator secret: %w", err)
	}
	sealed, err := m.Sealer.Seal([]byte(key.Secret()), aadTOTP(a.DID))
	if err != nil {
		return nil, fmt.Errorf("seal authenticator secret: %w", err)
	}
	err = m.Store.PutTOTP(ctx, &TOTPFactor{AccountDID: a.DID, SecretSealed: sealed, CreatedAt: m.now()})
	if errors.Is(err, store.ErrAlreadyExists) {
		return nil, ErrFactorExists
	}
	if err != nil {
		return nil, err
	}
	return enrolment(key)
}

// PendingTOTP returns the enrolment in progress, to show it again.
func (m *MFA) PendingTOTP(ctx context.Context, a *Account) (*TOTPEnrolment, error) {
	f, err := m.Store.GetTOTP(ctx, a.DID)
	if errors.Is(err, store.ErrNotFound) || err == nil && f.ConfirmedAt != nil {
		return nil, ErrNoEnrolment
	}
	if err != nil {
		return nil, err
	}
	secret, err := m.open(f)
	if err != nil {
		return nil, err
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: m.label(), AccountName: a.Handle, Period: totpOpts.Period,
		Secret: mustB32(secret), Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return nil, err
	}
	return enrolment(key)
}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

func mustB32(s string) []byte {
	b, _ := b32.DecodeString(s)
	return b
}

func enrolment(key *otp.Key) (*TOTPEnrolment, error) {
	img, err := key.Image(240, 240)
	if err != nil {
		return nil, fmt.Errorf("QR code: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("QR code: %w", err)
	}
	return &TOTPEnrolment{Secret: key.Secret(), URL: key.URL(),
		QR: "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())}, nil
}

// label is the issuer shown in authenticator apps: the cloud's host.
func (m *MFA) label() string {
	l := strings.TrimPrefix(strings.TrimPrefix(m.Issuer, "https://"), "http://")
	if l == "" {
		return "Commons ID"
	}
	return "Commons ID (" + l + ")"
}

func (m *MFA) open(f *TOTPFactor) (string, error) {
	b, err := m.Sealer.Open(f.SecretSealed, aadTOTP(f.AccountDID))
	if err != nil {
		return "", fmt.Errorf("open authenticator secret: %w", err)
	}
	return string(b), nil
}

// ConfirmTOTP activates the enrolment when code is correct.
func (m *MFA) ConfirmTOTP(ctx context.Context, did, code string) error {
	f, err := m.Store.GetTOTP(ctx, did)
	if errors.Is(err, store.ErrNotFound) || err == nil && f.ConfirmedAt != nil {
		return ErrNoEnrolment
	}
	if err != nil {
		return err
	}
	return m.check(ctx, f, code, true)
}

// CheckTOTP checks a code of the account's active authenticator app:
// ErrBadCode, ErrCodeUsed (a code of a step already used) or ErrNoFactor.
func (m *MFA) CheckTOTP(ctx context.Context, did, code string) error {
	f, err := m.Store.GetTOTP(ctx, did)
	if errors.Is(err, store.ErrNotFound) || err == nil && f.ConfirmedAt == nil {
		return ErrNoFactor
	}
	if err != nil {
		return err
	}
	return m.check(ctx, f, code, false)
}

// normalizeCode drops the spaces and dashes people type in codes.
func normalizeCode(code string) string {
	return strings.ToUpper(strings.NewReplacer(" ", "", "-", "", "\t", "").Replace(strings.TrimSpace(code)))
}

func (m *MFA) check(ctx context.Context, f *TOTPFactor, code string, confirm bool) error {
	code = normalizeCode(code)
	if len(code) != TOTPDigits {
		return ErrBadCode
	}
	secret, err := m.open(f)
	if err != nil {
		return err
	}
	step, ok, err := MatchTOTP(secret, code, m.now())
	if err != nil {
		return err
	}
	if !ok {
		return ErrBadCode
	}
	if step <= f.LastStep {
		return ErrCodeUsed
	}
	err = m.Store.UseTOTPStep(ctx, f.AccountDID, step, confirm, m.now())
	if errors.Is(err, store.ErrConflict) {
		return ErrCodeUsed
	}
	if errors.Is(err, store.ErrNotFound) {
		return ErrNoFactor
	}
	return err
}

// MatchTOTP returns the time step, within TOTPSkew of now, whose code is
// code; ok is false when none is. Every candidate is compared in constant
// time.
func MatchTOTP(secret, code string, now time.Time) (step int64, ok bool, err error) {
	cur := now.Unix() / int64(TOTPPeriod/time.Second)
	for d := int64(-TOTPSkew); d <= TOTPSkew; d++ {
		s := cur + d
		want, err := totp.GenerateCodeCustom(secret, time.Unix(s*int64(TOTPPeriod/time.Second), 0), totpOpts)
		if err != nil {
			return 0, false, fmt.Errorf("authenticator code: %w", err)
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && !ok {
			step, ok = s, true
		}
	}
	return step, ok, nil
}

// RemoveTOTP removes the authenticator app. When no factor is left, the
// recovery codes go and a second factor is no longer required.
func (m *MFA) RemoveTOTP(ctx context.Context, did string) error {
	if err := m.Store.DeleteTOTP(ctx, did); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return ErrNoFactor
		}
		return err
	}
	return m.AfterFactorRemoved(ctx, did)
}

// AfterFactorRemoved clears the recovery codes and the requirement once the
// account has no active factor left (also after a passkey is removed).
func (m *MFA) AfterFactorRemoved(ctx context.Context, did string) error {
	st, err := m.Status(ctx, did)
	if err != nil {
		return err
	}
	if st.Any() {
		return nil
	}
	if err := m.Store.ReplaceRecoveryCodes(ctx, did, nil, m.now()); err != nil {
		return err
	}
	if st.Required {
		return m.Store.SetMFARequired(ctx, did, false, m.now())
	}
	return nil
}

// NewRecoveryCodes replaces the account's recovery codes with
// RecoveryCodeCount new ones, returned once (grouped as XXXXX-XXXXX).
// It refuses without an active factor.
func (m *MFA) NewRecoveryCodes(ctx context.Context, did string) ([]string, error) {
	st, err := m.Status(ctx, did)
	if err != nil {
		return nil, err
	}
	if !st.Any() {
		return nil, ErrNoFactor
	}
	codes := make([]string, RecoveryCodeCount)
	hashes := make([]string, RecoveryCodeCount)
	for i := range codes {
		c, err := randomCode()
		if err != nil {
			return nil, err
		}
		codes[i] = c[:RecoveryCodeChars/2] + "-" + c[RecoveryCodeChars/2:]
		hashes[i] = hashRecoveryCode(c)
	}
	if err := m.Store.ReplaceRecoveryCodes(ctx, did, hashes, m.now()); err != nil {
		return nil, err
	}
	return codes, nil
}

func randomCode() (string, error) {
	b := make([]byte, RecoveryCodeChars)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	// 256 is not a multiple of the alphabet's 31 letters: redraw bytes
	// past the last whole multiple, so every letter is equally likely.
	out := make([]byte, 0, RecoveryCodeChars)
	limit := byte(256 - 256%len(recoveryAlphabet))
	for len(out) < RecoveryCodeChars {
		for _, x := range b {
			if x < limit && len(out) < RecoveryCodeChars {
				out = append(out, recoveryAlphabet[int(x)%len(recoveryAlphabet)])
			}
		}
		if _, err := rand.Read(b); err != nil {
			return "", err
		}
	}
	return string(out), nil
}

func hashRecoveryCode(normalized string) string {
	sum := sha256.Sum256([]byte("commonsid/recovery-code/" + normalized))
	return hex.EncodeToString(sum[:])
}

// UseRecoveryCode spends one of the account's recovery codes: ErrBadCode
// when it is not one, or was used.
func (m *MFA) UseRecoveryCode(ctx context.Context, did, code string) error {
	c := normalizeCode(code)
	if len(c) != RecoveryCodeChars {
		return ErrBadCode
	}
	err := m.Store.UseRecoveryCode(ctx, did, hashRecoveryCode(c), m.now())
	if errors.Is(err, store.ErrNotFound) {
		return ErrBadCode
	}
	return err
}

// SetRequired records whether the account requires a second factor at
// every sign-in; turning it on needs an active factor.
func (m *MFA) SetRequired(ctx context.Context, did string, required bool) error {
	if required {
		st, err := m.Status(ctx, did)
		if err != nil {
			return err
		}
		if !st.Any() {
			return ErrRequireNoFactor
		}
	}
	return m.Store.SetMFARequired(ctx, did, required, m.now())
}

// NeedsSecondFactor reports whether a sign-in to the account must pass a
// second factor: the person requires one, or the sign-in asks for one
// (asked) and the account has one. The second result reports which
// factors are active.
func (m *MFA) NeedsSecondFactor(ctx context.Context, did string, asked bool) (bool, *MFAStatus, error) {
	st, err := m.Status(ctx, did)
	if err != nil {
		return false, nil, err
	}
	return st.Any() && (st.Required || asked), st, nil
}
