package identity

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"
)

// Account states.
const (
	StatusActive   = "active"
	StatusDisabled = "disabled"
	StatusDeleted  = "deleted"
	// StatusMoved: the account moved to another cloud (HomeIssuer); only
	// its DID, handle and new home are kept here.
	StatusMoved = "moved"
)

// Account is a person, identified by DID.
type Account struct {
	DID           string
	Handle        string
	Email         string
	EmailVerified bool
	Name          string
	PasswordHash  string // argon2id PHC string; empty when no password is set
	Status        string
	HomeIssuer    string // issuer URL of the cloud that writes this account

	// Sealed with the key-encryption key; never stored in the clear.
	DIDKeySealed         []byte
	PairwiseSecretSealed []byte

	CreatedAt time.Time
	UpdatedAt time.Time
	DeletedAt *time.Time
}

// Store persists accounts. Implementations return store.ErrNotFound and a
// *store.DuplicateError (matching store.ErrAlreadyExists) for a taken handle.
type Store interface {
	CreateAccount(ctx context.Context, a *Account) error
	GetAccount(ctx context.Context, did string) (*Account, error)
	GetAccountByHandle(ctx context.Context, handle string) (*Account, error)
	// ListAccounts returns up to limit accounts ordered by handle, after the
	// given handle ("" for the first page).
	ListAccounts(ctx context.Context, afterHandle string, limit int) ([]*Account, error)
	// UpdateAccount loads the account, calls fn and stores the result, in
	// one transaction. An error from fn aborts the update and is returned.
	UpdateAccount(ctx context.Context, did string, fn func(*Account) error) error
}

// ValidationError reports bad input for one field.
type ValidationError struct {
	Field   string
	Message string
}

func (e *ValidationError) Error() string { return e.Field + ": " + e.Message }

// ErrHandleTaken reports a handle already used by another account (or kept
// as the tombstone of a deleted one).
var ErrHandleTaken = errors.New("handle already taken")

// Handle limits.
const (
	HandleMin      = 3
	HandleMax      = 32
	PasswordMin    = 8
	PasswordMax    = 1024
	NameMax        = 200
	EmailMax       = 254
	maxHandleInput = 256
)

// NormalizeHandle validates a handle and returns its canonical lower-case
// form. Handles are 3–32 characters of [a-z0-9._-], compared
// case-insensitively.
func NormalizeHandle(h string) (string, error) {
	if len(h) > maxHandleInput {
		return "", &ValidationError{"handle", fmt.Sprintf("must be %d to %d characters", HandleMin, HandleMax)}
	}
	h = strings.ToLower(strings.TrimSpace(h))
	if n := len(h); n < HandleMin || n > HandleMax {
		return "", &ValidationError{"handle", fmt.Sprintf("must be %d to %d characters, got %d", HandleMin, HandleMax, utf8.RuneCountInString(h))}
	}
	for _, c := range h {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '.' && c != '_' && c != '-' {
			return "", &ValidationError{"handle", fmt.Sprintf("may only contain a-z, 0-9, '.', '_' and '-' (found %q)", c)}
		}
	}
	return h, nil
}

// ValidateEmail checks a plain address such as alice@example.org.
func ValidateEmail(e string) (string, error) {
	e = strings.TrimSpace(e)
	if e == "" {
		return "", nil
	}
	if len(e) > EmailMax {
		return "", &ValidationError{"email", fmt.Sprintf("longer than %d characters", EmailMax)}
	}
	a, err := mail.ParseAddress(e)
	if err != nil || a.Address != e || !strings.Contains(e[strings.LastIndexByte(e, '@')+1:], ".") && !strings.HasSuffix(e, "@localhost") {
		return "", &ValidationError{"email", fmt.Sprintf("%q is not an email address", e)}
	}
	return e, nil
}

// ValidateName checks a display name.
func ValidateName(n string) (string, error) {
	n = strings.TrimSpace(n)
	if !utf8.ValidString(n) || utf8.RuneCountInString(n) > NameMax {
		return "", &ValidationError{"name", fmt.Sprintf("must be valid text of at most %d characters", NameMax)}
	}
	for _, c := range n {
		if c < 0x20 || c == 0x7f {
			return "", &ValidationError{"name", "must not contain control characters"}
		}
	}
	return n, nil
}

// ValidatePassword checks the length rules.
func ValidatePassword(p string) error {
	if n := utf8.RuneCountInString(p); n < PasswordMin {
		return &ValidationError{"password", fmt.Sprintf("must be at least %d characters", PasswordMin)}
	}
	if len(p) > PasswordMax {
		return &ValidationError{"password", fmt.Sprintf("must be at most %d bytes", PasswordMax)}
	}
	return nil
}
