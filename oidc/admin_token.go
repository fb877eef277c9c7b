package oidc

import (
	"context"
	"errors"

	"github.com/ory/fosite"
)

// ErrInvalidAccessToken is what VerifyClientToken returns for a token that
// is not a live bearer access token of a client credentials grant of this
// cloud: unknown, expired, revoked, a refresh token, a token issued for a
// person, or one bound to a DPoP key.
var ErrInvalidAccessToken = errors.New("the access token is expired, revoked, malformed or not a client credentials token")

// VerifyClientToken checks an access token presented to an API of this
// cloud that only services themselves call (the admin API): it must have
// been issued by the token endpoint of this cloud through the client
// credentials grant, be live, and be a bearer token. It returns the client
// and the granted scopes. A database failure is returned as it is (not
// ErrInvalidAccessToken), so the caller can answer 503 rather than 401.
func (p *Provider) VerifyClientToken(ctx context.Context, tok string) (clientID string, scopes []string, err error) {
	if tok == "" {
		return "", nil, ErrInvalidAccessToken
	}
	session := newSession()
	use, ar, err := p.oauth.IntrospectToken(ctx, tok, fosite.AccessToken, session)
	if cause, ok := unavailableCause(err); ok {
		return "", nil, cause
	}
	if err != nil || use != fosite.AccessToken || ar == nil {
		return "", nil, ErrInvalidAccessToken
	}
	if session.AccountDID != "" || boundJKT(session) != "" {
		return "", nil, ErrInvalidAccessToken
	}
	if ar.GetClient() == nil {
		return "", nil, ErrInvalidAccessToken
	}
	return ar.GetClient().GetID(), []string(ar.GetGrantedScopes()), nil
}
