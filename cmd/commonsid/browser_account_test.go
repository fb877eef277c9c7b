package main

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"
)

// TestBrowserDashboard walks every section of /account in headless
// Chromium, saving a screenshot of each, and revokes a service from the
// dashboard: the service's UserInfo then answers 401 and its refresh fails.
func TestBrowserDashboard(t *testing.T) {
	t.Parallel()
	chromiumPath(t)
	ctx := context.Background()
	l := startLive(t, sqliteEnv(t))
	l.env.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--email", "alice@example.org", "--name", "Alice Liddell", "--password-stdin")
	app := newRP(t, l, "notes", nil)
	// The service gets tokens (through the form-submitting client).
	v := oauth2.GenerateVerifier()
	p := newBrowser(t).authorize(app.conf.AuthCodeURL(randString(12), oauth2.S256ChallengeOption(v)), "alice", "correct horse battery", nil)
	tok, err := app.conf.Exchange(ctx, p.url.Query().Get("code"), oauth2.VerifierOption(v))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok)); err != nil {
		t.Fatal(err)
	}

	bctx, cancel := context.WithTimeout(ctx, 3*time.Minute) // a whole browser session; a busy machine runs tests in parallel
	defer cancel()
	tab := startChromium(t, bctx)
	dir := screenshotDir(t)
	t.Logf("screenshots in %s", dir)
	ct := &chromeTab{t: t, tab: tab, dir: dir}
	do, text, shot := ct.do, ct.text, ct.shot
	at := ct.at

	// Signed out, /account leads through the login page and back.
	do("open /account", chromedp.Navigate(l.base+"/account"), chromedp.WaitVisible(chromedp.ID("username")))
	at("/login")
	do("sign in",
		chromedp.SendKeys(chromedp.ID("username"), "alice"),
		chromedp.SendKeys(chromedp.ID("password"), "correct horse battery"),
		chromedp.Click(chromedp.CSS("button[type=submit]")),
		chromedp.WaitVisible(chromedp.ID("did")),
	)
	at("/account")
	if !strings.HasPrefix(text(chromedp.Text(chromedp.ID("did"))), "did:key:") {
		t.Fatal("overview does not show the DID")
	}
	shot("01-overview")

	sections := []struct{ path, heading, want string }{
		{"/account/profile", "Profile", "Who received what"},
		{"/account/services", "Connected services", "notes"},
		{"/account/activity", "Activity", "Data shared"},
		{"/account/sessions", "Sessions", "this device"},
		{"/account/privacy", "Privacy settings", "How services see you"},
		{"/account/security", "Security", "Change password"},
		{"/account/data", "Your data", "Delete my account"},
	}
	for i, s := range sections {
		do("open "+s.path, chromedp.Navigate(l.base+s.path), chromedp.WaitVisible(chromedp.CSS("h1")))
		at(s.path)
		if h := text(chromedp.Text(chromedp.CSS("h1"))); h != s.heading {
			t.Errorf("%s: heading %q, want %q", s.path, h, s.heading)
		}
		if body := text(chromedp.Text(chromedp.CSS("main"))); !strings.Contains(body, s.want) {
			t.Errorf("%s does not show %q", s.path, s.want)
		}
		shot(strings.Join([]string{string(rune('2' + i)), strings.TrimPrefix(s.path, "/account/")}, "-"))
	}

	// Privacy settings through the form.
	do("change settings", chromedp.Navigate(l.base+"/account/privacy"), chromedp.WaitVisible(chromedp.CSS("h1")),
		chromedp.Click(chromedp.CSS(`input[name=claim_email][value=never]`)),
		chromedp.Click(chromedp.CSS(`form[action="/account/privacy"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(".flash")))
	if ok, _ := chromedp.Run(tab, chromedp.Evaluate[bool](`document.querySelector('input[name=claim_email][value=never]').checked`)); !ok {
		t.Fatal("the never policy for email was not saved")
	}

	// Revoke the service from the dashboard.
	do("revoke notes", chromedp.Navigate(l.base+"/account/services"), chromedp.WaitVisible(chromedp.CSS("h1")),
		chromedp.Click(chromedp.CSS(`#service-`+app.conf.ClientID+` button`)),
		chromedp.WaitVisible(chromedp.CSS(".flash")))
	shot("09-revoked")
	if body := text(chromedp.Text(chromedp.CSS("main"))); strings.Contains(body, "Revoke access of notes") {
		t.Fatal("the revoked service is still listed")
	}
	if _, err := app.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok)); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("UserInfo after revoking in the dashboard: %v", err)
	}
	if st, e := postForm(t, l.base+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, app.conf.ClientID, app.conf.ClientSecret); st != 400 || e["error"] != "invalid_grant" {
		t.Fatalf("refresh after revoking in the dashboard: %d %v", st, e)
	}
	// A narrow (phone) screen still shows the dashboard.
	do("phone width", chromedp.EmulateViewport(390, 844), chromedp.Navigate(l.base+"/account/activity"), chromedp.WaitVisible(chromedp.CSS("h1")))
	shot("10-activity-phone")
}
