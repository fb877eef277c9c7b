package identity

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"time"
)

// Purposes of single-use account links (AccountToken.Purpose).
const (
	PurposeVerifyEmail   = "verify_email"
	PurposeResetPassword = "reset_password"
)

// How long the mailed links stay valid.
const (
	VerifyEmailTTL   = 24 * time.Hour
	ResetPasswordTTL = 30 * time.Minute
)

// tokenBytes is the size of the random part of a link.
const tokenBytes = 32

// AccountToken is a single-use link mailed to a person. Only the hash of
// the token is stored; the token itself is only in the link.
type AccountToken struct {
	Hash       string // HashToken of the token
	Purpose    string // PurposeVerifyEmail or PurposeResetPassword
	AccountDID string
	Email      string // the address to verify (PurposeVerifyEmail)
	CreatedAt  time.Time
	ExpiresAt  time.Time
	UsedAt     *time.Time
}

// TokenStore keeps single-use account links.
type TokenStore interface {
	// PutAccountToken stores a new link.
	PutAccountToken(ctx context.Context, t *AccountToken) error
	// UseAccountToken marks the unused, unexpired link of that hash and
	// purpose used and returns it, in one statement: of two concurrent
	// uses only one succeeds. Unknown, used or expired: store.ErrNotFound.
	UseAccountToken(ctx context.Context, hash, purpose string, now time.Time) (*AccountToken, error)
	// DropAccountTokens deletes the unused links of an account and
	// purpose (a newer link or a reset replaces them); it returns how many.
	DropAccountTokens(ctx context.Context, did, purpose string) (int64, error)
}

// NewAccountToken makes a random token (base64url, 43 characters) and its
// hash for storage.
func NewAccountToken() (token, hash string, err error) {
	b := make([]byte, tokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("account token: %w", err)
	}
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, HashToken(token), nil
}

// WellFormedToken tells whether s can be a token made by NewAccountToken,
// so that garbage is refused before the database is asked.
func WellFormedToken(s string) bool {
	if len(s) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil
}

// MarkEmailVerified sets email_verified on the account if its address is
// still email (a change since the link was sent keeps it unverified). It
// reports whether the address was verified.
func (s *Service) MarkEmailVerified(ctx context.Context, didID, email string) (bool, error) {
	ok := false
	err := s.Store.UpdateAccount(ctx, didID, func(a *Account) error {
		if a.Status != StatusActive || email == "" || a.Email != email {
			return nil
		}
		ok = true
		if !a.EmailVerified {
			a.EmailVerified = true
			a.UpdatedAt = s.Now().UTC()
		}
		return nil
	})
	return ok, err
}

// IssueAccountToken replaces the account's unused links of purpose with a
// new one valid for ttl, and returns the token for the link.
func IssueAccountToken(ctx context.Context, ts TokenStore, did, purpose, email string, now time.Time, ttl time.Duration) (string, error) {
	if _, err := ts.DropAccountTokens(ctx, did, purpose); err != nil {
		return "", err
	}
	token, hash, err := NewAccountToken()
	if err != nil {
		return "", err
	}
	now = now.UTC()
	err = ts.PutAccountToken(ctx, &AccountToken{Hash: hash, Purpose: purpose, AccountDID: did, Email: email,
		CreatedAt: now, ExpiresAt: now.Add(ttl)})
	return token, err
}
