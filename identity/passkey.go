package identity

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Passkey is a WebAuthn credential that signs an account in without a
// password. The provider keeps only public data: the credential id, the
// COSE public key and what the authenticator reported about itself.
type Passkey struct {
	ID                []byte // credential id, chosen by the authenticator
	AccountDID        string
	Name              string // chosen by the person
	PublicKey         []byte // COSE_Key
	AttestationType   string
	AttestationFormat string
	AAGUID            []byte // authenticator model, 16 bytes (zeros when not disclosed)
	SignCount         uint32
	Transports        []string // "internal", "hybrid", "usb"…
	Attachment        string   // "platform" or "cross-platform", when reported
	UserVerified      bool     // the authenticator verified the person at registration
	BackupEligible    bool     // the credential may be synced (never changes)
	BackupState       bool     // the credential is synced now
	CreatedAt         time.Time
	LastUsedAt        *time.Time
}

// PasskeyStore persists passkeys and each account's WebAuthn user handle.
// Implementations return store.ErrNotFound for a missing row (or one that
// belongs to another account), a *store.DuplicateError for a credential id
// already registered, and forget an account's passkeys and user handle when
// the account is deleted.
type PasskeyStore interface {
	// PutPasskeyUser stores handle as the account's user handle unless it
	// has one; it returns the handle stored afterwards.
	PutPasskeyUser(ctx context.Context, accountDID string, handle []byte) ([]byte, error)
	// PasskeyUser returns the DID of the account with this user handle.
	PasskeyUser(ctx context.Context, handle []byte) (string, error)
	CreatePasskey(ctx context.Context, p *Passkey) error
	// ListPasskeys returns an account's passkeys, oldest first.
	ListPasskeys(ctx context.Context, accountDID string) ([]*Passkey, error)
	RenamePasskey(ctx context.Context, accountDID string, id []byte, name string) error
	DeletePasskey(ctx context.Context, accountDID string, id []byte) error
	// RecordPasskeyUse stores the signature counter and backup state of a
	// successful sign-in. A non-zero counter must exceed the stored one,
	// else nothing changes and the error matches store.ErrConflict (a
	// cloned authenticator, or two sign-ins racing with the same counter).
	RecordPasskeyUse(ctx context.Context, id []byte, signCount uint32, backupState bool, at time.Time) error
}

// Ceremony kinds.
const (
	CeremonyRegister = "passkey.register"
	CeremonyLogin    = "passkey.login"
)

// Ceremony is a WebAuthn ceremony between its begin and finish steps: the
// challenge and options the server issued, kept server-side so that any
// replica can finish it. The browser holds a random id in a cookie; the
// store keeps only its hash.
type Ceremony struct {
	IDHash    string
	Kind      string
	Data      []byte // opaque to the store
	ExpiresAt time.Time
}

// CeremonyStore persists ceremonies in progress.
type CeremonyStore interface {
	// PutCeremony stores a new ceremony (and may drop expired ones).
	PutCeremony(ctx context.Context, c *Ceremony) error
	// TakeCeremony returns a live ceremony of this kind and deletes it, so
	// that each challenge is answered once. Missing, expired or of another
	// kind: store.ErrNotFound.
	TakeCeremony(ctx context.Context, idHash, kind string, now time.Time) (*Ceremony, error)
}

// CeremonyLifetime is how long a passkey ceremony may take.
const CeremonyLifetime = 5 * time.Minute

// UserHandleSize is the size of an account's WebAuthn user handle: random
// bytes that say nothing about the person (WebAuthn §14.6.1).
const UserHandleSize = 32

// NewUserHandle returns a fresh random user handle.
func NewUserHandle() ([]byte, error) {
	b := make([]byte, UserHandleSize)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("user handle: %w", err)
	}
	return b, nil
}

// PasskeyNameMax is the longest passkey name, in characters.
const PasskeyNameMax = 64

// ValidatePasskeyName checks a passkey's name and returns it trimmed.
func ValidatePasskeyName(n string) (string, error) {
	n = strings.TrimSpace(n)
	if n == "" {
		return "", &ValidationError{"name", "must not be empty"}
	}
	if !utf8.ValidString(n) || utf8.RuneCountInString(n) > PasskeyNameMax {
		return "", &ValidationError{"name", fmt.Sprintf("must be valid text of at most %d characters", PasskeyNameMax)}
	}
	for _, c := range n {
		if c < 0x20 || c == 0x7f {
			return "", &ValidationError{"name", "must not contain control characters"}
		}
	}
	return n, nil
}
