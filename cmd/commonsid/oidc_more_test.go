package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"io"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"

	"github.com/onecommons/commonsid/privacy"
)

// TestSigningAlgorithms: a client picks EdDSA or RS256 for its tokens.
func TestSigningAlgorithms(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := startLive(t, sqliteEnv(t))
	l.env.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--password-stdin")
	b := newBrowser(t)
	for _, alg := range []string{"EdDSA", "RS256", "ES256"} {
		app := newRP(t, l, "alg-"+strings.ToLower(alg), map[string]any{"id_token_signed_response_alg": alg})
		v := oauth2.GenerateVerifier()
		code := codeFor(t, b, app, v)
		tok, err := app.conf.Exchange(ctx, code, oauth2.VerifierOption(v))
		if err != nil {
			t.Fatal(err)
		}
		raw := tok.Extra("id_token").(string)
		if _, err := app.provider.Verifier(&oidc.Config{ClientID: app.conf.ClientID, SupportedSigningAlgs: []string{alg}}).Verify(ctx, raw); err != nil {
			t.Fatalf("%s ID token: %v", alg, err)
		}
		at, err := jwt.ParseSigned(tok.AccessToken, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
		if err != nil {
			t.Fatalf("%s access token: %v", alg, err)
		}
		if at.Headers[0].Algorithm != alg {
			t.Fatalf("access token alg %s, want %s", at.Headers[0].Algorithm, alg)
		}
	}
}

// TestForkFamily: a fork of a service the person uses offers to carry the
// account over; carried over, the fork sees the family's sub.
func TestForkFamily(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := startLive(t, sqliteEnv(t))
	l.env.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--password-stdin")
	b := newBrowser(t)
	subOf := func(app *rp, consent func(url.Values)) (string, string) {
		v := oauth2.GenerateVerifier()
		var page string
		p := b.authorize(app.conf.AuthCodeURL(randString(12), oauth2.S256ChallengeOption(v)), "alice", "correct horse battery", func(f url.Values) {
			if consent != nil {
				consent(f)
			}
		})
		page = p.body
		tok, err := app.conf.Exchange(ctx, p.url.Query().Get("code"), oauth2.VerifierOption(v))
		if err != nil {
			t.Fatalf("exchange: %v (%s)", err, page)
		}
		idt, err := app.provider.Verifier(&oidc.Config{ClientID: app.conf.ClientID}).Verify(ctx, tok.Extra("id_token").(string))
		if err != nil {
			t.Fatal(err)
		}
		return idt.Subject, page
	}
	root := newRP(t, l, "forum", nil)
	rootSub, _ := subOf(root, nil)

	carried := newRP(t, l, "forum-fork", map[string]any{"forked_from": root.conf.ClientID})
	// The consent page names the parent and offers the choice.
	pg := b.get(carried.conf.AuthCodeURL("state-fork", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if !strings.Contains(pg.body, "is a fork of forum") || !strings.Contains(pg.body, `value="carry"`) {
		t.Fatalf("consent page does not present the fork: %d %s\n%s", pg.status, pg.url, pg.body)
	}
	forkSub, _ := subOf(carried, func(f url.Values) { f.Set("fork", "carry") })
	if forkSub != rootSub {
		t.Fatalf("carried-over fork sub %s, family sub %s", forkSub, rootSub)
	}
	fresh := newRP(t, l, "forum-fork2", map[string]any{"forked_from": root.conf.ClientID})
	newSub, _ := subOf(fresh, func(f url.Values) { f.Set("fork", "new") })
	if newSub == rootSub {
		t.Fatal("a fork joined as a new user got the family sub")
	}
	// A fork of a fork belongs to the root's family.
	grand := newRP(t, l, "forum-fork3", map[string]any{"forked_from": carried.conf.ClientID})
	grandSub, _ := subOf(grand, func(f url.Values) { f.Set("fork", "carry") })
	if grandSub != rootSub {
		t.Fatal("a fork of a fork is not in the root's family")
	}
}

// TestLogoutAndActivity: RP-initiated logout with id_token_hint sends the
// person to the registered post_logout_redirect_uri and ends the session;
// the activity log holds the login, consent and releases.
func TestLogoutAndActivity(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := startLive(t, sqliteEnv(t))
	did := lastLine(l.env.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--email", "a@example.org", "--password-stdin"))
	app := newRP(t, l, "shop", map[string]any{"post_logout_redirect_uris": []string{"http://127.0.0.1:9/bye"}})
	b := newBrowser(t)
	v := oauth2.GenerateVerifier()
	tok, err := app.conf.Exchange(ctx, codeFor(t, b, app, v), oauth2.VerifierOption(v))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok)); err != nil {
		t.Fatal(err)
	}
	hint := tok.Extra("id_token").(string)
	p := b.get(l.base + "/logout?id_token_hint=" + url.QueryEscape(hint) + "&post_logout_redirect_uri=" + url.QueryEscape("http://127.0.0.1:9/evil"))
	if p.status != 400 {
		t.Fatalf("unregistered post_logout_redirect_uri: %d %s", p.status, p.url)
	}
	p = b.get(l.base + "/logout?id_token_hint=" + url.QueryEscape(hint) + "&post_logout_redirect_uri=" + url.QueryEscape("http://127.0.0.1:9/bye") + "&state=xyz123")
	if p.url.String() != "http://127.0.0.1:9/bye?state=xyz123" {
		t.Fatalf("logout redirect: %d %s\n%s", p.status, p.url, p.body)
	}
	// Signed out: the next authorization asks for the password again.
	b.pages = nil
	b.authorize(app.conf.AuthCodeURL(randString(12), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), "alice", "correct horse battery", nil)
	if !strings.Contains(strings.Join(b.pages, " "), "/login") {
		t.Fatalf("still signed in after logout: %v", b.pages)
	}
	// Without a hint the page asks first.
	p = b.get(l.base + "/logout")
	if p.status != 200 || !strings.Contains(p.body, `name="confirm"`) {
		t.Fatalf("logout without hint: %d", p.status)
	}

	cfg := &Config{DataDir: l.env["COMMONSID_DATA"], Issuer: l.base, LogFormat: "text", LogLevel: "warn"}
	cl, err := openCloud(ctx, cfg, newLogger(cfg, io.Discard), false)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	acts, err := cl.db.ListActivity(ctx, did, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, a := range acts {
		kinds[a.Kind]++
		if a.Kind == privacy.ActivityRelease {
			if a.ClientID != app.conf.ClientID || a.Detail["claims"] == nil || a.Detail["scopes"] == nil {
				t.Errorf("release entry lacks service, scopes or claims: %+v", a)
			}
		}
	}
	for _, k := range []string{privacy.ActivityLogin, privacy.ActivityConsent, privacy.ActivityTokenIssued, privacy.ActivityRelease, privacy.ActivityLogout} {
		if kinds[k] == 0 {
			t.Errorf("no %s entry in the activity log: %v", k, kinds)
		}
	}
}

// TestPrivateKeyJWT: a client authenticates with a signed assertion
// (private_key_jwt); a replayed assertion is refused.
func TestPrivateKeyJWT(t *testing.T) {
	t.Parallel()
	l := startLive(t, sqliteEnv(t))
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub := jose.JSONWebKey{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}
	reg := register(t, context.Background(), l.base, map[string]any{"client_name": "pkjwt", "grant_types": []string{"client_credentials"},
		"token_endpoint_auth_method": "private_key_jwt", "token_endpoint_auth_signing_alg": "ES256", "scope": "jobs",
		"jwks": map[string]any{"keys": []any{pub}}})
	id := reg["client_id"].(string)
	assertionFor := func(life time.Duration) string {
		s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "k1").WithType("JWT"))
		raw, _ := jwt.Signed(s).Claims(jwt.Claims{Issuer: id, Subject: id, Audience: jwt.Audience{l.base + "/token"},
			ID: randString(12), Expiry: jwt.NewNumericDate(time.Now().Add(life)), IssuedAt: jwt.NewNumericDate(time.Now())}).Serialize()
		return raw
	}
	// An assertion valid for a century would keep its jti row that long.
	long := url.Values{"grant_type": {"client_credentials"}, "scope": {"jobs"}, "client_id": {id},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertionFor(100 * 365 * 24 * time.Hour)}}
	if st, out := postForm(t, l.base+"/token", long, "", ""); st != 401 || out["error"] != "invalid_client" {
		t.Fatalf("a century-long assertion: %d %v", st, out)
	}
	a := assertionFor(time.Minute)
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"jobs"}, "client_id": {id},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}}
	if st, out := postForm(t, l.base+"/token", form, "", ""); st != 200 || out["access_token"] == nil {
		t.Fatalf("private_key_jwt: %d %v", st, out)
	}
	if st, out := postForm(t, l.base+"/token", form, "", ""); st == 200 {
		t.Fatalf("replayed assertion accepted: %v", out)
	}
}

