package identity

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/onecommons/commonsid/did"
	"github.com/onecommons/commonsid/store"
)

// Sealer encrypts secrets at rest. aad binds a ciphertext to its owner and
// purpose so that sealed values cannot be swapped between rows.
type Sealer interface {
	Seal(plaintext, aad []byte) ([]byte, error)
	Open(sealed, aad []byte) ([]byte, error)
}

// PairwiseSecretSize is the size of each account's pairwise secret.
const PairwiseSecretSize = 32

// Service is the account service.
type Service struct {
	Store  Store
	Sealer Sealer
	Issuer string // this cloud's issuer; new accounts are homed here
	Argon2 Argon2Params
	Now    func() time.Time
	// Log receives warnings about stored password hashes; nil uses
	// slog.Default.
	Log *slog.Logger
	// DIDMethod is the DID method of new accounts: "" or DIDMethodKey
	// (did:key), or DIDMethodWebVH, whose logs DIDLogs keeps (webvh.go).
	DIDMethod string
	DIDLogs   DIDLogStore

	// hashing bounds concurrent argon2id computations (each takes
	// Argon2.Memory KiB), so a burst of sign-ups or logins cannot exhaust
	// memory; excess requests wait their turn.
	hashing    chan struct{}
	hashMemory memoryReturn
}

// memoryReturn gives the memory of finished password hashes back to the
// system. Each argon2id hash allocates Argon2.Memory afresh; the runtime
// would keep those pages for minutes after a burst of sign-ins, so the
// resident size would follow the busiest moment rather than the work at
// hand. Once no hash is running, a collection returns them, at most once a
// second (with a 25 MiB heap it takes 10–20 ms, less than one hash).
type memoryReturn struct {
	mu      sync.Mutex
	last    time.Time
	pending bool
}

func (m *memoryReturn) release() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pending {
		return
	}
	m.pending = true
	time.AfterFunc(max(0, time.Until(m.last.Add(time.Second))), func() {
		debug.FreeOSMemory()
		m.mu.Lock()
		m.last, m.pending = time.Now(), false
		m.mu.Unlock()
	})
}

// NewService returns a Service with default password parameters and clock.
func NewService(st Store, sealer Sealer, issuer string) *Service {
	return &Service{Store: st, Sealer: sealer, Issuer: issuer, Argon2: DefaultArgon2, Now: time.Now,
		hashing: make(chan struct{}, runtime.GOMAXPROCS(0))}
}

