package oidc

import (
	"testing"
	"time"

	"github.com/ory/fosite"
)

// A copied session shares nothing a handler changes with its original.
func TestSessionCopy(t *testing.T) {
	s := newSession()
	s.AccountDID, s.ClientID = "did:key:z", "svc"
	s.Claims.Subject = "sub"
	s.DefaultSession.Subject = "sub"
	s.Claims.Audience = []string{"svc"}
	s.Claims.AuthenticationMethodsReferences = []string{"pwd"}
	s.Claims.Extra = map[string]any{"email": "a@example.org"}
	s.Headers.Extra = map[string]any{"kid": "k1"}
	s.SetExpiresAt(fosite.AccessToken, time.Unix(100, 0))
	s.AccessExtra = map[string]any{"x": 1}

	c := s.copy()
	if c.GetSubject() != "sub" || c.Claims.Extra["email"] != "a@example.org" || c.AccountDID != "did:key:z" ||
		!c.GetExpiresAt(fosite.AccessToken).Equal(time.Unix(100, 0)) || c.Headers.Extra["kid"] != "k1" {
		t.Fatalf("copy lost content: %+v", c)
	}
	c.Claims.Subject = "other"
	c.Claims.Audience[0] = "evil"
	c.Claims.AuthenticationMethodsReferences[0] = "none"
	c.Claims.Extra["email"] = "b@example.org"
	c.Claims.AccessTokenHash = "h"
	c.Headers.Extra["kid"] = "k2"
	c.SetExpiresAt(fosite.AccessToken, time.Unix(200, 0))
	c.AccessExtra["x"] = 2
	if s.Claims.Subject != "sub" || s.Claims.Audience[0] != "svc" || s.Claims.AuthenticationMethodsReferences[0] != "pwd" ||
		s.Claims.Extra["email"] != "a@example.org" || s.Claims.AccessTokenHash != "" || s.Headers.Extra["kid"] != "k1" ||
		!s.GetExpiresAt(fosite.AccessToken).Equal(time.Unix(100, 0)) || s.AccessExtra["x"] != 1 {
		t.Fatalf("a change to the copy reached the original: %+v %+v", s.DefaultSession, s.Claims)
	}
}
