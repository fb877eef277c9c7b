package main

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// withoutState is an authorization URL of x/oauth2 with its state removed,
// as clients that rely on PKCE alone send it.
func withoutState(t *testing.T, authURL string) string {
	t.Helper()
	u, err := url.Parse(authURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Del("state")
	u.RawQuery = q.Encode()
	return u.String()
}

var (
	tagRE     = regexp.MustCompile(`<(form|input|script|/form)\b[^>]*>`)
	tagAttrRE = regexp.MustCompile(`([a-z-]+)="([^"]*)"`)
)

// formPostForm parses a form_post page: the form's action and the hidden
// inputs inside it; it fails on a page with other than one post form or
// with an inline script.
func formPostForm(t *testing.T, body string) (action string, fields url.Values) {
	t.Helper()
	fields = url.Values{}
	forms, inForm := 0, false
	for _, m := range tagRE.FindAllStringSubmatch(body, -1) {
		attrs := map[string]string{}
		for _, a := range tagAttrRE.FindAllStringSubmatch(m[0], -1) {
			attrs[a[1]] = html.UnescapeString(a[2])
		}
		switch m[1] {
		case "form":
			forms++
			if !strings.EqualFold(attrs["method"], "post") {
				t.Errorf("form method %q, want post", attrs["method"])
			}
			action, inForm = attrs["action"], true
		case "/form":
			inForm = false
		case "input":
			if inForm && attrs["type"] == "hidden" {
				fields.Add(attrs["name"], attrs["value"])
			}
		case "script":
			if attrs["src"] == "" {
				t.Errorf("the form_post page has an inline script")
			}
		}
	}
	if forms != 1 {
		t.Fatalf("form_post page has %d forms:\n%s", forms, body)
	}
	return action, fields
}

// TestAuthorizeSpec: state is optional and an absent one is never echoed
// empty; every authorization response, success or error, carries iss
// (RFC 9207); response_mode=form_post answers with a form posting the
// response; request objects and unmet essential acr are refused with their
// own errors; an unsupported grant type is unsupported_grant_type; a logout
// link naming another person asks before signing anyone out.
func TestAuthorizeSpec(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := startLive(t, sqliteEnv(t))
	l.env.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--email", "alice@example.org", "--password-stdin")
	l.env.must(t, "battery staple horse\n", "user", "create", "--username", "bob", "--email", "bob@example.org", "--password-stdin")
	app := newRP(t, l, "spec", map[string]any{"post_logout_redirect_uris": []string{"http://127.0.0.1:9/bye"}})
	b := newBrowser(t)

	t.Run("no state", func(t *testing.T) {
		v := oauth2.GenerateVerifier()
		p := b.authorize(withoutState(t, app.conf.AuthCodeURL("", oauth2.S256ChallengeOption(v))), "alice", "correct horse battery", nil)
		if p.status != http.StatusSeeOther || !strings.HasPrefix(p.url.String(), app.redirect) {
			t.Fatalf("no redirect to the RP: %d %s\n%s", p.status, p.url, p.body)
		}
		q := p.url.Query()
		if q.Has("state") || q.Get("error") != "" || q.Get("code") == "" {
			t.Fatalf("callback %s: want a code, no state, no error", p.url)
		}
		if q.Get("iss") != l.base {
			t.Fatalf("callback iss %q, want %s", q.Get("iss"), l.base)
		}
		if _, err := app.conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(v)); err != nil {
			t.Fatalf("exchange: %v", err)
		}
	})

	t.Run("success carries state and iss", func(t *testing.T) {
		p := b.authorize(app.conf.AuthCodeURL("st4te-1", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), "alice", "correct horse battery", nil)
		if q := p.url.Query(); q.Get("state") != "st4te-1" || q.Get("iss") != l.base || q.Get("code") == "" {
			t.Fatalf("callback %s", p.url)
		}
	})

	t.Run("short state accepted", func(t *testing.T) {
		p := b.authorize(app.conf.AuthCodeURL("x", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), "alice", "correct horse battery", nil)
		if q := p.url.Query(); q.Get("state") != "x" || q.Get("code") == "" {
			t.Fatalf("callback %s", p.url)
		}
	})

	t.Run("error without state", func(t *testing.T) {
		// A scope the client may not ask for: invalid_scope, redirected.
		u := withoutState(t, app.conf.AuthCodeURL("", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("scope", "openid not-a-scope")))
		p := b.get(u)
		if p.status != http.StatusSeeOther || !strings.HasPrefix(p.url.String(), app.redirect) {
			t.Fatalf("no error redirect: %d %s", p.status, p.url)
		}
		if strings.Contains(p.url.RawQuery, "state=") {
			t.Fatalf("error redirect carries state: %s", p.url)
		}
		if q := p.url.Query(); q.Get("error") != "invalid_scope" || q.Get("iss") != l.base {
			t.Fatalf("error redirect %s: want invalid_scope and iss", p.url)
		}
	})

	t.Run("error with state carries it and iss", func(t *testing.T) {
		p := b.get(app.conf.AuthCodeURL("keep-me", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("prompt", "none login")))
		if q := p.url.Query(); q.Get("error") != "invalid_request" || q.Get("state") != "keep-me" || q.Get("iss") != l.base {
			t.Fatalf("error redirect %s", p.url)
		}
	})

	t.Run("form_post", func(t *testing.T) {
		p := b.get(app.conf.AuthCodeURL("fp-state", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("response_mode", "form_post")))
		if p.status != http.StatusOK || !strings.HasPrefix(p.header.Get("Content-Type"), "text/html") {
			t.Fatalf("form_post answer: %d %s %s", p.status, p.header.Get("Content-Type"), p.url)
		}
		csp := p.header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
			t.Fatalf("form_post CSP %q", csp)
		}
		action, f := formPostForm(t, p.body)
		if action != app.redirect {
			t.Fatalf("form posts to %q, want %q", action, app.redirect)
		}
		if f.Get("code") == "" || f.Get("state") != "fp-state" || f.Get("iss") != l.base {
			t.Fatalf("form fields %v: want code, state and iss", f)
		}
		if !regexp.MustCompile(`<script src="/static/[a-z]+\.js"`).MatchString(p.body) {
			t.Fatalf("no submitting script:\n%s", p.body)
		}
		if sp := b.get(l.base + "/static/formpost.js"); sp.status != 200 || !strings.Contains(sp.body, "submit()") {
			t.Fatalf("/static/formpost.js: %d", sp.status)
		}
		// An error in form_post mode is posted too, without an empty state.
		p = b.get(withoutState(t, app.conf.AuthCodeURL("", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()),
			oauth2.SetAuthURLParam("response_mode", "form_post"), oauth2.SetAuthURLParam("scope", "openid not-a-scope"))))
		_, f = formPostForm(t, p.body)
		if f.Get("error") != "invalid_scope" || f.Has("state") || f.Get("iss") != l.base {
			t.Fatalf("form_post error fields %v", f)
		}
	})

	t.Run("request objects", func(t *testing.T) {
		base := app.conf.AuthCodeURL("ro-state", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
		for param, want := range map[string]string{
			"request":     "request_not_supported",
			"request_uri": "request_uri_not_supported",
		} {
			value := "eyJhbGciOiJub25lIn0.e30."
			if param == "request_uri" {
				value = "https://127.0.0.1:1/request.jwt"
			}
			p := b.get(withParam(t, base, param, value))
			if q := p.url.Query(); !strings.HasPrefix(p.url.String(), app.redirect) || q.Get("error") != want || q.Get("state") != "ro-state" || q.Get("iss") != l.base {
				t.Errorf("%s: %d %s, want an error redirect with %s", param, p.status, p.url, want)
			}
		}
	})

	t.Run("essential acr", func(t *testing.T) {
		claims := `{"id_token":{"acr":{"essential":true,"values":["urn:example:loa:3"]}}}`
		p := b.get(app.conf.AuthCodeURL("acr-state", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("claims", claims)))
		if q := p.url.Query(); q.Get("error") != "unmet_authentication_requirements" || q.Get("state") != "acr-state" {
			t.Fatalf("essential acr: %d %s", p.status, p.url)
		}
		// A voluntary one is answered with what there is.
		claims = `{"id_token":{"acr":{"values":["urn:example:loa:3"]}}}`
		p = b.authorize(app.conf.AuthCodeURL("acr-state", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("claims", claims)), "alice", "correct horse battery", nil)
		if p.url.Query().Get("code") == "" {
			t.Fatalf("voluntary acr: %d %s", p.status, p.url)
		}
	})

	t.Run("unsupported grant types", func(t *testing.T) {
		for _, grant := range []string{"password", "urn:ietf:params:oauth:grant-type:device_code", "urn:example:made-up"} {
			st, e := postForm(t, l.base+"/token", url.Values{"grant_type": {grant}, "username": {"alice"}, "password": {"x"}, "device_code": {"d"}},
				app.conf.ClientID, app.conf.ClientSecret)
			if st != http.StatusBadRequest || e["error"] != "unsupported_grant_type" {
				t.Errorf("grant_type %s: %d %v, want 400 unsupported_grant_type", grant, st, e)
			}
		}
	})

	t.Run("logout hint of another person", func(t *testing.T) {
		// Bob's ID token, from another browser.
		bobs := newBrowser(t)
		v := oauth2.GenerateVerifier()
		p := bobs.authorize(app.conf.AuthCodeURL("bob-state", oauth2.S256ChallengeOption(v)), "bob", "battery staple horse", nil)
		tok, err := app.conf.Exchange(ctx, p.url.Query().Get("code"), oauth2.VerifierOption(v))
		if err != nil {
			t.Fatal(err)
		}
		hint := tok.Extra("id_token").(string)
		// Alice's browser follows a logout link carrying Bob's hint.
		p = b.get(l.base + "/logout?id_token_hint=" + url.QueryEscape(hint) + "&post_logout_redirect_uri=" + url.QueryEscape("http://127.0.0.1:9/bye"))
		if p.status != http.StatusOK || !strings.Contains(p.body, `name="confirm"`) {
			t.Fatalf("logout with another person's hint: %d %s, want the confirmation page", p.status, p.url)
		}
		// Alice is still signed in: the next sign-in needs no password.
		b.pages = nil
		p = b.get(app.conf.AuthCodeURL("still-in", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		if p.url.Query().Get("code") == "" || strings.Contains(strings.Join(b.pages, " "), "/login") {
			t.Fatalf("Alice was signed out by Bob's hint: %s %v", p.url, b.pages)
		}
		// Bob's own hint in Bob's browser signs him out at once.
		p = bobs.get(l.base + "/logout?id_token_hint=" + url.QueryEscape(hint) + "&post_logout_redirect_uri=" + url.QueryEscape("http://127.0.0.1:9/bye"))
		if p.url.String() != "http://127.0.0.1:9/bye" {
			t.Fatalf("own hint: %d %s", p.status, p.url)
		}
	})
}
