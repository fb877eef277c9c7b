package oidc

import (
	"maps"
	"slices"
	"time"

	"github.com/mohae/deepcopy"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"
)

// Session is what fosite stores with every code and token: the ID token
// claims, the access-token claims and who the grant belongs to.
type Session struct {
	*openid.DefaultSession `json:"id_token"`

	// AccountDID is the person the grant belongs to ("" for client
	// credentials).
	AccountDID string `json:"account_did,omitempty"`
	ClientID   string `json:"client_id"`
	// Alg is the client's signing algorithm.
	Alg string `json:"alg"`
	// Claims is the claims request parameter of the authorization request.
	ClaimsParam string `json:"claims_param,omitempty"`
	// AccessExtra are extra claims of the access token.
	AccessExtra map[string]any `json:"access_extra,omitempty"`
}

var (
	_ openid.Session = (*Session)(nil)
)

// newSession returns an empty session.
func newSession() *Session {
	return &Session{DefaultSession: &openid.DefaultSession{Claims: &jwt.IDTokenClaims{}, Headers: &jwt.Headers{}}}
}

// GetJWTClaims builds the RFC 9068 access-token claims afresh for each
// token: client_id and a new jti every time.
func (s *Session) GetJWTClaims() jwt.JWTClaimsContainer {
	extra := map[string]any{"client_id": s.ClientID}
	for k, v := range s.AccessExtra {
		extra[k] = v
	}
	if s.DefaultSession != nil && s.Claims != nil && !s.Claims.AuthTime.IsZero() {
		extra["auth_time"] = s.Claims.AuthTime.Unix()
	}
	return &jwt.JWTClaims{Subject: s.GetSubject(), Extra: extra}
}

// GetJWTHeader is the access-token header: typ at+jwt (RFC 9068 §2.1).
func (s *Session) GetJWTHeader() *jwt.Headers {
	h := &jwt.Headers{Extra: map[string]any{"typ": "at+jwt", algHeader: s.alg()}}
	if s.AccountDID != "" {
		h.Extra[personalHeader] = true
	}
	return h
}

// IDTokenHeaders is the ID token header.
func (s *Session) IDTokenHeaders() *jwt.Headers {
	return &jwt.Headers{Extra: map[string]any{algHeader: s.alg()}}
}

func (s *Session) alg() string {
	if s.Alg == "" {
		return "ES256"
	}
	return s.Alg
}

// GetSubject returns the token subject.
func (s *Session) GetSubject() string {
	if s.DefaultSession == nil {
		return ""
	}
	return s.DefaultSession.GetSubject()
}

// copy returns a copy that shares nothing a caller may change with s: its
// own claims, headers and maps (values inside the maps, as decoded from
// JSON or set once, are shared).
func (s *Session) copy() *Session {
	c := *s
	c.AccessExtra = maps.Clone(s.AccessExtra)
	if s.DefaultSession == nil {
		return &c
	}
	ds := *s.DefaultSession
	c.DefaultSession = &ds
	ds.ExpiresAt = maps.Clone(s.ExpiresAt)
	if s.Claims != nil {
		cl := *s.Claims
		cl.Audience = slices.Clone(cl.Audience)
		cl.AuthenticationMethodsReferences = slices.Clone(cl.AuthenticationMethodsReferences)
		cl.Extra = maps.Clone(cl.Extra)
		ds.Claims = &cl
	}
	if s.Headers != nil {
		ds.Headers = &jwt.Headers{Extra: maps.Clone(s.Headers.Extra)}
	}
	return &c
}

// Clone deep-copies the session.
func (s *Session) Clone() fosite.Session {
	if s == nil {
		return nil
	}
	return deepcopy.Copy(s).(fosite.Session)
}

// SetExpiresAt records when a token type expires.
func (s *Session) SetExpiresAt(key fosite.TokenType, exp time.Time) {
	s.DefaultSession.SetExpiresAt(key, exp)
}