// TestRevocationAcrossReplicas: two replicas on one PostgreSQL database; a
// token revoked through one is inactive at the other (announced with
// LISTEN/NOTIFY, which empties the other's token cache).
func TestRevocationAcrossReplicas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e1 := postgresEnv(t)
	e2 := env{}
	for k, v := range e1 {
		e2[k] = v
	}
	r1 := startLive(t, e1)
	r2 := startReplica(t, e2, r1.base) // replicas of one cloud share its issuer
	r1.env.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--password-stdin")
	app := newRP(t, r1, "replicated", nil)
	v := oauth2.GenerateVerifier()
	tok, err := app.conf.Exchange(ctx, codeFor(t, newBrowser(t), app, v), oauth2.VerifierOption(v))
	if err != nil {
		t.Fatal(err)
	}
	intro := func(base string) any {
		_, in := postForm(t, base+"/introspect", url.Values{"token": {tok.AccessToken}}, app.conf.ClientID, app.conf.ClientSecret)
		return in["active"]
	}
	for i := range 2 { // the second answer comes from r2's cache
		if intro(r2.base) != true {
			t.Fatalf("the token is not active at the second replica (call %d)", i+1)
		}
	}
	if st, _ := postForm(t, r1.base+"/revoke", url.Values{"token": {tok.AccessToken}}, app.conf.ClientID, app.conf.ClientSecret); st != 200 {
		t.Fatalf("revoke: %d", st)
	}
	start := time.Now()
	for intro(r2.base) != false {
		if time.Since(start) > 5*time.Second {
			t.Fatal("the second replica still says active")
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("inactive at the second replica after %s", time.Since(start).Round(time.Millisecond))
}
