package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// live is a server started in-process for a test.
type live struct {
	env  env
	base string
}

// startLive runs `commonsid serve` in-process on a free port, with the
// issuer on 127.0.0.1.
func startLive(t *testing.T, e env) *live { return startLiveOn(t, e, "127.0.0.1") }

// startLiveOn is startLive with the issuer on another name of this host.
func startLiveOn(t *testing.T, e env, host string) *live {
	t.Helper()
	port := freePort(t)
	base := "http://" + host + ":" + port
	e["COMMONSID_ADDR"] = "127.0.0.1:" + port
	e["COMMONSID_ISSUER"] = base
	return serveInProcess(t, e, base)
}

// serveInProcess runs serve in-process with the environment e, waits until
// base answers, and stops it when the test ends.
func serveInProcess(t *testing.T, e env, base string) *live {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan result, 1)
	go func() {
		var out, errb bytes.Buffer
		code := runEnv(ctx, []string{"serve"}, strings.NewReader(""), &out, &errb, e.get)
		done <- result{out.String(), errb.String(), code}
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case r := <-done:
			if r.code != 0 {
				t.Errorf("serve exited %d: %s", r.code, r.stderr)
			}
		case <-time.After(15 * time.Second):
			t.Error("serve did not stop")
		}
	})
	waitReady(t, base, time.Minute) // a busy machine, tests in parallel
	return &live{env: e, base: base}
}

// rp is a relying party: go-oidc and x/oauth2, registered through discovery
// and dynamic client registration.
type rp struct {
	provider *oidc.Provider
	conf     *oauth2.Config
	reg      map[string]any
	redirect string
}

func register(t *testing.T, ctx context.Context, base string, meta map[string]any) map[string]any {
	t.Helper()
	b, _ := json.Marshal(meta)
	resp, err := http.Post(base+"/register", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("register: %d %v", resp.StatusCode, out)
	}
	return out
}

var rpHosts atomic.Int64 // tests run in parallel

func newRP(t *testing.T, l *live, name string, extra map[string]any) *rp {
	t.Helper()
	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, l.base)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	var disc struct {
		Registration string `json:"registration_endpoint"`
	}
	if err := provider.Claims(&disc); err != nil || disc.Registration == "" {
		t.Fatalf("discovery has no registration_endpoint: %v", err)
	}
	// Each service on its own loopback host, so each is its own sector.
	redirect := fmt.Sprintf("http://127.0.0.%d:9/%s/callback", rpHosts.Add(1)%250+1, name)
	meta := map[string]any{
		"client_name": name, "redirect_uris": []string{redirect},
		"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
		"source_code_uri": "https://code.example.org/" + name, "policy_uri": "https://example.org/" + name + "/privacy",
	}
	for k, v := range extra {
		meta[k] = v
	}
	reg := register(t, ctx, l.base, meta)
	secret, _ := reg["client_secret"].(string)
	return &rp{provider: provider, reg: reg, redirect: redirect, conf: &oauth2.Config{
		ClientID: reg["client_id"].(string), ClientSecret: secret, Endpoint: provider.Endpoint(),
		RedirectURL: redirect, Scopes: []string{oidc.ScopeOpenID, "profile", "email", "offline_access"},
	}}
}