// hashSlot waits for a free password-hashing slot.
func (s *Service) hashSlot(ctx context.Context) (release func(), err error) {
	if s.hashing == nil {
		return func() {}, nil
	}
	select {
	case s.hashing <- struct{}{}:
		return func() {
			<-s.hashing
			if len(s.hashing) == 0 {
				s.hashMemory.release()
			}
		}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// CreateParams is the input of Create.
type CreateParams struct {
	Handle   string
	Email    string
	Name     string
	Password string
	// RecoveryKey, with DIDMethodWebVH, is a second update key of the
	// account's log: the key of the person's recovery kit (recovery.go).
	RecoveryKey ed25519.PublicKey
	// RecoverySeed, with RecoveryKey, is the kit's BIP-39 seed: the
	// account's pairwise secret is escrowed under it in the log's row
	// (DIDLog.Escrow, recovery.go). It is not kept.
	RecoverySeed []byte
}

// Validate normalises and checks every field, reporting all problems at once.
func (p *CreateParams) Validate() error {
	var errs []error
	var err error
	if p.Handle, err = NormalizeHandle(p.Handle); err != nil {
		errs = append(errs, err)
	}
	if p.Email, err = ValidateEmail(p.Email); err != nil {
		errs = append(errs, err)
	}
	if p.Name, err = ValidateName(p.Name); err != nil {
		errs = append(errs, err)
	}
	if err = ValidatePassword(p.Password); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func aadDIDKey(d string) []byte   { return []byte("commonsid/account/did-key/" + d) }
func aadPairwise(d string) []byte { return []byte("commonsid/account/pairwise-secret/" + d) }

// Create validates p, mints the account's DID (its did:key, or a did:webvh
// DID with DIDMethodWebVH: webvh.go) and pairwise secret, hashes
// the password and stores the account. A taken handle returns ErrHandleTaken.
func (s *Service) Create(ctx context.Context, p CreateParams) (*Account, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	release, err := s.hashSlot(ctx)
	if err != nil {
		return nil, err
	}
	hash, err := HashPassword(p.Password, s.Argon2)
	release()
	if err != nil {
		return nil, err
	}
	return s.create(ctx, p, hash)
}

func (s *Service) create(ctx context.Context, p CreateParams, passwordHash string) (*Account, error) {
	key, err := did.NewKey()
	if err != nil {
		return nil, err
	}
	var didLog *DIDLog
	if s.DIDMethod == DIDMethodWebVH {
		if key, didLog, err = s.newWebVH(key, p.RecoveryKey); err != nil {
			return nil, err
		}
	}
	secret := make([]byte, PairwiseSecretSize)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("pairwise secret: %w", err)
	}
	if didLog != nil && p.RecoveryKey != nil && p.RecoverySeed != nil {
		if didLog.Escrow, err = SealEscrow(p.RecoverySeed, didLog.SCID, secret); err != nil {
			return nil, err
		}
	}
	sealedKey, sealedSecret, err := s.SealSecrets(key, secret)
	if err != nil {
		return nil, err
	}
	now := s.Now().UTC()
	a := &Account{
		DID: key.DID, Handle: p.Handle, Email: p.Email, Name: p.Name,
		PasswordHash: passwordHash, Status: StatusActive, HomeIssuer: s.Issuer,
		DIDKeySealed: sealedKey, PairwiseSecretSealed: sealedSecret,
		CreatedAt: now, UpdatedAt: now,
	}
	if didLog != nil {
		err = s.DIDLogs.CreateAccountWithDIDLog(ctx, a, didLog)
	} else {
		err = s.Store.CreateAccount(ctx, a)
	}
	if err != nil {
		var dup *store.DuplicateError
		if errors.As(err, &dup) && dup.Field == "handle" {
			return nil, fmt.Errorf("%w: %s", ErrHandleTaken, p.Handle)
		}
		return nil, fmt.Errorf("create account %s: %w", p.Handle, err)
	}
	return a, nil
}

// SealSecrets seals an account's custodial key and pairwise secret for
// storage, each bound to the account's DID.
func (s *Service) SealSecrets(key *did.Key, secret []byte) (sealedKey, sealedSecret []byte, err error) {
	if sealedKey, err = s.Sealer.Seal(key.Private.Seed(), aadDIDKey(key.DID)); err != nil {
		return nil, nil, fmt.Errorf("seal DID key: %w", err)
	}
	if sealedSecret, err = s.Sealer.Seal(secret, aadPairwise(key.DID)); err != nil {
		return nil, nil, fmt.Errorf("seal pairwise secret: %w", err)
	}
	return sealedKey, sealedSecret, nil
}

// SealPairwiseSecret seals a pairwise secret for the account didID (a
// replica of an account homed elsewhere holds the secret but no DID key).
func (s *Service) SealPairwiseSecret(didID string, secret []byte) ([]byte, error) {
	sealed, err := s.Sealer.Seal(secret, aadPairwise(didID))
	if err != nil {
		return nil, fmt.Errorf("seal pairwise secret: %w", err)
	}
	return sealed, nil
}

// Lookup finds an account by DID (a string starting with "did:") or handle.
func (s *Service) Lookup(ctx context.Context, ref string) (*Account, error) {
	ref = strings.TrimSpace(ref)
	if strings.HasPrefix(ref, "did:") {
		// Any DID the account has had (a did:webvh DID names its home's
		// host: a move gives it a new one) leads to the account.
		if s.DIDLogs != nil {
			if id, err := s.DIDLogs.AccountForDID(ctx, ref); err == nil {
				ref = id
			} else if !errors.Is(err, store.ErrNotFound) {
				return nil, err
			}
		}
		return s.Store.GetAccount(ctx, ref)
	}
	if local, home, ok := strings.Cut(ref, "@"); ok && home != "" && !strings.Contains(home, "@") {
		// handle@host: an account replicated from the cloud at host.
		h, err := NormalizeHandle(local)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a DID nor a valid handle: %w", ref, store.ErrNotFound)
		}
		return s.Store.GetAccountByHandle(ctx, h+"@"+strings.ToLower(home))
	}
	h, err := NormalizeHandle(ref)
	if err != nil {
		return nil, fmt.Errorf("%q is neither a DID nor a valid handle: %w", ref, store.ErrNotFound)
	}
	return s.Store.GetAccountByHandle(ctx, h)
}

// SigningKey returns the account's custodial key. For an account with a
// did:webvh log (a did:webvh account, or a did:key account upgraded) the
// key is named under the log's current DID, whose document lists it (the
// custodial key of the last entry: a move or a rotation changes both);
// for a plain did:key account it is the did:key itself.
func (s *Service) SigningKey(ctx context.Context, a *Account) (*did.Key, error) {
	if len(a.DIDKeySealed) == 0 {
		return nil, fmt.Errorf("account %s holds no custodial key", a.Handle)
	}
	seed, err := s.Sealer.Open(a.DIDKeySealed, aadDIDKey(a.DID))
	if err != nil {
		return nil, fmt.Errorf("open DID key of %s: %w", a.Handle, err)
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("DID key of %s has %d bytes", a.Handle, len(seed))
	}
	priv := ed25519.NewKeyFromSeed(seed)
	if s.DIDLogs != nil {
		l, err := s.DIDLogs.GetDIDLog(ctx, a.DID)
		switch {
		case err == nil && l.CurrentDID != "":
			return webvhKey(l.CurrentDID, priv), nil
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return nil, fmt.Errorf("DID log of %s: %w", a.Handle, err)
		}
	}
	if IsWebVH(a.DID) {
		// The seed is sealed to this DID (aad): it is the account's key.
		return webvhKey(a.DID, priv), nil
	}
	k, err := did.KeyFromPrivate(priv)
	if err != nil {
		return nil, err
	}
	if k.DID != a.DID {
		return nil, fmt.Errorf("custodial key of %s does not match its DID", a.Handle)
	}
	return k, nil
}

// PairwiseSecret returns the account's pairwise secret.
func (s *Service) PairwiseSecret(a *Account) ([]byte, error) {
	b, err := s.Sealer.Open(a.PairwiseSecretSealed, aadPairwise(a.DID))
	if err != nil {
		return nil, fmt.Errorf("open pairwise secret of %s: %w", a.Handle, err)
	}
	return b, nil
}

// ErrBadTransition reports a status change that is not allowed.
var ErrBadTransition = errors.New("status change not allowed")

// SetStatus disables or re-enables an account.
func (s *Service) SetStatus(ctx context.Context, didID, status string) error {
	if status != StatusActive && status != StatusDisabled {
		return fmt.Errorf("%w: to %q", ErrBadTransition, status)
	}
	return s.Store.UpdateAccount(ctx, didID, func(a *Account) error {
		if a.Status == StatusDeleted {
			return fmt.Errorf("%w: account %s is deleted", ErrBadTransition, a.Handle)
		}
		a.Status = status
		a.UpdatedAt = s.Now().UTC()
		return nil
	})
}

// Delete removes the account's personal data and secrets and keeps its DID
// and handle as a tombstone.
//
// This cloud also forgets the account's did:webvh log, its other DIDs and
// the head it witnessed: the DID no longer resolves here. (Peers keep the
// copies they hold; a log names keys and a home, no personal data.)
func (s *Service) Delete(ctx context.Context, didID string) error {
	err := s.Store.UpdateAccount(ctx, didID, func(a *Account) error {
		if a.Status == StatusDeleted {
			return fmt.Errorf("%w: account %s is already deleted", ErrBadTransition, a.Handle)
		}
		now := s.Now().UTC()
		a.Status = StatusDeleted
		a.Email, a.Name, a.PasswordHash, a.EmailVerified = "", "", "", false
		a.DIDKeySealed, a.PairwiseSecretSealed = nil, nil
		a.UpdatedAt, a.DeletedAt = now, &now
		return nil
	})
	if err != nil || s.DIDLogs == nil {
		return err
	}
	return s.DIDLogs.ForgetDIDLog(ctx, didID)
}

// Authenticate checks a handle and password. It returns ErrBadCredentials
// for an unknown handle, a wrong password or an account that cannot log in,
// spending the same hashing work in each case. When the store cannot answer
// it returns an error wrapping ErrUnavailable instead: that is no verdict on
// the password, and callers must not count it as a failed attempt.
//
// A stored hash outside the accepted bounds (an imported one) is refused
// without hashing, as a wrong password. A hash made with other parameters
// than the service's is replaced after a successful check.
func (s *Service) Authenticate(ctx context.Context, handle, password string) (*Account, error) {
	// The account is read before a hashing slot is taken: a slow store must
	// not hold a slot that a sign-in with a ready answer could use.
	a, err := s.Lookup(ctx, handle)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	release, serr := s.hashSlot(ctx)
	if serr != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, serr)
	}
	defer release()
	if err != nil {
		CheckPassword(password, dummyHash)
		return nil, ErrBadCredentials
	}
	hash := a.PasswordHash
	if hash == "" {
		hash = dummyHash
	}
	ok, err := CheckPassword(password, hash)
	if errors.Is(err, ErrHashOutOfBounds) || errors.Is(err, ErrMalformedHash) {
		s.log().WarnContext(ctx, "sign-in refused: the stored password hash is not one this cloud checks", "reason", err)
		return nil, ErrBadCredentials
	}
	if err != nil || !ok || a.PasswordHash == "" || a.Status != StatusActive {
		return nil, ErrBadCredentials
	}
	if NeedsRehash(a.PasswordHash, s.Argon2) {
		s.rehash(ctx, a, password)
	}
	return a, nil
}

