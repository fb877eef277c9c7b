package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/onecommons/commonsid/federation"
)

// accessClaims decodes an access token's claims (its signature is the
// verifier's business, checked below with federation.TokenVerifier).
func accessClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func audOf(c map[string]any) []string {
	var out []string
	switch a := c["aud"].(type) {
	case string:
		out = []string{a}
	case []any:
		for _, v := range a {
			s, _ := v.(string)
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

func wantAud(t *testing.T, what string, c map[string]any, want ...string) {
	t.Helper()
	slices.Sort(want)
	if got := audOf(c); !slices.Equal(got, want) {
		t.Fatalf("%s: aud %v, want %v (claims %v)", what, got, want, c)
	}
}

// TestAudienceDefault: an access token asked without a resource is for
// the client itself (aud = client_id, never the issuer) and carries the
// RFC 9068 client_id claim; introspection reports aud, iss, token_type and
// a refresh token's own expiry.
func TestAudienceDefault(t *testing.T) {
	t.Parallel()
	l := startLive(t, sqliteEnv(t))
	l.env.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--password-stdin")
	app := newRP(t, l, "aud-default", nil)
	tok := personToken(t, newBrowser(t), app)
	c := accessClaims(t, tok.AccessToken)
	wantAud(t, "person token", c, app.conf.ClientID)
	if c["client_id"] != app.conf.ClientID {
		t.Fatalf("client_id claim %v", c["client_id"])
	}
	in := call(t, l.base+"/introspect", url.Values{"token": {tok.AccessToken}}, app.conf.ClientID, app.conf.ClientSecret, "")
	if in.body["active"] != true || in.body["iss"] != l.base || in.body["token_type"] != "Bearer" || !slices.Equal(audOf(in.body), []string{app.conf.ClientID}) {
		t.Fatalf("introspect access token: %v", in.body)
	}
	rin := call(t, l.base+"/introspect", url.Values{"token": {tok.RefreshToken}}, app.conf.ClientID, app.conf.ClientSecret, "")
	accessExp, _ := in.body["exp"].(float64)
	refreshExp, _ := rin.body["exp"].(float64)
	if rin.body["active"] != true || refreshExp <= accessExp+3600 {
		t.Fatalf("introspect refresh token: exp %v (access token exp %v): %v", refreshExp, accessExp, rin.body)
	}
}

// TestAudienceResource: a client asks for its registered resources with
// resource (RFC 8707) or audience, at the token and the authorization
// endpoints; anything else is invalid_target; a refresh narrows but does
// not widen; a resource server's TokenVerifier accepts a token for its own
// audience only.
func TestAudienceResource(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := startLive(t, sqliteEnv(t))
	l.env.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--password-stdin")
	const apiA, apiB = "https://a.example/api", "https://b.example/api"
	reg := register(t, ctx, l.base, map[string]any{"client_name": "aud-worker", "grant_types": []string{"client_credentials"},
		"scope": "jobs", "resources": []string{apiA, apiB}})
	id, secret := reg["client_id"].(string), reg["client_secret"].(string)
	cc := func(form url.Values) answer {
		form.Set("grant_type", "client_credentials")
		return call(t, l.base+"/token", form, id, secret, "")
	}
	a := cc(url.Values{"resource": {apiA}})
	tokA, _ := a.body["access_token"].(string)
	if a.status != 200 || tokA == "" {
		t.Fatalf("client_credentials with resource: %d %v", a.status, a.body)
	}
	wantAud(t, "resource A", accessClaims(t, tokA), apiA)
	a = cc(url.Values{"audience": {apiB}})
	if a.status != 200 {
		t.Fatalf("client_credentials with audience: %d %v", a.status, a.body)
	}
	wantAud(t, "audience B", accessClaims(t, a.body["access_token"].(string)), apiB)
	for _, bad := range []string{"https://evil.example/api", apiA + "/more", l.base} {
		if a := cc(url.Values{"resource": {bad}}); a.status != 400 || a.body["error"] != "invalid_target" {
			t.Fatalf("unregistered resource %s: %d %v", bad, a.status, a.body)
		}
		if a := cc(url.Values{"audience": {bad}}); a.status != 400 || a.body["error"] != "invalid_target" {
			t.Fatalf("unregistered audience %s: %d %v", bad, a.status, a.body)
		}
	}

	t.Run("registration", func(t *testing.T) {
		for _, rs := range [][]string{{"ftp://x.example/"}, {"https://x.example/#frag"}, {"http://x.example/api"}, {"/relative"}} {
			if a := callJSON(t, l.base+"/register", map[string]any{"client_name": "bad-res", "grant_types": []string{"client_credentials"}, "resources": rs}); a.status != 400 || a.body["error"] != "invalid_client_metadata" {
				t.Fatalf("resources %v: %d %v", rs, a.status, a.body)
			}
		}
	})

	t.Run("authorize and refresh", func(t *testing.T) {
		app := newRP(t, l, "aud-app", map[string]any{"resources": []string{apiA, apiB}})
		b := newBrowser(t)
		// Unregistered: an error redirect, invalid_target.
		p := b.authorize(app.conf.AuthCodeURL(randString(12), oauth2.S256ChallengeOption(oauth2.GenerateVerifier()),
			oauth2.SetAuthURLParam("resource", "https://evil.example/api")), "alice", "correct horse battery", nil)
		if p.url.Query().Get("error") != "invalid_target" {
			t.Fatalf("unregistered resource at authorize: %d %s", p.status, p.url)
		}
		v := oauth2.GenerateVerifier()
		u := app.conf.AuthCodeURL(randString(12), oauth2.S256ChallengeOption(v)) + "&resource=" + url.QueryEscape(apiA) + "&resource=" + url.QueryEscape(apiB)
		p = b.authorize(u, "alice", "correct horse battery", nil)
		code := p.url.Query().Get("code")
		if code == "" {
			t.Fatalf("no code: %d %s", p.status, p.url)
		}
		tok, err := freshConf(app).Exchange(ctx, code, oauth2.VerifierOption(v))
		if err != nil {
			t.Fatal(err)
		}
		wantAud(t, "code exchange", accessClaims(t, tok.AccessToken), apiA, apiB)
		refresh := func(rt string, resource ...string) answer {
			form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "resource": resource}
			return call(t, l.base+"/token", form, app.conf.ClientID, app.conf.ClientSecret, "")
		}
		a := refresh(tok.RefreshToken, apiA)
		if a.status != 200 {
			t.Fatalf("narrowing refresh: %d %v", a.status, a.body)
		}
		wantAud(t, "narrowed", accessClaims(t, a.body["access_token"].(string)), apiA)
		rt := a.body["refresh_token"].(string)
		if a := refresh(rt, "https://evil.example/api"); a.status != 400 || a.body["error"] != "invalid_target" {
			t.Fatalf("widening refresh: %d %v", a.status, a.body)
		}
		a = refresh(rt)
		if a.status != 200 {
			t.Fatalf("refresh after narrowing: %d %v", a.status, a.body)
		}
		wantAud(t, "the grant keeps its audience", accessClaims(t, a.body["access_token"].(string)), apiA, apiB)
	})

	t.Run("TokenVerifier", func(t *testing.T) {
		members := startHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			json.NewEncoder(w).Encode(map[string]any{"members": []any{map[string]any{"issuer": l.base, "jwks_uri": l.base + "/jwks.json"}}})
		}))
		tv := &federation.TokenVerifier{Cloud: members, HTTP: http.DefaultClient}
		if err := tv.Load(ctx); err != nil {
			t.Fatal(err)
		}
		if claims, err := tv.Verify(ctx, tokA, apiA); err != nil || claims["client_id"] != id {
			t.Fatalf("A's token for A: %v %v", claims, err)
		}
		if _, err := tv.Verify(ctx, tokA, apiB); err == nil {
			t.Fatal("A's token accepted by B")
		}
		if _, err := tv.Verify(ctx, tokA, l.base); err == nil {
			t.Fatal("A's token accepted for the issuer as audience")
		}
	})
}

