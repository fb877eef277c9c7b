package oidc

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"time"

	"github.com/ory/fosite"
)

// SyntheticGrant describes a grant of a person to a service as the token
// endpoint stores it after an authorization code exchange, for the data
// generator of `commonsid bench --populate`: a database filled with rows
// of the shapes the provider writes, which the provider reads as its own.
type SyntheticGrant struct {
	Issuer, ClientID, RedirectURI string
	AccountDID, Subject           string // the account and its sub for the service
	Scopes                        []string
	// Released are the ID-token claims released (name, email, …).
	Released    map[string]any
	SessionID   string // the sid of the sign-on session ("" for none)
	RequestedAt time.Time
	AuthTime    time.Time
	// AccessExpires and RefreshExpires are the tokens' expiries.
	AccessExpires, RefreshExpires time.Time
	// RefreshUsed marks the refresh token spent (rotated): kept inactive
	// until it expires, for reuse detection.
	RefreshUsed bool
}

// Rows returns the access-token and refresh-token rows of the grant, keyed
// by the hashes of fresh random signatures, as fositeStore.create writes
// them. The tokens themselves are never known to anyone.
func (g *SyntheticGrant) Rows() (access, refresh *OAuthRequest, err error) {
	s := newSession()
	s.AccountDID, s.ClientID, s.Alg, s.Subject = g.AccountDID, g.ClientID, "ES256", g.Subject
	c := s.Claims
	c.Issuer, c.Subject, c.Audience = g.Issuer, g.Subject, []string{g.ClientID}
	c.AuthTime, c.RequestedAt = g.AuthTime.Truncate(time.Second), g.RequestedAt.Truncate(time.Second)
	c.IssuedAt, c.ExpiresAt = g.RequestedAt.Truncate(time.Second), g.RequestedAt.Add(time.Hour).Truncate(time.Second)
	c.AuthenticationMethodsReferences = []string{"pwd"}
	c.Extra = map[string]any{}
	for k, v := range g.Released {
		c.Extra[k] = v
	}
	if g.SessionID != "" {
		c.Extra["sid"] = g.SessionID
	}
	s.ExpiresAt = map[fosite.TokenType]time.Time{
		fosite.AccessToken: g.AccessExpires.UTC(), fosite.RefreshToken: g.RefreshExpires.UTC(),
		fosite.AuthorizeCode: g.RequestedAt.Add(time.Minute).UTC(),
	}
	sess, err := json.Marshal(s)
	if err != nil {
		return nil, nil, err
	}
	id, err := randomToken(16)
	if err != nil {
		return nil, nil, err
	}
	form := url.Values{"grant_type": {"authorization_code"}, "redirect_uri": {g.RedirectURI}, "client_id": {g.ClientID}}
	raw, err := json.Marshal(storedRequest{
		ID: id, RequestedAt: g.RequestedAt.UTC(), ClientID: g.ClientID,
		Scopes: g.Scopes, GrantedScopes: g.Scopes,
		Audience: []string{g.ClientID}, GrantedAudience: []string{g.ClientID},
		Form: form.Encode(), Session: sess,
	})
	if err != nil {
		return nil, nil, err
	}
	accessSig, err := randomToken(32)
	if err != nil {
		return nil, nil, err
	}
	refreshSig, err := randomToken(32)
	if err != nil {
		return nil, nil, err
	}
	row := func(kind, sig, accessSig string, exp time.Time, active bool) *OAuthRequest {
		return &OAuthRequest{Kind: kind, SignatureHash: sigHash(sig), RequestID: id, ClientID: g.ClientID, Subject: g.AccountDID,
			Active: active, RequestedAt: g.RequestedAt.UTC(), ExpiresAt: exp.UTC(), AccessSignatureHash: accessSig, Request: raw}
	}
	return row(KindAccess, accessSig, "", g.AccessExpires, true),
		row(KindRefresh, refreshSig, sigHash(accessSig), g.RefreshExpires, !g.RefreshUsed), nil
}

func randomToken(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
