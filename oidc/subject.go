package oidc

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/privacy"
)

// PairwiseSubject computes sub = base64url(HMAC-SHA256(secret, sector)). It
// depends only on things that travel with the account, so the same person
// gets the same sub in the same service family on every cloud.
func PairwiseSubject(secret []byte, sector string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(sector))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// subject returns the sub a service sees for an account: the DID for a
// client registered with subject_type public or when the person chose the
// public mode (for every service or this one), else the pairwise value for
// the sector chosen in the consent (the family's for a fork the person
// carried their account over to) or the client's own.
func (p *Provider) subject(a *identity.Account, c *Client, consent *privacy.Consent, settings *privacy.Settings) (string, error) {
	return subjectFor(p.Accounts, a, c, consent, settings)
}

func subjectFor(accounts *identity.Service, a *identity.Account, c *Client, consent *privacy.Consent, settings *privacy.Settings) (string, error) {
	if c.SubjectType == "public" || settings.SubjectModeFor(c.ClientID) == "public" {
		return a.DID, nil
	}
	sector := c.Sector
	if consent != nil && consent.SubjectSector != "" {
		sector = consent.SubjectSector
	}
	secret, err := accounts.PairwiseSecret(a)
	if err != nil {
		return "", err
	}
	return PairwiseSubject(secret, sector), nil
}
