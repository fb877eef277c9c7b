package oidc

import (
	"context"
	"crypto/sha256"
	"time"

	"github.com/ory/fosite/token/jwt"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/keys"
	"github.com/onecommons/commonsid/privacy"
)

// PersonalHeader marks an access token issued to a person.
const PersonalHeader = personalHeader

// TestSigner exposes the token signer to the external tests.
type TestSigner struct{ s *signer }

func NewTestSigner(km *keys.Manager, issuer string) TestSigner {
	return TestSigner{&signer{ring: newKeyring(km), issuer: issuer}}
}

func (t TestSigner) Generate(ctx context.Context, claims jwt.MapClaims, h jwt.Mapper) (string, string, error) {
	return t.s.Generate(ctx, claims, h)
}

func (t TestSigner) Decode(ctx context.Context, token string) (*jwt.Token, error) {
	return t.s.Decode(ctx, token)
}

// Own reports whether token names one of this cloud's keys.
func (t TestSigner) Own(ctx context.Context, token string) bool { return t.s.ownToken(ctx, token) }

// Cached reports whether token is in the verified-token cache.
func (t TestSigner) Cached(token string) bool {
	_, ok := t.s.verified.get(sha256.Sum256([]byte(token)))
	return ok
}

// Reload rereads the keys now, as the ring does every refreshEvery.
func (t TestSigner) Reload(ctx context.Context) error {
	t.s.ring.mu.Lock()
	defer t.s.ring.mu.Unlock()
	t.s.ring.loadedAt, t.s.ring.triedAt = time.Time{}, time.Time{}
	return t.s.ring.load(ctx, false)
}

// NewReleaseTestProvider is a provider with only what the release cache
// needs: st, and announcements on.
func NewReleaseTestProvider(st Store) *Provider {
	p := &Provider{Store: st, RevocationsAnnounced: true, fstore: &fositeStore{}}
	p.fstore.access.ttl, p.fstore.access.max = accessTTL, accessCacheMax
	p.release.ttl, p.release.max = releaseTTL, releaseCacheMax
	return p
}

// ReleaseContext reads through the provider's release cache.
func (p *Provider) ReleaseContext(ctx context.Context, did, clientID string) (*identity.Account, *privacy.Consent, *privacy.Settings, error) {
	return p.releaseContext(ctx, did, clientID)
}

// ConsentUsed notes a recorded consent use in the release cache.
func (p *Provider) ConsentUsed(did, clientID string, at time.Time) { p.consentUsed(did, clientID, at) }
