package oidc

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"

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

// ReplicaSubjectFunc returns the pairwise sub of a replicated account (one
// homed on another cloud, which holds no pairwise secret here) at a sector
// of this cloud's service clientID: the one learned before, else the one
// its home gives now. Its errors wrap ErrSubjectUnavailable or
// ErrSubjectRefused when the home could not be asked or refused.
type ReplicaSubjectFunc func(ctx context.Context, a *identity.Account, clientID, sector string) (string, error)

// Errors of a ReplicaSubjectFunc.
var (
	ErrSubjectUnavailable = errors.New("the home cloud of the account cannot be reached")
	ErrSubjectRefused     = errors.New("the home cloud of the account refused this cloud the identifier")
)

// errNoReplicaSubjects: a replica without a secret on a provider that
// cannot ask its home.
var errNoReplicaSubjects = errors.New("the account holds no pairwise secret here and this cloud cannot ask its home")

// subject returns the sub a service sees for an account: the DID for a
// client registered with subject_type public or when the person chose the
// public mode (for every service or this one), else the pairwise value for
// the sector chosen in the consent (the family's for a fork the person
// carried their account over to) or the client's own. For a replicated
// account it comes from its home (Provider.ReplicaSubjects).
func (p *Provider) subject(ctx context.Context, a *identity.Account, c *Client, consent *privacy.Consent, settings *privacy.Settings) (string, error) {
	return subjectFor(ctx, p.Accounts, p.ReplicaSubjects, a, c, consent, settings)
}

func subjectFor(ctx context.Context, accounts *identity.Service, replica ReplicaSubjectFunc, a *identity.Account, c *Client, consent *privacy.Consent, settings *privacy.Settings) (string, error) {
	if c.SubjectType == "public" || settings.SubjectModeFor(c.ClientID) == "public" {
		return a.DID, nil
	}
	sector := c.Sector
	if consent != nil && consent.SubjectSector != "" {
		sector = consent.SubjectSector
	}
	if len(a.PairwiseSecretSealed) == 0 && a.HomeIssuer != accounts.Issuer && a.HomeIssuer != "" {
		if replica == nil {
			return "", errNoReplicaSubjects
		}
		return replica(ctx, a, c.ClientID, sector)
	}
	secret, err := accounts.PairwiseSecret(a)
	if err != nil {
		return "", err
	}
	return PairwiseSubject(secret, sector), nil
}

// subjectError answers, with a page for the person, a sub that the home
// cloud of a replicated account could not give or refused; false for
// any other error.
func (p *Provider) subjectError(w http.ResponseWriter, r *http.Request, a *identity.Account, err error) bool {
	switch {
	case errors.Is(err, ErrSubjectUnavailable):
		p.Log.WarnContext(r.Context(), "a new service needs the sub from the account's home, which cannot be reached", "home", a.HomeIssuer, "err", err)
		w.Header().Set("Retry-After", "30")
		p.errorPage(w, r, http.StatusServiceUnavailable, "Your home cloud cannot be reached",
			fmt.Sprintf("This is your first sign-in to this service from this cloud, and your identifier for it comes from your home cloud, %s, which cannot be reached right now. Services you already use here keep working. Please try again later.", a.HomeIssuer))
		return true
	case errors.Is(err, ErrSubjectRefused):
		p.Log.WarnContext(r.Context(), "the account's home refused the sub", "home", a.HomeIssuer, "err", err)
		p.errorPage(w, r, http.StatusForbidden, "Your home cloud did not give your identifier for this service",
			fmt.Sprintf("Your home cloud, %s, does not give this cloud your identifier for this service, so you cannot use it from here. Check what you share with this cloud on your home cloud.", a.HomeIssuer))
		return true
	}
	return false
}

// replicaSubjectMissing reports an error of subjectFor saying that a
// replica's sub is not known here and cannot be learned now.
func replicaSubjectMissing(err error) bool {
	return errors.Is(err, errNoReplicaSubjects) || errors.Is(err, ErrSubjectUnavailable) || errors.Is(err, ErrSubjectRefused)
}
