package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"
)

// authCall POSTs form to u with the client's secret in the Authorization
// header (style "basic") or in the body ("post").
func authCall(t *testing.T, u string, form url.Values, style, id, secret string) answer {
	t.Helper()
	f := url.Values{}
	for k, v := range form {
		f[k] = v
	}
	if style == "post" {
		f.Set("client_id", id)
		f.Set("client_secret", secret)
		return call(t, u, f, "", "", "")
	}
	return call(t, u, f, id, secret, "")
}

// freshConf is app's configuration with no remembered auth style: x/oauth2
// at its default (AuthStyleAutoDetect) probes Basic first, then the body.
func freshConf(app *rp) *oauth2.Config {
	return &oauth2.Config{ClientID: app.conf.ClientID, ClientSecret: app.conf.ClientSecret,
		Endpoint:    oauth2.Endpoint{AuthURL: app.conf.Endpoint.AuthURL, TokenURL: app.conf.Endpoint.TokenURL},
		RedirectURL: app.conf.RedirectURL, Scopes: app.conf.Scopes}
}

// TestClientAuthSecretMethods: a client registered with client_secret_basic
// and one registered with client_secret_post each authenticate either way
// at the token, revocation and introspection endpoints; what registration
// reports stays the registered method.
func TestClientAuthSecretMethods(t *testing.T) {
	t.Parallel()
	l := startLive(t, sqliteEnv(t))
	l.env.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--password-stdin")
	b := newBrowser(t)
	for _, registered := range []string{"client_secret_basic", "client_secret_post"} {
		app := newRP(t, l, "auth-"+registered, map[string]any{"token_endpoint_auth_method": registered})
		if app.reg["token_endpoint_auth_method"] != registered {
			t.Fatalf("registered %s, registration says %v", registered, app.reg["token_endpoint_auth_method"])
		}
		id, secret := app.conf.ClientID, app.conf.ClientSecret
		for _, style := range []string{"basic", "post"} {
			t.Run(registered+" by "+style, func(t *testing.T) {
				tok := personToken(t, b, app)
				a := authCall(t, l.base+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, style, id, secret)
				access, _ := a.body["access_token"].(string)
				refresh, _ := a.body["refresh_token"].(string)
				if a.status != 200 || access == "" || refresh == "" {
					t.Fatalf("token: %d %v", a.status, a.body)
				}
				if a := authCall(t, l.base+"/introspect", url.Values{"token": {access}}, style, id, secret); a.status != 200 || a.body["active"] != true {
					t.Fatalf("introspect: %d %v", a.status, a.body)
				}
				if a := authCall(t, l.base+"/revoke", url.Values{"token": {refresh}}, style, id, secret); a.status != 200 {
					t.Fatalf("revoke: %d %v", a.status, a.body)
				}
				if a := authCall(t, l.base+"/introspect", url.Values{"token": {refresh}}, style, id, secret); a.status != 200 || a.body["active"] != false {
					t.Fatalf("introspect after revoke: %d %v", a.status, a.body)
				}
				if a := authCall(t, l.base+"/token", url.Values{"grant_type": {"client_credentials"}}, style, id, secret+"x"); a.status != 401 || a.body["error"] != "invalid_client" {
					t.Fatalf("a wrong secret: %d %v", a.status, a.body)
				}
			})
		}
	}
}

