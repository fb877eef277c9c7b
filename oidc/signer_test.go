package oidc_test

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ory/fosite/token/jwt"

	"github.com/onecommons/commonsid/internal/testdb"
	"github.com/onecommons/commonsid/keys"
	"github.com/onecommons/commonsid/oidc"
)

func testSigner(t *testing.T) (oidc.TestSigner, *keys.Manager) {
	t.Helper()
	db, _ := testdb.SQLite(t)
	km, _ := testdb.Keys(t, db)
	return oidc.NewTestSigner(km, "https://id.example"), km
}

// An access token is known good from the moment it is signed; the cache
// still applies expiry and key retirement.
func TestSignerIssuedAccessTokens(t *testing.T) {
	ctx := context.Background()
	s, km := testSigner(t)
	now := time.Now()
	mint := func(exp time.Time, typ string) string {
		t.Helper()
		claims := jwt.MapClaims{"sub": "alice", "iat": now.Unix(), "exp": exp.Unix(), "aud": []string{"svc"}}
		raw, _, err := s.Generate(ctx, claims, &jwt.Headers{Extra: map[string]any{"typ": typ, oidc.PersonalHeader: true}})
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}

	live := mint(now.Add(time.Minute), "at+jwt")
	if !s.Cached(live) {
		t.Fatal("a new access token is not in the verified cache")
	}
	tok, err := s.Decode(ctx, live)
	if err != nil || tok.Claims["sub"] != "alice" {
		t.Fatalf("decode = %v, %v", tok, err)
	}
	tok.Claims["sub"] = "mallory" // the caller's copy only
	if again, _ := s.Decode(ctx, live); again.Claims["sub"] != "alice" {
		t.Fatal("a caller's change reached the cache")
	}

	if s.Cached(mint(now.Add(time.Minute), "")) {
		t.Fatal("an ID token was cached at signing")
	}
	own, _, err := s.Generate(ctx, jwt.MapClaims{"sub": "svc", "exp": now.Add(time.Minute).Unix()}, &jwt.Headers{Extra: map[string]any{"typ": "at+jwt"}})
	if err != nil || s.Cached(own) {
		t.Fatalf("a client's own token was cached at signing (%v)", err)
	}
	if strings.Contains(jwtHeader(t, live), oidc.PersonalHeader) {
		t.Fatal("the internal marker is in the token")
	}

	expired := mint(now.Add(-time.Minute), "at+jwt")
	var ve *jwt.ValidationError
	if _, err := s.Decode(ctx, expired); !errors.As(err, &ve) || !ve.Has(jwt.ValidationErrorExpired) {
		t.Fatalf("expired token: err = %v, want expired", err)
	}

	// A token whose key is retired stops verifying, cached or not.
	old, err := km.Active(ctx, keys.DefaultAlg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := km.Rotate(ctx, keys.DefaultAlg); err != nil {
		t.Fatal(err)
	}
	if err := km.Retire(ctx, old.KID); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Decode(ctx, live); err == nil {
		t.Fatal("a token of a retired key still verifies")
	}
}

func jwtHeader(t *testing.T, token string) string {
	t.Helper()
	h, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// Tokens naming this cloud's keys are recognised as its own without being
// verified (so introspection never asks the federation about them); a
// token of another key, or not a JWT, is not.
func TestSignerOwnTokens(t *testing.T) {
	ctx := context.Background()
	s, _ := testSigner(t)
	other, _ := testSigner(t)
	claims := func() jwt.MapClaims { return jwt.MapClaims{"sub": "svc", "exp": time.Now().Add(time.Minute).Unix()} }
	hdr := &jwt.Headers{Extra: map[string]any{"typ": "at+jwt"}}
	mine, _, err := s.Generate(ctx, claims(), hdr)
	if err != nil {
		t.Fatal(err)
	}
	theirs, _, err := other.Generate(ctx, claims(), hdr)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Own(ctx, mine) {
		t.Fatal("own token not recognised")
	}
	for name, tok := range map[string]string{"another cloud's": theirs, "opaque": "abc.def", "garbage header": "!!.e30.x"} {
		if s.Own(ctx, tok) {
			t.Fatalf("%s token taken for an own one", name)
		}
	}
}
