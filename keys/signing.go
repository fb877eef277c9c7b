package keys

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/onecommons/commonsid/store"
)

// Signing key states.
const (
	StatusActive   = "active"
	StatusInactive = "inactive"
	StatusRetired  = "retired"
)

// Supported signing algorithms.
const (
	ES256 = "ES256"
	EdDSA = "EdDSA"
	RS256 = "RS256"
)

// DefaultAlg is the algorithm of the key made on first start.
const DefaultAlg = ES256

// SigningKey is one cloud signing key as stored.
type SigningKey struct {
	KID           string
	Alg           string
	Status        string
	PrivateSealed []byte // PKCS#8, sealed with the KEK
	PublicJWK     []byte // JSON
	CreatedAt     time.Time
	RotatedAt     *time.Time
	RetiredAt     *time.Time
}

// Store persists signing keys.
type Store interface {
	ListSigningKeys(ctx context.Context) ([]*SigningKey, error)
	// AddSigningKey inserts k as the active key of its algorithm, marking the
	// previous active key of that algorithm inactive (rotatedAt = k.CreatedAt)
	// in the same transaction. With onlyIfNone set it inserts nothing and
	// returns store.ErrAlreadyExists when an active key of that algorithm
	// exists.
	AddSigningKey(ctx context.Context, k *SigningKey, onlyIfNone bool) error
	// RetireSigningKey marks an inactive key retired.
	RetireSigningKey(ctx context.Context, kid string, at time.Time) error
}

// Manager creates, rotates, retires and uses the cloud's signing keys.
type Manager struct {
	Store Store
	KEK   *KEK
	Now   func() time.Time
}

// ErrUnsupportedAlg reports an algorithm the cloud does not sign with.
var ErrUnsupportedAlg = errors.New("unsupported signing algorithm (use ES256, EdDSA or RS256)")

// ErrActiveKey reports an attempt to retire the key in use.
var ErrActiveKey = errors.New("the active key cannot be retired: rotate first")

func aadSigning(kid string) []byte { return []byte("commonsid/signing-key/" + kid) }

func generate(alg string) (crypto.Signer, error) {
	switch alg {
	case ES256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case EdDSA:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	case RS256:
		return rsa.GenerateKey(rand.Reader, 3072)
	}
	return nil, fmt.Errorf("%w: %q", ErrUnsupportedAlg, alg)
}

func (m *Manager) now() time.Time {
	if m.Now != nil {
		return m.Now().UTC()
	}
	return time.Now().UTC()
}

func (m *Manager) newKey(alg string) (*SigningKey, error) {
	priv, err := generate(alg)
	if err != nil {
		return nil, err
	}
	jwk := jose.JSONWebKey{Key: priv.Public(), Algorithm: alg, Use: "sig"}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("key thumbprint: %w", err)
	}
	jwk.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	pub, err := jwk.MarshalJSON()
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	sealed, err := m.KEK.Seal(der, aadSigning(jwk.KeyID))
	if err != nil {
		return nil, err
	}
	return &SigningKey{KID: jwk.KeyID, Alg: alg, Status: StatusActive, PrivateSealed: sealed, PublicJWK: pub, CreatedAt: m.now()}, nil
}

// Ensure creates an active key of alg when there is none. It is safe to call
// from several processes at once: exactly one key results.
func (m *Manager) Ensure(ctx context.Context, alg string) (created bool, err error) {
	ks, err := m.Store.ListSigningKeys(ctx)
	if err != nil {
		return false, err
	}
	for _, k := range ks {
		if k.Alg == alg && k.Status == StatusActive {
			return false, nil
		}
	}
	k, err := m.newKey(alg)
	if err != nil {
		return false, err
	}
	if err := m.Store.AddSigningKey(ctx, k, true); err != nil {
		if errors.Is(err, store.ErrAlreadyExists) {
			return false, nil
		}
		return false, fmt.Errorf("create %s signing key: %w", alg, err)
	}
	return true, nil
}

// Rotate makes a new active key of alg; the old one stays published.
func (m *Manager) Rotate(ctx context.Context, alg string) (*SigningKey, error) {
	k, err := m.newKey(alg)
	if err != nil {
		return nil, err
	}
	if err := m.Store.AddSigningKey(ctx, k, false); err != nil {
		return nil, fmt.Errorf("rotate %s signing key: %w", alg, err)
	}
	return k, nil
}

// Retire stops publishing an inactive key.
func (m *Manager) Retire(ctx context.Context, kid string) error {
	ks, err := m.Store.ListSigningKeys(ctx)
	if err != nil {
		return err
	}
	for _, k := range ks {
		if k.KID != kid {
			continue
		}
		switch k.Status {
		case StatusActive:
			return ErrActiveKey
		case StatusRetired:
			return fmt.Errorf("key %s is already retired", kid)
		}
		return m.Store.RetireSigningKey(ctx, kid, m.now())
	}
	return fmt.Errorf("signing key %q: %w", kid, store.ErrNotFound)
}

// List returns every key, newest first.
func (m *Manager) List(ctx context.Context) ([]*SigningKey, error) {
	return m.Store.ListSigningKeys(ctx)
}

// Published returns the public keys that verifiers should accept: the active
// and inactive ones.
func (m *Manager) Published(ctx context.Context) ([]jose.JSONWebKey, error) {
	ks, err := m.Store.ListSigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	var out []jose.JSONWebKey
	for _, k := range ks {
		if k.Status == StatusRetired {
			continue
		}
		var j jose.JSONWebKey
		if err := j.UnmarshalJSON(k.PublicJWK); err != nil {
			return nil, fmt.Errorf("signing key %s: %w", k.KID, err)
		}
		out = append(out, j)
	}
	return out, nil
}

// Signer is an active key ready to sign.
type Signer struct {
	KID string
	Alg string
	Key crypto.Signer
}

// Active returns the active key of alg.
func (m *Manager) Active(ctx context.Context, alg string) (*Signer, error) {
	ks, err := m.Store.ListSigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	for _, k := range ks {
		if k.Alg == alg && k.Status == StatusActive {
			return m.open(k)
		}
	}
	return nil, fmt.Errorf("no active %s signing key", alg)
}

func (m *Manager) open(k *SigningKey) (*Signer, error) {
	der, err := m.KEK.Open(k.PrivateSealed, aadSigning(k.KID))
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", k.KID, err)
	}
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", k.KID, err)
	}
	s, ok := priv.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("signing key %s is not a signer", k.KID)
	}
	return &Signer{KID: k.KID, Alg: k.Alg, Key: s}, nil
}
