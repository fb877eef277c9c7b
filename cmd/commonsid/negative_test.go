package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/onecommons/commonsid/privacy"
)

// flow runs a first authorization to the point of the code.
func codeFor(t *testing.T, b *browser, app *rp, verifier string, extra ...oauth2.AuthCodeOption) string {
	t.Helper()
	opts := append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier)}, extra...)
	p := b.authorize(app.conf.AuthCodeURL(randString(12), opts...), "alice", "correct horse battery", nil)
	code := p.url.Query().Get("code")
	if code == "" {
		t.Fatalf("no code: %d %s %s", p.status, p.url, p.body)
	}
	return code
}

func exchange(t *testing.T, l *live, app *rp, form url.Values) (int, map[string]any) {
	t.Helper()
	form.Set("redirect_uri", app.redirect)
	if form.Get("grant_type") == "" {
		form.Set("grant_type", "authorization_code")
	}
	return postForm(t, l.base+"/token", form, app.conf.ClientID, app.conf.ClientSecret)
}

// TestNegative: each misuse is refused with the right OAuth error.
func TestNegative(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := startLive(t, sqliteEnv(t))
	l.env.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--email", "alice@example.org", "--name", "Alice", "--password-stdin")
	app := newRP(t, l, "neg", nil)
	b := newBrowser(t)

	t.Run("PKCE mismatch", func(t *testing.T) {
		code := codeFor(t, b, app, oauth2.GenerateVerifier())
		st, e := exchange(t, l, app, url.Values{"code": {code}, "code_verifier": {oauth2.GenerateVerifier()}})
		if st != 400 || e["error"] != "invalid_grant" {
			t.Fatalf("%d %v", st, e)
		}
	})
	t.Run("plain PKCE refused", func(t *testing.T) {
		v := oauth2.GenerateVerifier()
		u := app.conf.AuthCodeURL("state-plain", oauth2.SetAuthURLParam("code_challenge", v), oauth2.SetAuthURLParam("code_challenge_method", "plain"))
		p := b.get(u)
		if !strings.HasPrefix(p.url.String(), app.redirect) || p.url.Query().Get("error") != "invalid_request" {
			t.Fatalf("plain PKCE: %d %s", p.status, p.url)
		}
	})
	t.Run("code reuse revokes its tokens", func(t *testing.T) {
		v := oauth2.GenerateVerifier()
		code := codeFor(t, b, app, v)
		st, tok := exchange(t, l, app, url.Values{"code": {code}, "code_verifier": {v}})
		if st != 200 {
			t.Fatalf("first use: %d %v", st, tok)
		}
		st, e := exchange(t, l, app, url.Values{"code": {code}, "code_verifier": {v}})
		if st != 400 || e["error"] != "invalid_grant" {
			t.Fatalf("second use: %d %v", st, e)
		}
		_, in := postForm(t, l.base+"/introspect", url.Values{"token": {tok["access_token"].(string)}}, app.conf.ClientID, app.conf.ClientSecret)
		if in["active"] != false {
			t.Fatalf("access token from a replayed code still active: %v", in)
		}
		st, e = exchange(t, l, app, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}})
		if st != 400 || e["error"] != "invalid_grant" {
			t.Fatalf("refresh token from a replayed code: %d %v", st, e)
		}
	})
	t.Run("redirect URI mismatch shows a page and never redirects", func(t *testing.T) {
		bad := *app.conf
		bad.RedirectURL = "http://127.0.0.1:9/evil"
		p := b.get(bad.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		if p.status != 400 || p.url.Port() == "9" || !strings.Contains(p.body, "<h1>") {
			t.Fatalf("%d %s", p.status, p.url)
		}
	})
	t.Run("unknown client shows a page", func(t *testing.T) {
		p := b.get(l.base + "/authorize?response_type=code&client_id=nope&redirect_uri=" + url.QueryEscape(app.redirect) + "&scope=openid&state=abcdefgh")
		if p.status != 400 || p.url.Port() == "9" {
			t.Fatalf("%d %s", p.status, p.url)
		}
	})
	t.Run("wrong client secret", func(t *testing.T) {
		v := oauth2.GenerateVerifier()
		code := codeFor(t, b, app, v)
		st, e := postForm(t, l.base+"/token", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {v}, "redirect_uri": {app.redirect}},
			app.conf.ClientID, strings.Repeat("x", 43))
		if st != 401 || e["error"] != "invalid_client" {
			t.Fatalf("%d %v", st, e)
		}
	})
	t.Run("unknown scope", func(t *testing.T) {
		bad := *app.conf
		bad.Scopes = []string{"openid", "launch_missiles"}
		p := b.get(bad.AuthCodeURL("state-scope", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		if p.url.Query().Get("error") != "invalid_scope" {
			t.Fatalf("%d %s", p.status, p.url)
		}
	})
	t.Run("unsigned and foreign-key tokens", func(t *testing.T) {
		v := oauth2.GenerateVerifier()
		code := codeFor(t, b, app, v)
		_, tok := exchange(t, l, app, url.Values{"code": {code}, "code_verifier": {v}})
		good := tok["access_token"].(string)
		parts := strings.Split(good, ".")
		none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"at+jwt"}`)) + "." + parts[1] + "."
		foreignKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		var hdr map[string]any
		h, _ := base64.RawURLEncoding.DecodeString(parts[0])
		json.Unmarshal(h, &hdr)
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		sig, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: foreignKey}, (&jose.SignerOptions{}).WithHeader("kid", hdr["kid"]).WithType("at+jwt"))
		obj, _ := sig.Sign(payload)
		foreign, _ := obj.CompactSerialize()
		for name, bad := range map[string]string{"alg none": none, "foreign key": foreign} {
			req, _ := http.NewRequest("GET", l.base+"/userinfo", nil)
			req.Header.Set("Authorization", "Bearer "+bad)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 401 {
				t.Errorf("%s: userinfo %d", name, resp.StatusCode)
			}
			if _, in := postForm(t, l.base+"/introspect", url.Values{"token": {bad}}, app.conf.ClientID, app.conf.ClientSecret); in["active"] != false {
				t.Errorf("%s: introspection %v", name, in)
			}
			p := b.get(l.base + "/logout?id_token_hint=" + url.QueryEscape(bad))
			if p.status != 400 {
				t.Errorf("%s as id_token_hint: %d", name, p.status)
			}
		}
		if p := b.get(l.base + "/logout?id_token_hint=" + url.QueryEscape(good)); p.status != 400 {
			t.Errorf("an access token as id_token_hint: %d", p.status)
		}
	})
	t.Run("never-shared claim requested via claims", func(t *testing.T) {
		cfg := &Config{DataDir: l.env["COMMONSID_DATA"], Issuer: l.base, LogFormat: "text", LogLevel: "warn"}
		cl, err := openCloud(ctx, cfg, newLogger(cfg, io.Discard), false)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		a, _ := cl.accounts.Lookup(ctx, "alice")
		// A fresh service; alice ticks email on the consent page...
		svc := newRP(t, l, "claims", nil)
		v := oauth2.GenerateVerifier()
		claimsParam := `{"userinfo":{"email":{"essential":true}},"id_token":{"email":null}}`
		p := b.authorize(svc.conf.AuthCodeURL("state-claims", oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam("claims", claimsParam)), "alice", "correct horse battery", nil)
		code := p.url.Query().Get("code")
		tok, err := svc.conf.Exchange(ctx, code, oauth2.VerifierOption(v))
		if err != nil {
			t.Fatal(err)
		}
		ui, _ := svc.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		var uc map[string]any
		ui.Claims(&uc)
		if uc["email"] != "alice@example.org" {
			t.Fatalf("before: email not released although consented: %v", uc)
		}
		idt, _ := svc.provider.Verifier(&oidc.Config{ClientID: svc.conf.ClientID}).Verify(ctx, tok.Extra("id_token").(string))
		var ic map[string]any
		idt.Claims(&ic)
		if ic["email"] != "alice@example.org" {
			t.Fatalf("claims parameter id_token email not in the ID token: %v", ic)
		}
		// ...then sets email to never: the next issuance and UserInfo drop it.
		if err := cl.db.PutSettings(ctx, a.DID, &privacy.Settings{Version: 1, SubjectMode: "pairwise", ForkPolicy: "ask",
			ClaimPolicy: map[string]string{"email": privacy.PolicyNever}}, time.Now()); err != nil {
			t.Fatal(err)
		}
		ui, _ = svc.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		uc = nil
		ui.Claims(&uc)
		if _, ok := uc["email"]; ok {
			t.Fatalf("never-shared email released by UserInfo: %v", uc)
		}
		// A refresh issues a new ID token without it too.
		st, rt := postForm(t, l.base+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, svc.conf.ClientID, svc.conf.ClientSecret)
		if st != 200 {
			t.Fatalf("refresh: %d %v", st, rt)
		}
		idr, err := svc.provider.Verifier(&oidc.Config{ClientID: svc.conf.ClientID}).Verify(ctx, rt["id_token"].(string))
		if err != nil {
			t.Fatal(err)
		}
		ic = nil
		idr.Claims(&ic)
		if _, ok := ic["email"]; ok {
			t.Fatalf("never-shared email in the refreshed ID token: %v", ic)
		}
		v2 := oauth2.GenerateVerifier()
		p = b.authorize(svc.conf.AuthCodeURL("state-claims2", oauth2.S256ChallengeOption(v2), oauth2.SetAuthURLParam("claims", claimsParam)), "", "", nil)
		tok2, err := svc.conf.Exchange(ctx, p.url.Query().Get("code"), oauth2.VerifierOption(v2))
		if err != nil {
			t.Fatal(err)
		}
		idt2, _ := svc.provider.Verifier(&oidc.Config{ClientID: svc.conf.ClientID}).Verify(ctx, tok2.Extra("id_token").(string))
		ic = nil
		idt2.Claims(&ic)
		if _, ok := ic["email"]; ok {
			t.Fatalf("never-shared email in the ID token: %v", ic)
		}
	})
	t.Run("prompt none", func(t *testing.T) {
		fresh := newBrowser(t)
		p := fresh.get(app.conf.AuthCodeURL("state-none1", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("prompt", "none")))
		if p.url.Query().Get("error") != "login_required" {
			t.Fatalf("no session: %s", p.url)
		}
		other := newRP(t, l, "noconsent", nil)
		p = b.get(other.conf.AuthCodeURL("state-none2", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("prompt", "none")))
		if p.url.Query().Get("error") != "consent_required" {
			t.Fatalf("no consent: %s", p.url)
		}
		v := oauth2.GenerateVerifier()
		p = b.get(app.conf.AuthCodeURL("state-none3", oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam("prompt", "none")))
		if p.url.Query().Get("code") == "" {
			t.Fatalf("session and consent: %s", p.url)
		}
	})
	t.Run("prompt login and max_age force a fresh sign-in", func(t *testing.T) {
		for _, opt := range []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("prompt", "login"), oauth2.SetAuthURLParam("max_age", "0")} {
			b.pages = nil
			v := oauth2.GenerateVerifier()
			before := time.Now().Add(-time.Second).Unix()
			p := b.authorize(app.conf.AuthCodeURL("state-login", oauth2.S256ChallengeOption(v), opt), "alice", "correct horse battery", nil)
			if !strings.Contains(strings.Join(b.pages, " "), "/login") {
				t.Fatalf("no login page: %v", b.pages)
			}
			tok, err := app.conf.Exchange(ctx, p.url.Query().Get("code"), oauth2.VerifierOption(v))
			if err != nil {
				t.Fatal(err)
			}
			idt, err := app.provider.Verifier(&oidc.Config{ClientID: app.conf.ClientID}).Verify(ctx, tok.Extra("id_token").(string))
			if err != nil {
				t.Fatal(err)
			}
			var c struct {
				AuthTime int64 `json:"auth_time"`
			}
			idt.Claims(&c)
			if c.AuthTime < before {
				t.Fatalf("auth_time %d is older than the forced sign-in (%d)", c.AuthTime, before)
			}
		}
	})
	t.Run("deny returns access_denied", func(t *testing.T) {
		other := newRP(t, l, "denied", nil)
		p := b.authorize(other.conf.AuthCodeURL("state-deny", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), "", "", func(f url.Values) {
			f.Set("decision", "deny")
		})
		if p.url.Query().Get("error") != "access_denied" || p.url.Query().Get("state") != "state-deny" {
			t.Fatalf("%s", p.url)
		}
	})
	t.Run("expired code", func(t *testing.T) {
		e := sqliteEnv(t)
		e["COMMONSID_CODE_TTL"] = "1s"
		l2 := startLive(t, e)
		l2.env.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--password-stdin")
		app2 := newRP(t, l2, "expiry", nil)
		b2 := newBrowser(t)
		v := oauth2.GenerateVerifier()
		code := codeFor(t, b2, app2, v)
		time.Sleep(2100 * time.Millisecond)
		st, er := exchange(t, l2, app2, url.Values{"code": {code}, "code_verifier": {v}})
		if st != 400 || er["error"] != "invalid_grant" {
			t.Fatalf("%d %v", st, er)
		}
	})
	t.Run("public client needs PKCE", func(t *testing.T) {
		pub := newRP(t, l, "spa", map[string]any{"token_endpoint_auth_method": "none"})
		if pub.conf.ClientSecret != "" {
			t.Fatal("a public client got a secret")
		}
		p := b.get(pub.conf.AuthCodeURL("state-nopkce"))
		if p.url.Query().Get("error") != "invalid_request" {
			t.Fatalf("public client without PKCE: %s", p.url)
		}
		v := oauth2.GenerateVerifier()
		code := codeFor(t, b, pub, v)
		if _, err := pub.conf.Exchange(ctx, code, oauth2.VerifierOption(v)); err != nil {
			t.Fatalf("public client with PKCE: %v", err)
		}
	})
	t.Run("disabling an account revokes its tokens", func(t *testing.T) {
		l.env.must(t, "correct horse battery\n", "user", "create", "--username", "dora", "--password-stdin")
		svc := newRP(t, l, "dora-app", nil)
		v := oauth2.GenerateVerifier()
		p := newBrowser(t).authorize(svc.conf.AuthCodeURL(randString(12), oauth2.S256ChallengeOption(v)), "dora", "correct horse battery", nil)
		tok, err := svc.conf.Exchange(ctx, p.url.Query().Get("code"), oauth2.VerifierOption(v))
		if err != nil {
			t.Fatal(err)
		}
		l.env.must(t, "", "user", "disable", "dora")
		if _, in := postForm(t, l.base+"/introspect", url.Values{"token": {tok.AccessToken}}, svc.conf.ClientID, svc.conf.ClientSecret); in["active"] != false {
			t.Fatalf("a disabled account's token is active: %v", in)
		}
		if st, e := postForm(t, l.base+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, svc.conf.ClientID, svc.conf.ClientSecret); st != 400 || e["error"] != "invalid_grant" {
			t.Fatalf("a disabled account refreshed: %d %v", st, e)
		}
	})
	t.Run("client credentials", func(t *testing.T) {
		reg := register(t, ctx, l.base, map[string]any{"client_name": "worker", "grant_types": []string{"client_credentials"}, "scope": "reports.read"})
		id, secret := reg["client_id"].(string), reg["client_secret"].(string)
		if len(secret) < 43 {
			t.Fatalf("secret %q shorter than 256 bits", secret)
		}
		st, tok := postForm(t, l.base+"/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"reports.read"}}, id, secret)
		if st != 200 || tok["access_token"] == nil {
			t.Fatalf("%d %v", st, tok)
		}
		st, e := postForm(t, l.base+"/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"openid email"}}, id, secret)
		if st != 400 || e["error"] != "invalid_scope" {
			t.Fatalf("person scopes for a client: %d %v", st, e)
		}
		st, e = postForm(t, l.base+"/token", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"x"}}, id, secret)
		if st != 400 || (e["error"] != "unsupported_grant_type" && e["error"] != "invalid_request") {
			t.Fatalf("password grant: %d %v", st, e)
		}
	})
}

// TestRegistration: RFC 7591 validation and RFC 7592 management.
func TestRegistration(t *testing.T) {
	t.Parallel()
	l := startLive(t, sqliteEnv(t))
	post := func(meta map[string]any) (int, map[string]any) {
		b, _ := json.Marshal(meta)
		resp, err := http.Post(l.base+"/register", "application/json", strings.NewReader(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	for name, c := range map[string]struct {
		meta map[string]any
		want string
	}{
		"http redirect off loopback":   {map[string]any{"redirect_uris": []string{"http://app.example.org/cb"}}, "invalid_redirect_uri"},
		"fragment":                     {map[string]any{"redirect_uris": []string{"https://app.example.org/cb#x"}}, "invalid_redirect_uri"},
		"no redirect for code":         {map[string]any{"client_name": "x"}, "invalid_redirect_uri"},
		"implicit":                     {map[string]any{"redirect_uris": []string{"https://a.example/cb"}, "response_types": []string{"token"}}, "invalid_client_metadata"},
		"short secret":                 {map[string]any{"redirect_uris": []string{"https://a.example/cb"}, "client_secret": "short"}, "invalid_client_metadata"},
		"alg none":                     {map[string]any{"redirect_uris": []string{"https://a.example/cb"}, "id_token_signed_response_alg": "none"}, "invalid_client_metadata"},
		"two hosts, no sector":         {map[string]any{"redirect_uris": []string{"https://a.example/cb", "https://b.example/cb"}}, "invalid_client_metadata"},
		"unknown parent":               {map[string]any{"redirect_uris": []string{"https://a.example/cb"}, "forked_from": "nope"}, "invalid_client_metadata"},
		"private_key_jwt without keys": {map[string]any{"redirect_uris": []string{"https://a.example/cb"}, "token_endpoint_auth_method": "private_key_jwt"}, "invalid_client_metadata"},
	} {
		st, out := post(c.meta)
		if st != 400 || out["error"] != c.want {
			t.Errorf("%s: %d %v, want %s", name, st, out, c.want)
		}
	}
	// sector_identifier_uri is fetched and must list the redirect URIs.
	sectorSrv := http.NewServeMux()
	sectorSrv.HandleFunc("/sector.json", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`["https://a.example/cb","https://b.example/cb"]`))
	})
	ts := startHTTP(t, sectorSrv)
	st, out := post(map[string]any{"redirect_uris": []string{"https://a.example/cb", "https://b.example/cb"}, "sector_identifier_uri": ts + "/sector.json"})
	if st != 201 {
		t.Fatalf("with a sector_identifier_uri: %d %v", st, out)
	}
	st, out = post(map[string]any{"redirect_uris": []string{"https://c.example/cb"}, "sector_identifier_uri": ts + "/sector.json"})
	if st != 400 || !strings.Contains(out["error_description"].(string), "does not list") {
		t.Fatalf("redirect not in sector document: %d %v", st, out)
	}

	// RFC 7592 read, update, delete.
	st, reg := post(map[string]any{"client_name": "managed", "redirect_uris": []string{"https://m.example/cb"}, "source_code_uri": "https://code.example/m"})
	if st != 201 {
		t.Fatal(st, reg)
	}
	uri, tok := reg["registration_client_uri"].(string), reg["registration_access_token"].(string)
	do := func(method, token string, body any) (int, map[string]any) {
		var r io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			r = strings.NewReader(string(b))
		}
		req, _ := http.NewRequest(method, uri, r)
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	if st, _ := do("GET", "wrong", nil); st != 401 {
		t.Fatalf("read with a wrong token: %d", st)
	}
	st, got := do("GET", tok, nil)
	if st != 200 || got["client_name"] != "managed" || got["source_code_uri"] != "https://code.example/m" || got["client_secret"] != nil {
		t.Fatalf("read: %d %v", st, got)
	}
	st, got = do("PUT", tok, map[string]any{"client_id": reg["client_id"], "client_name": "renamed", "redirect_uris": []string{"https://m.example/cb2"}})
	if st != 200 || got["client_name"] != "renamed" {
		t.Fatalf("update: %d %v", st, got)
	}
	if st, _ := do("DELETE", tok, nil); st != 204 {
		t.Fatalf("delete: %d", st)
	}
	if st, _ := do("GET", tok, nil); st != 401 {
		t.Fatalf("read after delete: %d", st)
	}
}

func startHTTP(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := &http.Server{Handler: h}
	port := freePort(t)
	ln, err := netListen("127.0.0.1:" + port)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://127.0.0.1:" + port
}

func netListen(addr string) (netListener, error) { return net.Listen("tcp", addr) }

type netListener = net.Listener

// TestRateLimits: login, sign-up and registration answer 429 with
// Retry-After past their limits (scaled down here to keep the test short).
func TestRateLimits(t *testing.T) {
	e := sqliteEnv(t)
	e["COMMONSID_RATE_LIMIT"] = "0.1" // login: 1 try per account per 5 min, 3 per IP per minute; sign-up and registration: 2 per IP per hour
	l := startLive(t, e)
	l.env.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--password-stdin")
	login := func(user string) *http.Response {
		resp, err := http.PostForm(l.base+"/login", url.Values{"username": {user}, "password": {"wrong password"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := login("alice"); r.StatusCode != 401 {
		t.Fatalf("first failed login: %d", r.StatusCode)
	}
	r := login("ALICE")
	if r.StatusCode != 429 || r.Header.Get("Retry-After") == "" {
		t.Fatalf("second try on the same account: %d, Retry-After %q", r.StatusCode, r.Header.Get("Retry-After"))
	}
	for _, u := range []string{"bob", "carol"} {
		login(u)
	}
	if r := login("dave"); r.StatusCode != 429 {
		t.Fatalf("fourth login from one IP in a minute: %d", r.StatusCode)
	}
	for i := range 3 {
		resp, err := http.PostForm(l.base+"/signup", url.Values{"handle": {"rate" + string(rune('a'+i))}, "password": {"correct horse battery"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := map[bool]int{true: 429, false: 200}[i == 2]; resp.StatusCode != want {
			t.Fatalf("sign-up %d: %d, want %d", i+1, resp.StatusCode, want)
		}
	}
	for i := range 3 {
		st, out := 0, map[string]any{}
		b, _ := json.Marshal(map[string]any{"redirect_uris": []string{"https://r.example/cb"}})
		resp, err := http.Post(l.base+"/register", "application/json", strings.NewReader(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		st = resp.StatusCode
		json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if i == 2 && (st != 429 || resp.Header.Get("Retry-After") == "" || out["error"] == nil) {
			t.Fatalf("third registration: %d %v", st, out)
		}
	}
}

// TestLoginDoesNotRevealAccounts: an unknown handle and a wrong password get
// the same answer.
func TestLoginDoesNotRevealAccounts(t *testing.T) {
	t.Parallel()
	l := startLive(t, sqliteEnv(t))
	l.env.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--password-stdin")
	answer := func(user string) (int, string) {
		resp, err := http.PostForm(l.base+"/login", url.Values{"username": {user}, "password": {"not the password"}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.ReplaceAll(string(b), user, "USER")
	}
	s1, b1 := answer("alice")
	s2, b2 := answer("nobody")
	if s1 != 401 || s1 != s2 || b1 != b2 {
		t.Fatalf("known %d and unknown %d handles answered differently:\n%s\n---\n%s", s1, s2, b1, b2)
	}
}
