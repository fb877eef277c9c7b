package main

import (
	"context"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/onecommons/commonsid/internal/smtptest"
)

// TestBrowserMailFlows drives the mailed links and the second factor in
// Chromium, against a server that mails through an SMTP server in the
// test: sign-up mails a verification link, and a service sees
// email_verified false before it is opened and true after; "Forgot
// password?" mails a reset link whose new password signs out another
// browser's session and replaces the old password; an authenticator app
// set up on the Security page is asked after the password, and its code
// (computed from the key the page shows) signs in; a recovery code signs
// in once and is refused the second time with a message on the page.
func TestBrowserMailFlows(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("drives headless Chromium; skipped with -short (testing.Short)")
	}
	chromiumPath(t) // skip before starting a server
	e, srv := smtpEnv(t, sqliteEnv(t))
	l := startLive(t, e)
	app := newRP(t, l, "mailapp", nil)
	const (
		handle = "grace.hopper"
		addr   = "grace@example.net"
		pw     = "correct horse battery staple"
		pw2    = "a brand new horse battery"
	)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // the browser's life; each step has its own bound
	defer cancel()
	tab := startChromium(t, ctx)
	dir := screenshotDir(t)
	t.Logf("screenshots in %s", dir)

	// step runs f on a tab (the browser's or another) bounded to a minute:
	// generous for a machine that runs other tests meanwhile.
	step := func(on context.Context, f func(ct *chromeTab)) {
		t.Helper()
		sctx, scancel := context.WithTimeout(on, time.Minute)
		defer scancel()
		f(&chromeTab{t: t, tab: sctx, dir: dir})
	}
	allow := chromedp.CSS("button[name=decision][value=allow]")
	loginSubmit := chromedp.CSS(`form[action="/login"] button[type=submit]`)
	secondFactorSubmit := chromedp.CSS(`form[action="/login/second-factor"] button[type=submit]`)
	signOut := func(ct *chromeTab) {
		t.Helper()
		ct.do("sign out from the header", chromedp.Click(chromedp.ID("sign-out")), chromedp.WaitVisible(chromedp.ID("sign-in-link")))
		ct.at("/logout")
	}
	// signInWithPassword opens the account signed out and answers the
	// login page; wait is what the next page shows.
	signInWithPassword := func(ct *chromeTab, password string, wait chromedp.Action[chromedp.Void]) {
		t.Helper()
		ct.do("open the account signed out", chromedp.Navigate(l.base+"/account"), chromedp.WaitVisible(chromedp.ID("username")))
		ct.at("/login")
		ct.do("sign in with the password",
			chromedp.SendKeys(chromedp.ID("username"), handle),
			chromedp.SendKeys(chromedp.ID("password"), password),
			chromedp.Click(loginSubmit),
			wait,
		)
	}
	// userInfo runs the service's authorization code flow in the tab
	// (signed in already; consent asked the first time only) and returns
	// the ID token's and UserInfo's claims.
	userInfo := func(ct *chromeTab, consent bool) (idToken, ui map[string]any) {
		t.Helper()
		state, nonce, verifier := randString(16), randString(16), oauth2.GenerateVerifier()
		flow := chromedp.Events(ct.tab, network.RequestWillBeSent)
		authURL := app.conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce))
		if consent {
			ct.do("open the service's authorization URL", chromedp.Navigate(authURL), chromedp.WaitVisible(allow))
			ct.at("/consent")
			ct.do("allow the service", chromedp.Click(allow))
		} else if err := chromedp.Do(ct.tab, chromedp.Navigate(authURL)); err != nil {
			// The redirect URI has no server behind it: the load fails,
			// the request is seen below.
			t.Logf("authorization URL: %v", err)
		}
		seen, err := followRequests(flow, app.redirect+"?")
		if err != nil {
			ct.shot("unexpected-authorization")
			t.Fatal(err)
		}
		back, _ := url.Parse(seen[len(seen)-1])
		if back.Query().Get("state") != state || back.Query().Get("code") == "" {
			t.Fatalf("the service got %s", back)
		}
		tok, err := app.conf.Exchange(ct.tab, back.Query().Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatalf("code exchange: %v", err)
		}
		raw, _ := tok.Extra("id_token").(string)
		idt, err := app.provider.Verifier(&oidc.Config{ClientID: app.conf.ClientID}).Verify(ct.tab, raw)
		if err != nil || idt.Nonce != nonce {
			t.Fatalf("ID token: %v (nonce %q)", err, idt.Nonce)
		}
		idt.Claims(&idToken)
		info, err := app.provider.UserInfo(ct.tab, oauth2.StaticTokenSource(tok))
		if err != nil {
			t.Fatalf("userinfo: %v", err)
		}
		info.Claims(&ui)
		return idToken, ui
	}
	mailedLinkWith := func(subject, prefix string) string {
		t.Helper()
		m := mailWith(t, srv, addr, subject)
		links := smtptest.Links(m.Text)
		if len(links) == 0 || !strings.HasPrefix(links[0], prefix) {
			t.Fatalf("mail %q: links %v, want one starting %s\n%s", m.Subject, links, prefix, m.Text)
		}
		return links[0]
	}

	// 1. Sign-up mails a verification link; the service is told the
	// address is verified only once the link is used.
	step(tab, func(ct *chromeTab) {
		ct.do("open /signup", chromedp.Navigate(l.base+"/signup"), chromedp.WaitVisible(chromedp.ID("handle")))
		ct.do("sign up with an email address",
			chromedp.SendKeys(chromedp.ID("handle"), handle),
			chromedp.SendKeys(chromedp.ID("email"), addr),
			chromedp.SendKeys(chromedp.ID("password"), pw),
			chromedp.Click(chromedp.CSS(`form[action="/signup"] button[type=submit]`)),
			chromedp.WaitVisible(chromedp.ID("did")),
		)
		ct.at("/signup")
	})
	link := mailedLinkWith("Confirm your email address", l.base+"/verify-email?token=")
	step(tab, func(ct *chromeTab) {
		id, ui := userInfo(ct, true)
		if ui["email"] != addr || ui["email_verified"] != false || (id["email_verified"] != nil && id["email_verified"] != false) {
			t.Fatalf("before the link is opened: ID token %v, UserInfo %v; want %s unverified", id, ui, addr)
		}
		ct.do("open the mailed link", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS(`form[action="/verify-email"] button[type=submit]`)))
		ct.at("/verify-email")
		ct.do("verify", chromedp.Click(chromedp.CSS(`form[action="/verify-email"] button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS(`[role=status]`)))
		if s := ct.text(chromedp.Text(chromedp.CSS(`[role=status]`))); !strings.Contains(s, "is verified") {
			t.Fatalf("after verifying the page says %q", s)
		}
		ct.shot("1-email-verified")
		id, ui = userInfo(ct, false)
		if ui["email"] != addr || ui["email_verified"] != true || (id["email_verified"] != nil && id["email_verified"] != true) {
			t.Fatalf("after the link: ID token %v, UserInfo %v; want %s verified", id, ui, addr)
		}
		t.Logf("after the link: ID token email_verified %v, UserInfo email_verified %v", id["email_verified"], ui["email_verified"])
	})

	// 2. Another browser is signed in; "Forgot password?" mails a link
	// whose new password signs that browser out and replaces the old one.
	other, cancelOther := chromedp.NewContext(tab, chromedp.WithNewBrowserContext()) // its own cookies
	defer cancelOther()
	if err := chromedp.Do(other); err != nil { // the tab lives as long as other, not a step
		t.Fatalf("open a second browser context: %v", err)
	}
	step(other, func(ct *chromeTab) {
		signInWithPassword(ct, pw, chromedp.WaitVisible(chromedp.ID("did")))
		ct.at("/account")
	})
	step(tab, func(ct *chromeTab) {
		ct.do("open the account", chromedp.Navigate(l.base+"/account"), chromedp.WaitVisible(chromedp.ID("did")))
		signOut(ct)
		ct.do("open /login", chromedp.Navigate(l.base+"/login"), chromedp.WaitVisible(chromedp.ID("username")))
		ct.do("follow Forgot password?", chromedp.Click(chromedp.CSS(`a[href="/login/forgot"]`)), chromedp.WaitVisible(chromedp.ID("account")))
		ct.at("/login/forgot")
		ct.do("ask for a reset link",
			chromedp.SendKeys(chromedp.ID("account"), addr),
			chromedp.Click(chromedp.CSS(`form[action="/login/forgot"] button[type=submit]`)),
			chromedp.WaitVisible(chromedp.CSS(`[role=status]`)),
		)
		if s := ct.text(chromedp.Text(chromedp.CSS(`[role=status]`))); !strings.Contains(s, "If an account matches") {
			t.Fatalf("after asking for a reset the page says %q", s)
		}
	})
	link = mailedLinkWith("Reset your password", l.base+"/login/reset?token=")
	step(tab, func(ct *chromeTab) {
		ct.do("open the mailed link", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("password")))
		ct.at("/login/reset")
		ct.do("set a new password",
			chromedp.SendKeys(chromedp.ID("password"), pw2),
			chromedp.Click(chromedp.CSS(`form[action="/login/reset"] button[type=submit]`)),
			chromedp.WaitVisible(chromedp.CSS(`[role=status]`)),
		)
		if s := ct.text(chromedp.Text(chromedp.CSS(`[role=status]`))); !strings.Contains(s, "password is changed") {
			t.Fatalf("after the reset the page says %q", s)
		}
		ct.shot("2-password-reset")
	})
	step(other, func(ct *chromeTab) {
		ct.do("the other browser opens the account", chromedp.Navigate(l.base+"/account"), chromedp.WaitVisible(chromedp.ID("username")))
		ct.at("/login") // its session ended with the reset
	})
	step(tab, func(ct *chromeTab) {
		signInWithPassword(ct, pw, chromedp.WaitVisible(chromedp.ID("login-error")))
		if s := ct.text(chromedp.Text(chromedp.ID("login-error"))); !strings.Contains(s, "Wrong handle or password") {
			t.Fatalf("the old password: the page says %q", s)
		}
		signInWithPassword(ct, pw2, chromedp.WaitVisible(chromedp.ID("did")))
		ct.at("/account")
	})

	// 3. An authenticator app set up on the Security page, and required:
	// the next sign-in asks for its code after the password.
	var codes []string
	var confirmed int64 // the 30-second step of the code that confirmed the app
	step(tab, func(ct *chromeTab) {
		ct.do("set up an authenticator app",
			chromedp.Navigate(l.base+"/account/security"), chromedp.WaitVisible(chromedp.ID("mfa-add-password")),
			chromedp.SendKeys(chromedp.ID("mfa-add-password"), pw2),
			chromedp.Click(chromedp.CSS(`form[action="/account/mfa/totp/begin"] button[type=submit]`)),
			chromedp.WaitVisible(chromedp.ID("mfa-key")),
		)
		secret := ct.text(chromedp.Text(chromedp.ID("mfa-key")))
		if !regexp.MustCompile(`^[A-Z2-7]{16,}$`).MatchString(secret) {
			t.Fatalf("the page shows the key %q", secret)
		}
		now := time.Now()
		confirmed = now.Unix() / 30
		ct.do("confirm with the app's code",
			chromedp.SendKeys(chromedp.ID("mfa-confirm-code"), totpCode(t, secret, now)),
			chromedp.Click(chromedp.CSS(`form[action="/account/mfa/totp/confirm"] button[type=submit]`)),
			chromedp.WaitVisible(chromedp.ID("recovery-codes")),
		)
		var err error
		codes, err = chromedp.Run(ct.tab, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("#recovery-codes code"), c => c.textContent.trim())`))
		if err != nil || len(codes) != 10 || !recoveryCodeRE.MatchString("<li><code>"+codes[0]+"</code></li>") {
			t.Fatalf("recovery codes shown %v (%v), want 10", codes, err)
		}
		ct.do("back to Security", chromedp.Click(chromedp.CSS(`a[href="/account/security#second-factors"]`)), chromedp.WaitVisible(chromedp.ID("mfa-require-password")))
		ct.do("require a second factor",
			chromedp.SendKeys(chromedp.ID("mfa-require-password"), pw2),
			chromedp.Click(chromedp.CSS(`form[action="/account/mfa/require"] button[type=submit]`)),
			chromedp.WaitVisible(chromedp.CSS(".flash")),
		)
		if s := ct.text(chromedp.Text(chromedp.CSS("main"))); !strings.Contains(s, "An authenticator app is set up") ||
			!strings.Contains(s, "Every sign-in with your password asks for a second factor") {
			t.Fatalf("the Security page after enrolment says:\n%s", s)
		}
		signOut(ct)
		signInWithPassword(ct, pw2, chromedp.WaitVisible(chromedp.ID("code")))
		ct.at("/login/second-factor")
		ct.shot("3-second-factor-asked")
		// The code that confirmed the app is spent: use the next step's
		// if the clock is still in its step.
		at := time.Now()
		if at.Unix()/30 <= confirmed {
			at = time.Unix((confirmed+1)*30, 0)
		}
		ct.do("enter the app's code",
			chromedp.SendKeys(chromedp.ID("code"), totpCode(t, secret, at)),
			chromedp.Click(secondFactorSubmit),
			chromedp.WaitVisible(chromedp.ID("did")),
		)
		ct.at("/account")
	})

	// 4. A recovery code in place of the app's code: once.
	step(tab, func(ct *chromeTab) {
		signOut(ct)
		signInWithPassword(ct, pw2, chromedp.WaitVisible(chromedp.ID("code")))
		ct.at("/login/second-factor")
		ct.do("enter a recovery code",
			chromedp.SendKeys(chromedp.ID("code"), codes[0]),
			chromedp.Click(secondFactorSubmit),
			chromedp.WaitVisible(chromedp.ID("did")),
		)
		ct.at("/account")
		ct.do("open Security", chromedp.Navigate(l.base+"/account/security"), chromedp.WaitVisible(chromedp.ID("second-factors")))
		if s := ct.text(chromedp.Text(chromedp.CSS("main"))); !strings.Contains(s, "9 of 10 recovery codes are unused") {
			t.Errorf("the Security page does not count the spent code:\n%s", s)
		}
		signOut(ct)
		signInWithPassword(ct, pw2, chromedp.WaitVisible(chromedp.ID("code")))
		ct.do("enter the same recovery code again",
			chromedp.SendKeys(chromedp.ID("code"), codes[0]),
			chromedp.Click(secondFactorSubmit),
			chromedp.WaitVisible(chromedp.ID("code-error")),
		)
		ct.at("/login/second-factor")
		if s := ct.text(chromedp.Text(chromedp.ID("code-error"))); !strings.Contains(s, "That code is not correct.") {
			t.Errorf("a spent recovery code: the page says %q", s)
		}
		if v := ct.evalString(`document.getElementById("code").getAttribute("aria-invalid") ?? ""`); v != "true" {
			t.Errorf("a spent recovery code: the field's aria-invalid is %q, want true", v)
		}
		ct.shot("4-recovery-code-refused")
		ct.do("the account is still signed out", chromedp.Navigate(l.base+"/account"), chromedp.WaitVisible(chromedp.ID("username")))
		ct.at("/login")
	})
}
