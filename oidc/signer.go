package oidc

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	josev3 "github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite/token/jwt"

	"github.com/onecommons/commonsid/keys"
)

// keyring is a cached snapshot of the cloud's signing keys, refreshed every
// refreshEvery and, at most once a second, when a token names an unknown key.
type keyring struct {
	keys         *keys.Manager
	refreshEvery time.Duration

	mu        sync.Mutex
	loadedAt  time.Time
	triedAt   time.Time
	active    map[string]*keys.Signer // by alg
	published map[string]josev3.JSONWebKey
	jwks      []josev3.JSONWebKey
	jwksJSON  []byte // {"keys": jwks}, served as is
}

func newKeyring(m *keys.Manager) *keyring {
	return &keyring{keys: m, refreshEvery: 10 * time.Second}
}

func (k *keyring) load(ctx context.Context, force bool) error {
	now := time.Now()
	if !force && now.Sub(k.loadedAt) < k.refreshEvery && k.active != nil {
		return nil
	}
	if force && now.Sub(k.triedAt) < time.Second && k.active != nil {
		return nil
	}
	k.triedAt = now
	list, err := k.keys.List(ctx)
	if err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	active := map[string]*keys.Signer{}
	published := map[string]josev3.JSONWebKey{}
	var jwks []josev3.JSONWebKey
	for _, sk := range list {
		if sk.Status == keys.StatusRetired {
			continue
		}
		var j josev3.JSONWebKey
		if err := j.UnmarshalJSON(sk.PublicJWK); err != nil {
			return fmt.Errorf("signing key %s: %w", sk.KID, err)
		}
		published[sk.KID] = j
		jwks = append(jwks, j)
		if sk.Status == keys.StatusActive {
			s, err := k.keys.Active(ctx, sk.Alg)
			if err != nil {
				return err
			}
			active[sk.Alg] = s
		}
	}
	doc, err := json.Marshal(map[string]any{"keys": jwks})
	if err != nil {
		return err
	}
	k.active, k.published, k.jwks, k.jwksJSON, k.loadedAt = active, published, jwks, doc, now
	return nil
}

// signerFor returns the active key of alg, creating one on first use of an
// algorithm (EdDSA and RS256 are made when a client first asks for them).
func (k *keyring) signerFor(ctx context.Context, alg string) (*keys.Signer, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.load(ctx, false); err != nil {
		return nil, err
	}
	if s, ok := k.active[alg]; ok {
		return s, nil
	}
	if _, err := k.keys.Ensure(ctx, alg); err != nil {
		return nil, err
	}
	k.loadedAt = time.Time{}
	if err := k.load(ctx, false); err != nil {
		return nil, err
	}
	if s, ok := k.active[alg]; ok {
		return s, nil
	}
	return nil, fmt.Errorf("no active %s key", alg)
}

func (k *keyring) publicKey(ctx context.Context, kid string) (josev3.JSONWebKey, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.load(ctx, false); err == nil {
		if j, ok := k.published[kid]; ok {
			return j, true
		}
	}
	if err := k.load(ctx, true); err == nil {
		j, ok := k.published[kid]
		return j, ok
	}
	return josev3.JSONWebKey{}, false
}

// names reports whether kid is one of the published keys, from the
// current snapshot (refreshed as usual, never forced).
func (k *keyring) names(ctx context.Context, kid string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.load(ctx, false); err != nil {
		return false
	}
	_, ok := k.published[kid]
	return ok
}

// JWKSDocument returns the JSON of the published public keys.
func (k *keyring) JWKSDocument(ctx context.Context) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.load(ctx, false); err != nil {
		return nil, err
	}
	return k.jwksJSON, nil
}

// algHeader carries the wanted algorithm from the session to the signer; it
// never reaches a token.
const algHeader = "x-commonsid-alg"

// personalHeader marks an access token issued to a person (not to a client
// for itself): such a token is presented back at once, to UserInfo, so the
// signer keeps it as verified from the start. Never part of the token.
const personalHeader = "x-commonsid-personal"

// signer is fosite's jwt.Signer over the cloud's keys: it signs with the
// active key of the algorithm the session asks for and verifies with any
// published key named by "kid".
type signer struct {
	ring   *keyring
	issuer string
	// verified remembers tokens whose signature checked out, keyed by the
	// SHA-256 of the whole token, so that a token presented again (each API
	// call of a resource server, each introspection) is not verified again.
	// Revocation is unaffected: the token is still looked up in the store.
	verified verifiedCache
}

// verifiedCache is a set of recently verified tokens. Entries live up to
// ten seconds (less when more than verifiedMax arrive in a period): long
// enough for a token used right after it is issued and for a resource
// server's burst of introspections, short enough that the memory follows
// the last seconds only.
type verifiedCache struct {
	once sync.Once
	c    *genCache[[32]byte, *jwt.Token]
}

const (
	verifiedPeriod = 5 * time.Second
	verifiedMax    = 4096 // per generation
)

