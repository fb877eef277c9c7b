package oidc

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/privacy"
)

// releaseCache keeps what ReleaseContext read (account, consent, privacy
// settings) for a second, per account and service: one sign-in reads them
// at the authorization request, for the ID token and for UserInfo, within
// a few milliseconds. It is used only where every change to them reaches
// this process at once (Provider.RevocationsAnnounced: the store announces
// each committed change of an account, consent or settings, from any
// process); it is emptied on every such announcement and on every token
// revocation, and the second bounds what a missed one could leave.
type releaseCache = ttlCache[releaseKey, releaseEntry]

type releaseKey struct{ did, clientID string }

type releaseEntry struct {
	acct     *identity.Account
	consent  *privacy.Consent
	settings *privacy.Settings
}

const (
	releaseTTL      = time.Second
	releaseCacheMax = 4096 // per generation of releaseTTL
)

// releaseContext is Store.ReleaseContext, through the cache when it is on.
// Callers get their own copies.
func (p *Provider) releaseContext(ctx context.Context, did, clientID string) (*identity.Account, *privacy.Consent, *privacy.Settings, error) {
	if !p.RevocationsAnnounced {
		return p.Store.ReleaseContext(ctx, did, clientID)
	}
	k, now := releaseKey{did, clientID}, time.Now()
	c := &p.release
	if e, _, ok := c.get(k, now); ok {
		return copyRelease(e.acct, e.consent, e.settings)
	}
	epoch := c.since()
	acct, consent, settings, err := p.Store.ReleaseContext(ctx, did, clientID)
	if err != nil {
		return acct, consent, settings, err
	}
	a, cs, st, _ := copyRelease(acct, consent, settings)
	c.putSince(epoch, k, releaseEntry{a, cs, st}, now, now)
	return acct, consent, settings, nil
}

// consentUsed notes in the cache that a consent's last use was recorded at
// at, so that uses within the next minute do not record it again.
func (p *Provider) consentUsed(did, clientID string, at time.Time) {
	if !p.RevocationsAnnounced {
		return
	}
	c := &p.release
	k, now := releaseKey{did, clientID}, time.Now()
	epoch := c.since()
	e, readAt, ok := c.get(k, now)
	if !ok || e.consent == nil {
		return
	}
	a, cs, st, _ := copyRelease(e.acct, e.consent, e.settings)
	cs.LastUsedAt = &at
	c.putSince(epoch, k, releaseEntry{a, cs, st}, readAt, now)
}

// copyRelease copies what the cache holds, so that no caller's change
// reaches it.
func copyRelease(a *identity.Account, c *privacy.Consent, s *privacy.Settings) (*identity.Account, *privacy.Consent, *privacy.Settings, error) {
	var (
		a2 *identity.Account
		c2 *privacy.Consent
		s2 *privacy.Settings
	)
	if a != nil {
		cp := *a
		cp.DIDKeySealed, cp.PairwiseSecretSealed = slices.Clone(a.DIDKeySealed), slices.Clone(a.PairwiseSecretSealed)
		cp.DeletedAt = copyTime(a.DeletedAt)
		a2 = &cp
	}
	if c != nil {
		cp := *c
		cp.Scopes, cp.Claims = slices.Clone(c.Scopes), slices.Clone(c.Claims)
		cp.ExpiresAt, cp.LastUsedAt = copyTime(c.ExpiresAt), copyTime(c.LastUsedAt)
		c2 = &cp
	}
	if s != nil {
		cp := *s
		cp.SubjectOverrides, cp.ClaimPolicy = maps.Clone(s.SubjectOverrides), maps.Clone(s.ClaimPolicy)
		s2 = &cp
	}
	return a2, c2, s2, nil
}

func copyTime(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	c := *t
	return &c
}
