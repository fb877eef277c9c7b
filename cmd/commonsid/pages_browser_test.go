package main

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"
)

// evalString runs a script in the tab and returns its string result.
func (c *chromeTab) evalString(script string) string {
	c.t.Helper()
	s, err := chromedp.Run(c.tab, chromedp.Evaluate[string](script))
	if err != nil {
		c.t.Fatalf("evaluate %s: %v", script, err)
	}
	return s
}

// acceptLanguage makes the tab send this Accept-Language ("" sends the
// browser's own).
func (c *chromeTab) acceptLanguage(v string) {
	c.t.Helper()
	h := network.Headers{}
	if v != "" {
		h["Accept-Language"] = v
	}
	if _, err := chromedp.Call(c.tab, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: h}); err != nil {
		c.t.Fatal(err)
	}
}

// TestBrowserPagesPeopleExpect drives the pages in Chromium as a person
// would: French chosen by Accept-Language and by the service's ui_locales
// (carried from the authorization request to the login and consent
// pages); a wrong password marks the field invalid, ties it to the error
// and puts the focus on it; the login page names the service; the header
// shows who is signed in and signs out; the consent page fits a 360 px
// screen; a styled 404.
func TestBrowserPagesPeopleExpect(t *testing.T) {
	chromiumPath(t) // skip before starting a server
	l := startLive(t, sqliteEnv(t))
	const pw = "correct horse battery"
	l.env.must(t, pw+"\n", "user", "create", "--username", "alice", "--email", "alice@example.org", "--password-stdin")
	app := newRP(t, l, "atelier", map[string]any{"client_name": "Atelier Commun"})

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	tab := startChromium(t, ctx)
	ct := &chromeTab{t: t, tab: tab, dir: screenshotDir(t)}
	do, text, shot, eval := ct.do, ct.text, ct.shot, ct.evalString

	// A styled 404 for an unknown path, with status 404.
	resp, err := chromedp.RunResponse(tab, chromedp.Navigate(l.base+"/no/such/page"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 404 {
		t.Errorf("unknown path: status %d, want 404", resp.Status)
	}
	if got := text(chromedp.Text(chromedp.CSS("h1"))); got != "Not found" {
		t.Errorf("404 heading %q", got)
	}
	// The stylesheet applies (the status code is big), and there is a way back.
	if fs := eval(`getComputedStyle(document.querySelector(".error-page .status-code")).fontSize`); fs != "64px" {
		t.Errorf("404 status code font-size %q: the page is not styled", fs)
	}
	if href := eval(`document.querySelector(".error-page a.button").getAttribute("href")`); href != "/" {
		t.Errorf("404 way back %q", href)
	}
	shot("01-404")

	// Accept-Language: French, and <html lang> says so.
	ct.acceptLanguage("fr-CH, fr;q=0.9, en;q=0.5")
	do("open /login in French", chromedp.Navigate(l.base+"/login"), chromedp.WaitVisible(chromedp.ID("username")))
	if lang := eval(`document.documentElement.lang`); lang != "fr" {
		t.Errorf("Accept-Language fr: <html lang=%q>", lang)
	}
	if h := text(chromedp.Text(chromedp.CSS("h1"))); h != "Connexion" {
		t.Errorf("French login heading %q", h)
	}
	if l := text(chromedp.Text(chromedp.CSS(`label[for=password]`))); l != "Mot de passe" {
		t.Errorf("French password label %q", l)
	}
	shot("02-login-accept-language-fr")
	// Nobody signed in: the header offers to sign in.
	if href := eval(`document.getElementById("sign-in-link")?.getAttribute("href") ?? ""`); href != "/login" {
		t.Errorf("header sign-in link %q", href)
	}
	ct.acceptLanguage("en-US,en;q=0.9")
	do("open /login in English", chromedp.Navigate(l.base+"/login"), chromedp.WaitVisible(chromedp.ID("username")))
	if lang := eval(`document.documentElement.lang`); lang != "en" {
		t.Errorf("Accept-Language en: <html lang=%q>", lang)
	}

	// ui_locales of the authorization request wins over Accept-Language
	// (en here), on the login page and after it.
	state := randString(12)
	flow := chromedp.Events(tab, network.RequestWillBeSent)
	do("open the authorization URL with ui_locales",
		chromedp.Navigate(app.conf.AuthCodeURL(state, oauth2.S256ChallengeOption(oauth2.GenerateVerifier()),
			oauth2.SetAuthURLParam("ui_locales", "de-DE fr-CA en"))),
		chromedp.WaitVisible(chromedp.ID("username")),
	)
	ct.at("/login")
	if lang := eval(`document.documentElement.lang`); lang != "fr" {
		t.Errorf("ui_locales de-DE fr-CA en: <html lang=%q>, want fr", lang)
	}
	// The login page names the service (its client_name).
	if s := text(chromedp.Text(chromedp.ID("signing-in-to"))); !strings.Contains(s, "Atelier Commun") || !strings.Contains(s, "continuer") {
		t.Errorf("login page names the service as %q", s)
	}
	shot("03-login-ui-locales-fr")

	// A wrong password: the field is invalid, tied to the message, focused.
	do("sign in with a wrong password",
		chromedp.SendKeys(chromedp.ID("username"), "alice"),
		chromedp.SendKeys(chromedp.ID("password"), "wrong password here"),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("login-error")),
	)
	if v := eval(`document.getElementById("password").getAttribute("aria-invalid") ?? ""`); v != "true" {
		t.Errorf("password aria-invalid %q, want true", v)
	}
	if v := eval(`document.getElementById("password").getAttribute("aria-describedby") ?? ""`); v != "login-error" {
		t.Errorf("password aria-describedby %q, want login-error", v)
	}
	if id := eval(`document.activeElement ? document.activeElement.id : ""`); id != "password" {
		t.Errorf("focus on %q after a wrong password, want password", id)
	}
	if msg := text(chromedp.Text(chromedp.ID("login-error"))); msg != "Identifiant ou mot de passe incorrect." {
		t.Errorf("wrong-password message %q, want it in French", msg)
	}
	if lang := eval(`document.documentElement.lang`); lang != "fr" {
		t.Errorf("after a wrong password: <html lang=%q>, want fr", lang)
	}
	shot("04-login-wrong-password")

	// The right password, typed where the focus already is.
	do("sign in",
		chromedp.SendKeys(chromedp.ID("password"), pw),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS("button[name=decision][value=allow]")),
	)
	ct.at("/consent")
	if lang := eval(`document.documentElement.lang`); lang != "fr" {
		t.Errorf("consent page: <html lang=%q>, want fr (ui_locales of the request)", lang)
	}
	if h := text(chromedp.Text(chromedp.CSS("h1"))); h != "Atelier Commun veut vous connecter" {
		t.Errorf("French consent heading %q", h)
	}
	// The header shows who is signed in, with a sign-out button.
	if who := text(chromedp.Text(chromedp.ID("signed-in-as"))); !strings.Contains(who, "alice") {
		t.Errorf("header says %q, not who is signed in", who)
	}
	if eval(`document.querySelector('header form[action="/logout"][method="post"] #sign-out') ? "yes" : ""`) != "yes" {
		t.Error("the header has no sign-out button posting to /logout")
	}

	// The consent page fits a 360 px wide screen.
	do("phone width", chromedp.EmulateViewport(360, 740), chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("button[name=decision][value=allow]")))
	if w, err := chromedp.Run(tab, chromedp.Evaluate[int](`document.scrollingElement.scrollWidth`)); err != nil || w > 360 || w < 300 {
		t.Errorf("consent page at 360 px: scrollWidth %d (%v), want ≤ 360 (no horizontal scroll)", w, err)
	}
	shot("05-consent-360px-fr")
	do("desktop width", chromedp.EmulateViewport(1024, 800))

	do("allow", chromedp.Click(chromedp.CSS("button[name=decision][value=allow]")))
	seen, err := followRequests(flow, app.redirect+"?")
	if err != nil {
		t.Fatal(err)
	}
	cb, _ := url.Parse(seen[len(seen)-1])
	if cb.Query().Get("code") == "" || cb.Query().Get("state") != state {
		t.Fatalf("callback %s: want code and state", cb)
	}

	// Signing out from the header.
	do("open the dashboard", navigateAfter(l.base+"/account"), chromedp.WaitVisible(chromedp.ID("did")))
	if who := text(chromedp.Text(chromedp.ID("signed-in-as"))); !strings.Contains(who, "alice") {
		t.Errorf("dashboard header says %q", who)
	}
	shot("06-dashboard-header")
	do("sign out from the header", chromedp.Click(chromedp.ID("sign-out")), chromedp.WaitVisible(chromedp.ID("sign-in-link")))
	ct.at("/logout")
	do("the dashboard now asks to sign in", chromedp.Navigate(l.base+"/account"), chromedp.WaitVisible(chromedp.ID("username")))
	ct.at("/login")
}