func (c *verifiedCache) cache() *genCache[[32]byte, *jwt.Token] {
	c.once.Do(func() { c.c = newGenCache[[32]byte, *jwt.Token](verifiedPeriod, verifiedMax) })
	return c.c
}

func (c *verifiedCache) get(k [32]byte) (*jwt.Token, bool) { return c.cache().get(k, time.Now()) }

func (c *verifiedCache) put(k [32]byte, t *jwt.Token) { c.cache().put(k, t, time.Now()) }

var _ jwt.Signer = (*signer)(nil)

func (s *signer) Generate(ctx context.Context, claims jwt.MapClaims, header jwt.Mapper) (string, string, error) {
	h := map[string]any{}
	if header != nil {
		for k, v := range header.ToMap() {
			h[k] = v
		}
	}
	alg, _ := h[algHeader].(string)
	delete(h, algHeader)
	personal := h[personalHeader] == true
	delete(h, personalHeader)
	delete(h, "alg")
	if alg == "" {
		alg = keys.DefaultAlg
	}
	key, err := s.ring.signerFor(ctx, alg)
	if err != nil {
		return "", "", err
	}
	h["kid"] = key.KID
	if h["typ"] == "at+jwt" {
		// An access token is for the resources it was asked for, else for
		// the client itself (audience.go); never for the issuer, which
		// every resource server of the cloud would accept.
		if aud, ok := claims["aud"].([]string); !ok || len(aud) == 0 {
			if cid, _ := claims["client_id"].(string); cid != "" {
				claims["aud"] = []string{cid}
			}
		}
	}
	t := jwt.NewWithClaims(josev3.SignatureAlgorithm(alg), claims)
	t.Header = h
	raw, err := t.SignedString(signingKey(key.Key))
	if err != nil {
		return "", "", err
	}
	if personal && h["typ"] == "at+jwt" {
		// Presented back at once (UserInfo): known good from here.
		s.verified.put(sha256.Sum256([]byte(raw)), &jwt.Token{Header: t.Header, Claims: maps.Clone(claims), Method: t.Method})
	}
	return raw, raw[strings.LastIndexByte(raw, '.')+1:], nil
}

func signingKey(k crypto.Signer) any { return k }

var errUnknownKey = errors.New("token signed by an unknown key")

func (s *signer) Decode(ctx context.Context, token string) (*jwt.Token, error) {
	key := sha256.Sum256([]byte(token))
	if t, ok := s.verified.get(key); ok && s.stillPublished(ctx, t) {
		// The signature is known good; the claims (exp, nbf) are checked
		// anew, on a copy the caller may change.
		claims := jwt.MapClaims{}
		for k, v := range t.Claims {
			claims[k] = v
		}
		cp := &jwt.Token{Header: t.Header, Claims: claims, Method: t.Method}
		if err := claims.Valid(); err != nil {
			return cp, err
		}
		return cp, nil
	}
	t, err := s.decode(ctx, token)
	if err == nil && t.Valid() {
		s.verified.put(key, t)
	}
	return t, err
}

// ownToken reports, without verifying it, whether token names one of this
// cloud's keys: such a token is this cloud's to judge (and fails if its
// signature does not check out), never a peer's.
func (s *signer) ownToken(ctx context.Context, token string) bool {
	if _, ok := s.verified.get(sha256.Sum256([]byte(token))); ok {
		return true
	}
	head, _, ok := strings.Cut(token, ".")
	if !ok {
		return false
	}
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return false
	}
	var h struct {
		Kid string `json:"kid"`
	}
	if json.Unmarshal(raw, &h) != nil || h.Kid == "" {
		return false
	}
	return s.ring.names(ctx, h.Kid)
}

// stillPublished reports whether the key of a cached token is still
// published: a retired key's tokens stop verifying at once.
func (s *signer) stillPublished(ctx context.Context, t *jwt.Token) bool {
	kid, _ := t.Header["kid"].(string)
	_, ok := s.ring.publicKey(ctx, kid)
	return ok
}

func (s *signer) decode(ctx context.Context, token string) (*jwt.Token, error) {
	return jwt.ParseWithClaims(token, jwt.MapClaims{}, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		j, ok := s.ring.publicKey(ctx, kid)
		if !ok {
			return nil, errUnknownKey
		}
		if string(t.Method) != j.Algorithm {
			return nil, fmt.Errorf("token algorithm %q does not match key %s (%s)", t.Method, kid, j.Algorithm)
		}
		return j.Key, nil
	})
}

func (s *signer) Validate(ctx context.Context, token string) (string, error) {
	if _, err := s.Decode(ctx, token); err != nil {
		return "", err
	}
	return s.GetSignature(ctx, token)
}

func (s *signer) Hash(ctx context.Context, in []byte) ([]byte, error) {
	return (&jwt.DefaultSigner{}).Hash(ctx, in)
}

func (s *signer) GetSignature(_ context.Context, token string) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", errors.New("header, body and signature must all be set")
	}
	return parts[2], nil
}

func (s *signer) GetSigningMethodLength(context.Context) int { return jwt.SHA256HashSize }
