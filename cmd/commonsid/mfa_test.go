package main

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/pquerna/otp/totp"
	"golang.org/x/oauth2"
)

var (
	totpKeyRE      = regexp.MustCompile(`<code id="mfa-key">([A-Z2-7]+)</code>`)
	recoveryCodeRE = regexp.MustCompile(`<li><code>([2-9A-Z]{5}-[2-9A-Z]{5})</code></li>`)
)

func totpCode(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCode(secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// signedIn reports whether the browser holds a session.
func (b *browser) signedIn(base string) bool {
	p := b.get(base + "/account/")
	return p.status == http.StatusOK && p.url.Path == "/account/"
}

// idTokenClaims runs an authorization code flow in b (which answers the
// login with password and, when asked, a second factor from answer) and
// returns the ID token's claims.
func idTokenClaims(t *testing.T, b *browser, app *rp, password string, secondFactor func(*page) *page, opts ...oauth2.AuthCodeOption) map[string]any {
	t.Helper()
	ctx := context.Background()
	verifier := oauth2.GenerateVerifier()
	authURL := app.conf.AuthCodeURL(randString(16), append(opts, oauth2.S256ChallengeOption(verifier), oidc.Nonce(randString(16)))...)
	p := b.authorize(authURL, "alice", password, nil)
	if p.url.Path == "/login/second-factor" {
		p = b.answerConsent(secondFactor(p), nil)
	}
	if p.status != http.StatusSeeOther || !strings.HasPrefix(p.url.String(), app.redirect) {
		t.Fatalf("expected a redirect to the service, got %d %s\n%s", p.status, p.url, p.body)
	}
	tok, err := app.conf.Exchange(ctx, p.url.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := app.provider.Verifier(&oidc.Config{ClientID: app.conf.ClientID}).Verify(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	idt.Claims(&c)
	return c
}

func amrOf(c map[string]any) []string {
	var out []string
	for _, v := range c["amr"].([]any) {
		out = append(out, v.(string))
	}
	return out
}

// TestSecondFactors: a person sets up an authenticator app (codes computed
// from the key the page shows), a service asking acr_values=mfa gets a
// sign-in with the second factor and an ID token that says so, a person
// who requires a second factor gets no session from the password alone,
// wrong codes are refused and bounded, and a recovery code works once.
func TestSecondFactors(t *testing.T) {
	t.Parallel()
	l := startLive(t, sqliteEnv(t))
	const pw = "correct horse battery"
	l.env.must(t, pw+"\n", "user", "create", "--username", "alice", "--email", "alice@example.org", "--password-stdin")
	base := l.base

	// Enrolment.
	b := newBrowser(t)
	if p := b.signIn(base, "alice", pw); !strings.HasPrefix(p.url.Path, "/account") || !b.signedIn(base) {
		t.Fatalf("sign-in without a second factor: %d %s", p.status, p.url)
	}
	if p := b.post(base+"/account/mfa/totp/begin", url.Values{"password": {"wrong password"}}); p.status != http.StatusForbidden {
		t.Fatalf("enrolment with a wrong password: %d", p.status)
	}
	p := b.post(base+"/account/mfa/totp/begin", url.Values{"password": {pw}})
	m := totpKeyRE.FindStringSubmatch(p.body)
	if p.status != http.StatusOK || m == nil || !strings.Contains(p.body, `src="data:image/png;base64,`) {
		t.Fatalf("enrolment page: %d %s\n%s", p.status, p.url, p.body)
	}
	if !strings.Contains(p.header.Get("Content-Security-Policy"), "img-src 'self' https: data:") {
		t.Fatalf("the QR code's data: URL is not allowed: %s", p.header.Get("Content-Security-Policy"))
	}
	secret := m[1]
	if p := b.post(base+"/account/mfa/require", url.Values{"password": {pw}, "required": {"on"}}); p.status != http.StatusBadRequest {
		t.Fatalf("requiring a second factor before one is active: %d", p.status)
	}
	wrong := "000000"
	if totpCode(t, secret, time.Now()) == wrong || totpCode(t, secret, time.Now().Add(30*time.Second)) == wrong {
		wrong = "999999"
	}
	if p := b.post(base+"/account/mfa/totp/confirm", url.Values{"code": {wrong}}); p.status != http.StatusBadRequest {
		t.Fatalf("confirm with a wrong code: %d", p.status)
	}
	p = b.post(base+"/account/mfa/totp/confirm", url.Values{"code": {totpCode(t, secret, time.Now())}})
	codes := recoveryCodeRE.FindAllStringSubmatch(p.body, -1)
	if p.status != http.StatusOK || len(codes) != 10 {
		t.Fatalf("after confirming: %d, %d recovery codes\n%s", p.status, len(codes), p.body)
	}
	sec := b.get(base + "/account/security")
	if !strings.Contains(sec.body, "An authenticator app is set up") || strings.Contains(sec.body, secret) ||
		!strings.Contains(sec.body, "10 of 10 recovery codes are unused") {
		t.Fatalf("security page after enrolment:\n%s", sec.body)
	}
	act := b.get(base + "/account/activity")
	for _, want := range []string{"Second factor added", "Recovery codes made"} {
		if !strings.Contains(act.body, want) {
			t.Errorf("activity lacks %q", want)
		}
	}

	// A service: without acr_values the password does (amr pwd, acr 0);
	// with acr_values=mfa the person is asked their second factor.
	app := newRP(t, l, "notes", nil)
	b2 := newBrowser(t)
	c := idTokenClaims(t, b2, app, pw, func(p *page) *page {
		t.Fatal("a second factor was asked without acr_values")
		return p
	})
	if got := amrOf(c); !slices.Equal(got, []string{"pwd"}) || c["acr"] != "0" {
		t.Fatalf("password sign-in: amr %v acr %v", got, c["acr"])
	}
	c = idTokenClaims(t, b2, app, pw, func(p *page) *page {
		if q := p.url.Query(); p.status != http.StatusOK || len(q) != 0 {
			t.Fatalf("second-factor page: %d %s", p.status, p.url)
		}
		if r := b2.post(base+"/login/second-factor", url.Values{"code": {wrong}}); r.status != http.StatusUnauthorized ||
			!strings.Contains(r.body, "not correct") {
			t.Fatalf("a wrong code: %d\n%s", r.status, r.body)
		}
		// The code just used to confirm is refused; the next step's works.
		if r := b2.post(base+"/login/second-factor", url.Values{"code": {totpCode(t, secret, time.Now().Add(-30*time.Second))}}); r.status != http.StatusUnauthorized {
			t.Fatalf("an already used step's code: %d", r.status)
		}
		return b2.post(base+"/login/second-factor", url.Values{"code": {totpCode(t, secret, time.Now().Add(30*time.Second))}})
	}, oauth2.SetAuthURLParam("acr_values", "mfa"))
	if got := amrOf(c); !slices.Contains(got, "pwd") || !slices.Contains(got, "otp") || !slices.Contains(got, "mfa") || c["acr"] != "mfa" {
		t.Fatalf("sign-in with a second factor: amr %v acr %v", got, c["acr"])
	}
	// The session now has the second factor: asked again, no step-up.
	c = idTokenClaims(t, b2, app, pw, func(p *page) *page {
		t.Fatal("a second factor was asked again within the session")
		return p
	}, oauth2.SetAuthURLParam("acr_values", "http://schemas.openid.net/pape/policies/2007/06/multi-factor"))
	if c["acr"] != "http://schemas.openid.net/pape/policies/2007/06/multi-factor" {
		t.Fatalf("acr = %v, want the requested multi-factor class", c["acr"])
	}

	// The person requires a second factor: a password alone starts no
	// session.
	if p := b.post(base+"/account/mfa/require", url.Values{"password": {pw}, "required": {"on"}}); p.url.Path != "/account/security" {
		t.Fatalf("require: %d %s\n%s", p.status, p.url, p.body)
	}
	b3 := newBrowser(t)
	if p := b3.signIn(base, "alice", pw); p.url.Path != "/login/second-factor" || !strings.Contains(p.body, "Confirm it is you") {
		t.Fatalf("password sign-in when a second factor is required: %d %s", p.status, p.url)
	}
	if b3.signedIn(base) {
		t.Fatal("a session exists before the second factor")
	}
	if p := b3.post(base+"/login/second-factor", url.Values{"code": {codes[0][1]}}); !strings.HasPrefix(p.url.Path, "/account") || !b3.signedIn(base) {
		t.Fatalf("recovery code: %d %s\n%s", p.status, p.url, p.body)
	}

	// The recovery code works once; wrong answers are bounded.
	b4 := newBrowser(t)
	b4.signIn(base, "alice", pw)
	if p := b4.post(base+"/login/second-factor", url.Values{"code": {codes[0][1]}}); p.status != http.StatusUnauthorized {
		t.Fatalf("a used recovery code: %d", p.status)
	}
	for i := 2; i <= 5; i++ {
		p := b4.post(base+"/login/second-factor", url.Values{"code": {wrong}})
		if i < 5 && p.status != http.StatusUnauthorized || i == 5 && !strings.Contains(p.body, "Too many wrong codes") {
			t.Fatalf("wrong answer %d: %d\n%s", i, p.status, p.body)
		}
	}
	if p := b4.post(base+"/login/second-factor", url.Values{"code": {codes[1][1]}}); b4.signedIn(base) || !strings.Contains(p.body, "sign in again") {
		t.Fatalf("a code after the attempts ran out: %d %s", p.status, p.url)
	}
	// That code was not spent: it still works after signing in again.
	b4.signIn(base, "alice", pw)
	if b4.post(base+"/login/second-factor", url.Values{"code": {codes[1][1]}}); !b4.signedIn(base) {
		t.Fatal("an unspent recovery code was refused")
	}
	if sec := b.get(base + "/account/security"); !strings.Contains(sec.body, "8 of 10 recovery codes are unused") {
		t.Fatal("the security page does not count the spent recovery codes")
	}

	// Removing the factor needs the password and ends the requirement.
	if p := b.post(base+"/account/mfa/totp/remove", url.Values{"password": {"nope nope"}}); p.status != http.StatusForbidden {
		t.Fatalf("remove with a wrong password: %d", p.status)
	}
	if p := b.post(base+"/account/mfa/totp/remove", url.Values{"password": {pw}}); p.url.Path != "/account/security" {
		t.Fatalf("remove: %d %s", p.status, p.url)
	}
	b5 := newBrowser(t)
	if b5.signIn(base, "alice", pw); !b5.signedIn(base) {
		t.Fatal("the password alone does not sign in after the factor is removed")
	}
}

// TestPasskeySecondFactor: a passkey is a second factor after a password:
// the person requires one, the password leads to the second-factor step,
// another key's signature is refused, the account's passkey signs in and
// the ID token says pwd+hwk+mfa.
func TestPasskeySecondFactor(t *testing.T) {
	t.Parallel()
	l := startLocalhost(t, sqliteEnv(t))
	const pw = "correct horse battery"
	l.env.must(t, pw+"\n", "user", "create", "--username", "alice", "--password-stdin")
	base := l.base
	b := newBrowser(t)
	b.signIn(base, "alice", pw)
	k := newSoftKey(t, base)
	if st, out := k.register(b, base, "Laptop"); st != 200 {
		t.Fatalf("register: %d %v", st, out)
	}
	if p := b.post(base+"/account/mfa/require", url.Values{"password": {pw}, "required": {"on"}}); p.url.Path != "/account/security" {
		t.Fatalf("require with a passkey: %d %s\n%s", p.status, p.url, p.body)
	}
	app := newRP(t, l, "notes", nil)
	b2 := newBrowser(t)
	c := idTokenClaims(t, b2, app, pw, func(p *page) *page {
		if !strings.Contains(p.body, "Use a passkey") || !strings.Contains(p.header.Get("Content-Security-Policy"), "script-src 'self'") {
			t.Fatalf("second-factor page:\n%s", p.body)
		}
		if b2.signedIn(base) {
			t.Fatal("a session exists before the second factor")
		}
		// Another key's signature over the right challenge is refused.
		st, opts, _ := b2.api("POST", base+"/login/second-factor/passkey/begin", nil)
		if st != 200 {
			t.Fatalf("begin: %d %v", st, opts)
		}
		allowed, _ := publicKeyOptions(t, opts)["allowCredentials"].([]any)
		if len(allowed) != 1 || allowed[0].(map[string]any)["id"] != b64u(k.id) {
			t.Fatalf("allowCredentials = %v, want the account's passkey", allowed)
		}
		other := newSoftKey(t, base)
		if st, out, _ := b2.api("POST", base+"/login/second-factor/passkey/finish", k.get(opts, other.key, k.id, k.handle)); st != http.StatusUnauthorized {
			t.Fatalf("another key's signature: %d %v", st, out)
		}
		st, opts, _ = b2.api("POST", base+"/login/second-factor/passkey/begin", nil)
		if st != 200 {
			t.Fatalf("begin again: %d %v", st, opts)
		}
		st, out, _ := b2.api("POST", base+"/login/second-factor/passkey/finish", k.get(opts, k.key, k.id, k.handle))
		if st != 200 {
			t.Fatalf("finish: %d %v", st, out)
		}
		return b2.get(base + out["redirect"].(string))
	})
	if got := amrOf(c); !slices.Equal(got, []string{"pwd", "hwk", "mfa"}) || c["acr"] != "mfa" {
		t.Fatalf("amr %v acr %v", got, c["acr"])
	}
}