// TestAudienceCloudResources: a resource the cloud lets every client ask
// for (COMMONSID_RESOURCES) is granted to a client that registered none;
// anything else stays invalid_target.
func TestAudienceCloudResources(t *testing.T) {
	t.Parallel()
	const shared = "https://api.commons.example/"
	e := sqliteEnv(t)
	e["COMMONSID_RESOURCES"] = shared
	l := startLive(t, e)
	reg := register(t, context.Background(), l.base, map[string]any{"client_name": "plain-worker", "grant_types": []string{"client_credentials"}, "scope": "jobs"})
	id, secret := reg["client_id"].(string), reg["client_secret"].(string)
	cc := func(resource string) answer {
		return call(t, l.base+"/token", url.Values{"grant_type": {"client_credentials"}, "resource": {resource}}, id, secret, "")
	}
	a := cc(shared)
	if a.status != 200 {
		t.Fatalf("the cloud's resource: %d %v", a.status, a.body)
	}
	wantAud(t, "the cloud's resource", accessClaims(t, a.body["access_token"].(string)), shared)
	if a := cc("https://api.elsewhere.example/"); a.status != 400 || a.body["error"] != "invalid_target" {
		t.Fatalf("a resource neither registered nor the cloud's: %d %v", a.status, a.body)
	}
}