// rehash stores a new hash of password with the service's parameters, in
// place of the one that just verified (unless it changed meanwhile). A
// failure leaves the old hash, which still verifies.
func (s *Service) rehash(ctx context.Context, a *Account, password string) {
	fresh, err := HashPassword(password, s.Argon2)
	if err != nil {
		s.log().WarnContext(ctx, "password rehash", "err", err)
		return
	}
	old := a.PasswordHash
	err = s.Store.UpdateAccount(ctx, a.DID, func(x *Account) error {
		if x.PasswordHash != old {
			return errRehashRaced
		}
		x.PasswordHash = fresh
		return nil
	})
	switch {
	case err == nil:
		a.PasswordHash = fresh
	case errors.Is(err, errRehashRaced):
	default:
		s.log().WarnContext(ctx, "password rehash not stored; the old hash stays", "err", RootCause(err))
	}
}

var errRehashRaced = errors.New("password changed meanwhile")

// RootCause returns the innermost error of a chain of wrappers. Store errors
// name the account they were about ("account did:key:…: database is
// locked"); logs that must not carry personal data record the cause alone.
func RootCause(err error) error {
	for {
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			if u.Unwrap() == nil {
				return err
			}
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			// "%w: %w" wraps a kind and its cause: follow the cause.
			errs := u.Unwrap()
			if len(errs) == 0 {
				return err
			}
			err = errs[len(errs)-1]
		default:
			return err
		}
	}
}