// TestClientAuthTwice: a request that authenticates twice (Basic and a
// body secret, an assertion and a secret) or names two clients is refused
// with invalid_request at every endpoint, before anything happens.
func TestClientAuthTwice(t *testing.T) {
	t.Parallel()
	l := startLive(t, sqliteEnv(t))
	l.env.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--password-stdin")
	app := newRP(t, l, "twice", nil)
	other := newRP(t, l, "twice-other", nil)
	tok := personToken(t, newBrowser(t), app)
	id, secret := app.conf.ClientID, app.conf.ClientSecret
	assertion := url.Values{"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {"a.b.c"}}
	for _, c := range []struct {
		name     string
		endpoint string
		form     url.Values
		basic    bool
		assert   bool
	}{
		{"token, basic and body secret", "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_secret": {secret}}, true, false},
		{"revoke, basic and body secret", "/revoke", url.Values{"token": {tok.RefreshToken}, "client_secret": {secret}}, true, false},
		{"introspect, basic and body secret", "/introspect", url.Values{"token": {tok.AccessToken}, "client_secret": {secret}}, true, false},
		{"token, assertion and body secret", "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {id}, "client_secret": {secret}}, false, true},
		{"token, assertion and basic", "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, true, true},
		{"introspect, assertion and basic", "/introspect", url.Values{"token": {tok.AccessToken}}, true, true},
		{"token, basic names another client", "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {other.conf.ClientID}}, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			form := url.Values{}
			for k, v := range c.form {
				form[k] = v
			}
			if c.assert {
				for k, v := range assertion {
					form[k] = v
				}
			}
			user, pass := "", ""
			if c.basic {
				user, pass = id, secret
			}
			a := call(t, l.base+c.endpoint, form, user, pass, "")
			if a.status != 400 || a.body["error"] != "invalid_request" {
				t.Fatalf("%d %v", a.status, a.body)
			}
		})
	}
	// Nothing was used up: the refresh token still works, the tokens are
	// still active.
	if a := call(t, l.base+"/introspect", url.Values{"token": {tok.AccessToken}}, id, secret, ""); a.body["active"] != true {
		t.Fatalf("the access token was revoked: %v", a.body)
	}
	if _, err := freshConf(app).TokenSource(context.Background(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err != nil {
		t.Fatalf("the refresh token was used up: %v", err)
	}
}

// TestClientAuthGrantErrors: golang.org/x/oauth2 at its defaults (it tries
// Basic and, after any error, the body) learns the grant's error, never an
// authentication-method mismatch, whichever secret method the client
// registered: a bad PKCE verifier, a reused code and a dead refresh token
// are invalid_grant.
func TestClientAuthGrantErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := startLive(t, sqliteEnv(t))
	l.env.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--password-stdin")
	b := newBrowser(t)
	wantInvalidGrant := func(t *testing.T, what string, err error) {
		t.Helper()
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
			t.Fatalf("%s: want invalid_grant, got %v", what, err)
		}
	}
	for _, registered := range []string{"client_secret_basic", "client_secret_post"} {
		t.Run(registered, func(t *testing.T) {
			app := newRP(t, l, "grant-"+registered, map[string]any{"token_endpoint_auth_method": registered})

			v := oauth2.GenerateVerifier()
			_, err := freshConf(app).Exchange(ctx, codeFor(t, b, app, v), oauth2.VerifierOption(oauth2.GenerateVerifier()))
			wantInvalidGrant(t, "bad verifier", err)

			v = oauth2.GenerateVerifier()
			code := codeFor(t, b, app, v)
			tok, err := freshConf(app).Exchange(ctx, code, oauth2.VerifierOption(v))
			if err != nil {
				t.Fatalf("exchange: %v", err)
			}
			_, err = freshConf(app).Exchange(ctx, code, oauth2.VerifierOption(v))
			wantInvalidGrant(t, "reused code", err)

			// The reuse revoked the grant: its refresh token is dead.
			_, err = freshConf(app).TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
			wantInvalidGrant(t, "dead refresh token", err)
		})
	}
}

// TestClientAuthWithoutSecret: a private_key_jwt client authenticates with
// an assertion at the token, introspection and revocation endpoints, and
// with nothing else; a public client revokes its own refresh token by
// client_id alone, and cannot introspect.
func TestClientAuthWithoutSecret(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := startLive(t, sqliteEnv(t))
	l.env.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--password-stdin")
	t.Run("private_key_jwt", func(t *testing.T) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		pub := jose.JSONWebKey{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}
		reg := register(t, context.Background(), l.base, map[string]any{"client_name": "pkjwt-all", "grant_types": []string{"client_credentials"},
			"token_endpoint_auth_method": "private_key_jwt", "token_endpoint_auth_signing_alg": "ES256", "scope": "jobs",
			"jwks": map[string]any{"keys": []any{pub}}})
		id := reg["client_id"].(string)
		withAssertion := func(form url.Values) url.Values {
			s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "k1").WithType("JWT"))
			raw, _ := jwt.Signed(s).Claims(jwt.Claims{Issuer: id, Subject: id, Audience: jwt.Audience{l.base + "/token"},
				ID: randString(12), Expiry: jwt.NewNumericDate(time.Now().Add(time.Minute)), IssuedAt: jwt.NewNumericDate(time.Now())}).Serialize()
			form.Set("client_id", id)
			form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
			form.Set("client_assertion", raw)
			return form
		}
		a := call(t, l.base+"/token", withAssertion(url.Values{"grant_type": {"client_credentials"}, "scope": {"jobs"}}), "", "", "")
		tok, _ := a.body["access_token"].(string)
		if a.status != 200 || tok == "" {
			t.Fatalf("token: %d %v", a.status, a.body)
		}
		if a := call(t, l.base+"/introspect", withAssertion(url.Values{"token": {tok}}), "", "", ""); a.status != 200 || a.body["active"] != true || a.body["client_id"] != id {
			t.Fatalf("introspect: %d %v", a.status, a.body)
		}
		// A secret is not this client's way in, whatever is sent as one.
		if a := call(t, l.base+"/introspect", url.Values{"token": {tok}}, id, "guess", ""); a.status != 401 || a.body["active"] == true {
			t.Fatalf("introspect with Basic: %d %v", a.status, a.body)
		}
		if a := call(t, l.base+"/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {"guess"}}, "", "", ""); a.status != 401 || a.body["error"] != "invalid_client" {
			t.Fatalf("token with a body secret: %d %v", a.status, a.body)
		}
		if a := call(t, l.base+"/revoke", withAssertion(url.Values{"token": {tok}}), "", "", ""); a.status != 200 {
			t.Fatalf("revoke: %d %v", a.status, a.body)
		}
		if a := call(t, l.base+"/introspect", withAssertion(url.Values{"token": {tok}}), "", "", ""); a.status != 200 || a.body["active"] != false {
			t.Fatalf("introspect after revoke: %d %v", a.status, a.body)
		}
	})
	t.Run("public", func(t *testing.T) {
		app := newRP(t, l, "public", map[string]any{"token_endpoint_auth_method": "none"})
		if app.conf.ClientSecret != "" {
			t.Fatal("a public client got a secret")
		}
		tok := personToken(t, newBrowser(t), app)
		if tok.RefreshToken == "" {
			t.Fatal("no refresh token")
		}
		if a := call(t, l.base+"/introspect", url.Values{"token": {tok.AccessToken}, "client_id": {app.conf.ClientID}}, "", "", ""); a.status != 401 || a.body["active"] == true {
			t.Fatalf("a public client introspected: %d %v", a.status, a.body)
		}
		if a := call(t, l.base+"/revoke", url.Values{"token": {tok.RefreshToken}, "client_id": {app.conf.ClientID}}, "", "", ""); a.status != 200 {
			t.Fatalf("revoke: %d %v", a.status, a.body)
		}
		_, err := freshConf(app).TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
			t.Fatalf("refresh after revoke: %v", err)
		}
	})
}
