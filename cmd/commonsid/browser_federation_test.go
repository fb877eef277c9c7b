package main

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// TestBrowserBrokeredSignIn drives brokered sign-in in Chromium: a service
// on cloud B sends the person to B's sign-in page, they choose "sign in with
// your home cloud", sign in on cloud A with their A password, consent on B,
// and the service gets a code and an ID token from B. The clouds run on two
// host names (127.0.0.1 and localhost) so that each keeps its own cookies.
func TestBrowserBrokeredSignIn(t *testing.T) {
	t.Parallel()
	chromiumPath(t) // skip before starting servers
	a := startLiveOn(t, sqliteEnv(t), "127.0.0.1")
	b := startLiveOn(t, sqliteEnv(t), "localhost")
	a.env.must(t, "", "peer", "add", b.base)
	b.env.must(t, "", "peer", "add", a.base)
	const pw = "correct horse battery"
	did := lastLine(a.env.must(t, pw+"\n", "user", "create", "--username", "ines", "--name", "Inès", "--password-stdin"))
	home := newBrowser(t)
	home.signIn(a.base, "ines", pw)
	if st, _, _ := home.api("PUT", a.base+"/account/api/privacy", map[string]any{"subject_mode": "pairwise", "fork_policy": "ask",
		"federation_sharing": "public_profile", "activity_retention_days": 365, "consent_lifetime_days": 0, "claim_policy": map[string]string{}}); st != 200 {
		t.Fatalf("share on A: %d", st)
	}
	eventually(t, 5*time.Second, "the account on B", func() bool {
		return b.env.run(t, "", "user", "show", did).code == 0
	})
	notes := newRP(t, b, "notes", nil)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute) // a whole browser session; a busy machine runs tests in parallel
	defer cancel()
	tab := startChromium(t, ctx)
	ct := &chromeTab{t: t, tab: tab, dir: screenshotDir(t)}
	do, text, shot := ct.do, ct.text, ct.shot
	at := func(name, base, path string) {
		t.Helper()
		loc := text(chromedp.Location())
		if !strings.HasPrefix(loc, base+path) {
			shot(name + "-unexpected")
			t.Fatalf("%s: at %s, want %s%s", name, loc, base, path)
		}
		shot(name)
	}

	state, verifier := randString(16), oauth2.GenerateVerifier()
	flow := chromedp.Events(tab, network.RequestWillBeSent)
	do("open the service's authorization URL on B",
		chromedp.Navigate(notes.conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier))),
		chromedp.WaitVisible(chromedp.ID("home")),
	)
	at("01-login-on-b", b.base, "/login")
	if opt := text(chromedp.Text(chromedp.CSS("#home option"))); !strings.Contains(a.base, opt) {
		t.Fatalf("home cloud offered: %q", opt)
	}
	do("choose to sign in with the home cloud",
		chromedp.Click(chromedp.CSS(`form[action="/federation/v1/broker"] button`)),
		chromedp.WaitVisible(chromedp.ID("password")),
	)
	at("02-login-on-a", a.base, "/login")
	do("sign in on A",
		chromedp.SendKeys(chromedp.ID("username"), "ines"),
		chromedp.SendKeys(chromedp.ID("password"), pw),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS("button[name=decision][value=allow]")),
	)
	at("03-peer-consent-on-a", a.base, "/consent/peer")
	do("let B sign Inès in", chromedp.Click(chromedp.CSS("button[name=decision][value=allow]")),
		chromedp.WaitVisible(chromedp.CSS(`form[action="/consent"] button[name=decision][value=allow]`)))
	at("04-consent-on-b", b.base, "/consent")
	do("allow", chromedp.Click(chromedp.CSS("button[name=decision][value=allow]")))
	seen, err := followRequests(flow, notes.redirect+"?")
	if err != nil {
		t.Fatal(err)
	}
	if got := pathsOn(seen, a.base); !slices.Contains(got, "/authorize") || !slices.Contains(got, "/login") {
		t.Errorf("the flow visited %v on A, want /authorize and /login", got)
	}
	if got := pathsOn(seen, b.base); !slices.Contains(got, "/federation/v1/callback") || !slices.Contains(got, "/consent") {
		t.Errorf("the flow visited %v on B, want the callback and /consent", got)
	}
	back, _ := url.Parse(seen[len(seen)-1])
	if back.Query().Get("state") != state || back.Query().Get("code") == "" {
		t.Fatalf("at the service: %s", back)
	}
	tok, err := notes.conf.Exchange(ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	id, err := notes.provider.Verifier(&oidc.Config{ClientID: notes.conf.ClientID}).Verify(ctx, tok.Extra("id_token").(string))
	if err != nil || id.Subject == "" || id.Subject == did {
		t.Fatalf("ID token from B: %v %v", id, err)
	}
	var claims map[string]any
	id.Claims(&claims)
	if claims["name"] != "Inès" {
		t.Errorf("the name shared with B did not reach the service: %v", claims)
	}
}