func (s *Service) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// ErrBadCredentials is the one answer to every failed password login.
var ErrBadCredentials = errors.New("wrong username or password")

// ErrUnavailable wraps a failure to read or write accounts: the store (or
// the request) gave out before a verdict on the credentials was reached.
var ErrUnavailable = errors.New("account storage unavailable")

// UpdateProfile changes the name and email (nil leaves a field as it is).
// A changed email is no longer verified.
func (s *Service) UpdateProfile(ctx context.Context, didID string, name, email *string) error {
	var errs []error
	if name != nil {
		n, err := ValidateName(*name)
		if err != nil {
			errs = append(errs, err)
		}
		name = &n
	}
	if email != nil {
		e, err := ValidateEmail(*email)
		if err != nil {
			errs = append(errs, err)
		}
		email = &e
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return s.Store.UpdateAccount(ctx, didID, func(a *Account) error {
		if a.Status != StatusActive {
			return fmt.Errorf("%w: account %s is %s", ErrBadTransition, a.Handle, a.Status)
		}
		if name != nil {
			a.Name = *name
		}
		if email != nil && *email != a.Email {
			a.Email, a.EmailVerified = *email, false
		}
		a.UpdatedAt = s.Now().UTC()
		return nil
	})
}

// SetPassword replaces the password.
func (s *Service) SetPassword(ctx context.Context, didID, password string) error {
	if err := ValidatePassword(password); err != nil {
		return err
	}
	release, err := s.hashSlot(ctx)
	if err != nil {
		return err
	}
	hash, err := HashPassword(password, s.Argon2)
	release()
	if err != nil {
		return err
	}
	return s.Store.UpdateAccount(ctx, didID, func(a *Account) error {
		if a.Status != StatusActive {
			return fmt.Errorf("%w: account %s is %s", ErrBadTransition, a.Handle, a.Status)
		}
		a.PasswordHash, a.UpdatedAt = hash, s.Now().UTC()
		return nil
	})
}

// MarkMoved records that the account now lives on another cloud: personal
// data and secrets are removed, the DID and handle stay, and HomeIssuer
// points to the new home.
func (s *Service) MarkMoved(ctx context.Context, didID, newHome string) error {
	return s.Store.UpdateAccount(ctx, didID, func(a *Account) error {
		if a.Status == StatusDeleted {
			return fmt.Errorf("%w: account %s is deleted", ErrBadTransition, a.Handle)
		}
		now := s.Now().UTC()
		a.Status, a.HomeIssuer = StatusMoved, newHome
		a.Email, a.Name, a.PasswordHash, a.EmailVerified = "", "", "", false
		a.DIDKeySealed, a.PairwiseSecretSealed = nil, nil
		a.UpdatedAt = now
		return nil
	})
}