// TestBrowserSignUpSignsIn: signing up from a service's sign-in ends
// signed in, at the service's callback (after consent), without typing the
// password again; the sign-up form marks a taken handle invalid and
// focuses it.
func TestBrowserSignUpSignsIn(t *testing.T) {
	chromiumPath(t) // skip before starting a server
	l := startLive(t, sqliteEnv(t))
	l.env.must(t, "correct horse battery\n", "user", "create", "--username", "taken", "--password-stdin")
	app := newRP(t, l, "forum", nil)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	tab := startChromium(t, ctx)
	ct := &chromeTab{t: t, tab: tab, dir: screenshotDir(t)}
	do, text, shot, eval := ct.do, ct.text, ct.shot, ct.evalString

	state := randString(12)
	flow := chromedp.Events(tab, network.RequestWillBeSent)
	do("open the authorization URL",
		chromedp.Navigate(app.conf.AuthCodeURL(state, oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))),
		chromedp.WaitVisible(chromedp.ID("username")),
	)
	do("follow Create one", chromedp.Click(chromedp.CSS(`a[href^="/signup"]`)), chromedp.WaitVisible(chromedp.ID("handle")))
	ct.at("/signup")
	fill := func(handle string) {
		do("fill in the sign-up form",
			chromedp.SetValue(chromedp.ID("handle"), handle),
			chromedp.SetValue(chromedp.ID("password"), "a long enough password"),
		)
	}
	fill("taken")
	do("submit a taken handle", chromedp.Click(chromedp.CSS(`form[action="/signup"] button[type=submit]`)), chromedp.WaitVisible(chromedp.ID("handle-error")))
	if v := eval(`document.getElementById("handle").getAttribute("aria-invalid") ?? ""`); v != "true" {
		t.Errorf("taken handle: aria-invalid %q", v)
	}
	if v := eval(`document.getElementById("handle").getAttribute("aria-describedby") ?? ""`); !strings.HasPrefix(v, "handle-error") {
		t.Errorf("taken handle: aria-describedby %q", v)
	}
	if id := eval(`document.activeElement ? document.activeElement.id : ""`); id != "handle" {
		t.Errorf("focus on %q, want handle", id)
	}
	if e := text(chromedp.Text(chromedp.ID("handle-error"))); !strings.Contains(e, "already taken") {
		t.Errorf("handle error %q", e)
	}
	if eval(`document.getElementById("password").getAttribute("aria-invalid") ?? ""`) != "" {
		t.Error("the password is marked invalid though only the handle is")
	}
	shot("01-signup-taken")

	// The sign-up form still leads back to the service.
	fill("newcomer")
	do("create the account", chromedp.Click(chromedp.CSS(`form[action="/signup"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS("button[name=decision][value=allow]")))
	ct.at("/consent")
	if who := text(chromedp.Text(chromedp.ID("signed-in-as"))); !strings.Contains(who, "newcomer") {
		t.Errorf("after sign-up the header says %q", who)
	}
	shot("02-consent-after-signup")
	do("allow", chromedp.Click(chromedp.CSS("button[name=decision][value=allow]")))
	seen, err := followRequests(flow, app.redirect+"?")
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range seen {
		if p, _ := url.Parse(u); p.Path == "/login" && p.Query().Get("return_to") == "" {
			t.Errorf("sign-up went through a bare login page: %v", seen)
		}
	}
	cb, _ := url.Parse(seen[len(seen)-1])
	if cb.Query().Get("code") == "" || cb.Query().Get("state") != state {
		t.Fatalf("callback %s: want code and state", cb)
	}

	// Without a service: sign-up ends on the welcome page, signed in.
	if _, err := chromedp.Call(tab, network.ClearBrowserCookies, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	do("open /signup", navigateAfter(l.base+"/signup"), chromedp.WaitVisible(chromedp.ID("handle")))
	fill("walkin")
	do("create the account", chromedp.Click(chromedp.CSS(`form[action="/signup"] button[type=submit]`)), chromedp.WaitVisible(chromedp.ID("did")))
	if who := text(chromedp.Text(chromedp.ID("signed-in-as"))); !strings.Contains(who, "walkin") {
		t.Errorf("welcome page header says %q", who)
	}
	do("go to the account", chromedp.Click(chromedp.ID("continue")), chromedp.WaitVisible(chromedp.ID("handle")))
	ct.at("/account")
	if h := text(chromedp.Text(chromedp.ID("handle"))); h != "walkin" {
		t.Errorf("dashboard handle %q", h)
	}
	shot("03-dashboard-after-signup")
}