// browser is an HTTP client with a cookie jar that submits our forms and
// stops at the relying party's redirect URI.
type browser struct {
	t      *testing.T
	client *http.Client
	pages  []string // paths of the pages seen, in order
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	b := &browser{t: t}
	b.client = &http.Client{Jar: jar, Timeout: 20 * time.Second, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if req.URL.Port() == "9" {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	return b
}

type page struct {
	status int
	url    *url.URL
	body   string
	header http.Header
}

func (b *browser) do(req *http.Request) *page {
	b.t.Helper()
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	b.pages = append(b.pages, resp.Request.URL.Path)
	p := &page{status: resp.StatusCode, url: resp.Request.URL, body: string(body), header: resp.Header}
	if loc := resp.Header.Get("Location"); resp.StatusCode/100 == 3 && loc != "" {
		p.url, _ = resp.Request.URL.Parse(loc)
	}
	return p
}

func (b *browser) get(u string) *page {
	req, _ := http.NewRequest("GET", u, nil)
	return b.do(req)
}

func (b *browser) post(u string, form url.Values) *page {
	req, _ := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var inputRE = regexp.MustCompile(`<input[^>]*>`)
var attrRE = regexp.MustCompile(`(\w+)="([^"]*)"`)

// formValues returns the hidden and checked inputs of a page, as a browser
// would submit them.
func formValues(body string) url.Values {
	v := url.Values{}
	for _, in := range inputRE.FindAllString(body, -1) {
		attrs := map[string]string{}
		for _, m := range attrRE.FindAllStringSubmatch(in, -1) {
			attrs[m[1]] = html.UnescapeString(m[2])
		}
		switch attrs["type"] {
		case "hidden":
			v.Add(attrs["name"], attrs["value"])
		case "checkbox", "radio":
			if strings.Contains(in, " checked") {
				v.Add(attrs["name"], attrs["value"])
			}
		}
	}
	return v
}

// login follows an authorization URL through the login and consent pages
// and returns the redirect to the relying party.
func (b *browser) authorize(authURL, user, password string, consent func(url.Values)) *page {
	b.t.Helper()
	p := b.get(authURL)
	if p.url.Path == "/login" {
		form := formValues(p.body)
		form.Set("username", user)
		form.Set("password", password)
		p = b.post(p.url.Scheme+"://"+p.url.Host+"/login", form)
	}
	return b.answerConsent(p, consent)
}

// answerConsent allows on a consent page (after consent edits the form) and
// returns where that leads; any other page is returned as it is.
func (b *browser) answerConsent(p *page, consent func(url.Values)) *page {
	b.t.Helper()
	if p.url.Path != "/consent" {
		return p
	}
	if p.status != 200 {
		b.t.Fatalf("consent page: %d %s", p.status, p.body)
	}
	form := formValues(p.body)
	form.Set("decision", "allow")
	if consent != nil {
		consent(form)
	}
	return b.post(p.url.Scheme+"://"+p.url.Host+"/consent", form)
}

func randString(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func postForm(t *testing.T, u string, form url.Values, user, pass string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

// TestRelyingParty: a real relying party registers through discovery and
// DCR, runs code + PKCE through the real pages, verifies the ID token,
// calls UserInfo, refreshes, revokes and introspects; a second service then
// signs the person in without a password.
func TestRelyingParty(t *testing.T) {
	t.Parallel()
	for name, mk := range map[string]func(testing.TB) env{"sqlite": sqliteEnv, "postgres": postgresEnv} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			l := startLive(t, mk(t))
			did := lastLine(l.env.must(t, "correct horse battery\n", "user", "create", "--username", "alice",
				"--email", "alice@example.org", "--name", "Alice Liddell", "--password-stdin"))
			app := newRP(t, l, "notes", nil)
			b := newBrowser(t)

			state, nonce, verifier := randString(16), randString(16), oauth2.GenerateVerifier()
			authURL := app.conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce))
			var consentForm url.Values
			p := b.authorize(authURL, "alice", "correct horse battery", func(f url.Values) {
				consentForm = f
				// Share name and handle, not the email address.
				f.Del("claim")
				f.Add("claim", "name")
				f.Add("claim", "preferred_username")
			})
			if p.status != http.StatusSeeOther || !strings.HasPrefix(p.url.String(), app.redirect) {
				t.Fatalf("expected a redirect to the RP, got %d %s\n%s", p.status, p.url, p.body)
			}
			if got := strings.Join(b.pages, " "); !strings.Contains(got, "/login") || !strings.Contains(got, "/consent") {
				t.Fatalf("pages seen: %s", got)
			}
			if consentForm.Get("challenge") == "" {
				t.Fatal("consent form had no challenge")
			}
			if p.url.Query().Get("state") != state {
				t.Fatalf("state = %q", p.url.Query().Get("state"))
			}
			code := p.url.Query().Get("code")
			tok, err := app.conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
			if err != nil {
				t.Fatalf("exchange: %v", err)
			}
			rawID, _ := tok.Extra("id_token").(string)
			idt, err := app.provider.Verifier(&oidc.Config{ClientID: app.conf.ClientID}).Verify(ctx, rawID)
			if err != nil {
				t.Fatalf("verify ID token: %v", err)
			}
			if idt.Nonce != nonce {
				t.Fatalf("nonce = %q", idt.Nonce)
			}
			if idt.Subject == "" || idt.Subject == did || strings.Contains(idt.Subject, "did:") {
				t.Fatalf("sub %q is not pairwise", idt.Subject)
			}
			var idClaims map[string]any
			idt.Claims(&idClaims)
			if _, ok := idClaims["auth_time"]; !ok {
				t.Fatal("ID token lacks auth_time")
			}
			if idClaims["name"] != "Alice Liddell" || idClaims["preferred_username"] != "alice" {
				t.Fatalf("ID token lacks the ticked profile claims: %v", idClaims)
			}
			if _, ok := idClaims["email"]; ok {
				t.Fatal("the ID token carries the unticked email")
			}

			// The access token is an RFC 9068 JWT.
			hdr, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok.AccessToken, ".")[0])
			var h map[string]any
			json.Unmarshal(hdr, &h)
			if h["typ"] != "at+jwt" || h["alg"] != "ES256" || h["kid"] == nil {
				t.Fatalf("access token header %v", h)
			}
			payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok.AccessToken, ".")[1])
			var at map[string]any
			json.Unmarshal(payload, &at)
			for _, c := range []string{"iss", "exp", "aud", "sub", "client_id", "iat", "jti", "scope"} {
				if at[c] == nil {
					t.Errorf("access token lacks %s: %v", c, at)
				}
			}
			if at["sub"] != idt.Subject || at["client_id"] != app.conf.ClientID {
				t.Fatalf("access token sub/client_id = %v/%v", at["sub"], at["client_id"])
			}

			ui, err := app.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
			if err != nil {
				t.Fatalf("userinfo: %v", err)
			}
			var uc map[string]any
			ui.Claims(&uc)
			if ui.Subject != idt.Subject || uc["name"] != "Alice Liddell" || uc["preferred_username"] != "alice" {
				t.Fatalf("userinfo = %v", uc)
			}
			if _, ok := uc["email"]; ok {
				t.Fatalf("userinfo released the unticked email: %v", uc)
			}

			// Introspection, as the client.
			st, in := postForm(t, l.base+"/introspect", url.Values{"token": {tok.AccessToken}}, app.conf.ClientID, app.conf.ClientSecret)
			if st != 200 || in["active"] != true || in["sub"] != idt.Subject || in["client_id"] != app.conf.ClientID {
				t.Fatalf("introspect: %d %v", st, in)
			}

			// Refresh: rotation gives a new refresh token; reusing the old
			// one fails and revokes the chain.
			old := tok.RefreshToken
			if old == "" {
				t.Fatal("no refresh token with offline_access")
			}
			st, rt := postForm(t, l.base+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {old}}, app.conf.ClientID, app.conf.ClientSecret)
			if st != 200 || rt["refresh_token"] == old || rt["access_token"] == nil {
				t.Fatalf("refresh: %d %v", st, rt)
			}
			newRefresh := rt["refresh_token"].(string)
			newAccess := rt["access_token"].(string)
			st, e := postForm(t, l.base+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {old}}, app.conf.ClientID, app.conf.ClientSecret)
			if st != 400 || e["error"] != "invalid_grant" {
				t.Fatalf("reused refresh token: %d %v", st, e)
			}
			st, e = postForm(t, l.base+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {newRefresh}}, app.conf.ClientID, app.conf.ClientSecret)
			if st != 400 || e["error"] != "invalid_grant" {
				t.Fatalf("refresh token of a revoked chain: %d %v", st, e)
			}
			if st, in := postForm(t, l.base+"/introspect", url.Values{"token": {newAccess}}, app.conf.ClientID, app.conf.ClientSecret); st != 200 || in["active"] != false {
				t.Fatalf("access token of a revoked chain still active: %v", in)
			}

			// A second service: single sign-on, no password asked.
			b.pages = nil
			other := newRP(t, l, "calendar", nil)
			v2 := oauth2.GenerateVerifier()
			p = b.authorize(other.conf.AuthCodeURL(randString(12), oauth2.S256ChallengeOption(v2)), "", "", nil)
			if strings.Contains(strings.Join(b.pages, " "), "/login") {
				t.Fatalf("second service asked for a password: %v", b.pages)
			}
			tok2, err := other.conf.Exchange(ctx, p.url.Query().Get("code"), oauth2.VerifierOption(v2))
			if err != nil {
				t.Fatalf("second exchange: %v", err)
			}
			idt2, err := other.provider.Verifier(&oidc.Config{ClientID: other.conf.ClientID}).Verify(ctx, tok2.Extra("id_token").(string))
			if err != nil {
				t.Fatal(err)
			}
			if idt2.Subject == idt.Subject {
				t.Fatal("two unrelated services see the same pairwise sub")
			}

			// Consent is remembered: a third login to the first service goes straight through.
			b.pages = nil
			v3 := oauth2.GenerateVerifier()
			p = b.authorize(app.conf.AuthCodeURL(randString(12), oauth2.S256ChallengeOption(v3)), "", "", nil)
			if got := strings.Join(b.pages, " "); strings.Contains(got, "/consent") || strings.Contains(got, "/login") {
				t.Fatalf("remembered consent asked again: %s", got)
			}
			tok3, err := app.conf.Exchange(ctx, p.url.Query().Get("code"), oauth2.VerifierOption(v3))
			if err != nil {
				t.Fatal(err)
			}

			// Revocation (RFC 7009) makes introspection say inactive and UserInfo refuse.
			if st, _ := postForm(t, l.base+"/revoke", url.Values{"token": {tok3.AccessToken}}, app.conf.ClientID, app.conf.ClientSecret); st != 200 {
				t.Fatalf("revoke: %d", st)
			}
			if _, in := postForm(t, l.base+"/introspect", url.Values{"token": {tok3.AccessToken}}, app.conf.ClientID, app.conf.ClientSecret); in["active"] != false {
				t.Fatalf("revoked token introspects as %v", in)
			}
			if _, err := app.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok3)); err == nil || !strings.Contains(err.Error(), "401") {
				t.Fatalf("userinfo with a revoked token: %v", err)
			}
		})
	}
}
