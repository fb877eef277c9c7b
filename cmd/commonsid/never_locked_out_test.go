package main

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/internal/smtptest"
)

// mailWith waits for a message to addr whose subject contains subject.
func mailWith(t *testing.T, srv *smtptest.Server, addr, subject string) smtptest.Parsed {
	t.Helper()
	for skip := 0; ; skip++ {
		p := srv.Wait(t, addr, skip, 15*time.Second).Parsed(t)
		if strings.Contains(p.Subject, subject) {
			return p
		}
	}
}

// TestResetRevokesTokens: a password reset revokes what the old password
// gave services: the refresh token a service holds is refused
// (invalid_grant), the service is told by a back-channel logout token, the
// consent stays, and the activity entry counts the revoked tokens.
func TestResetRevokesTokens(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e, srv := smtpEnv(t, sqliteEnv(t))
	e["COMMONSID_BACKCHANNEL_RETRY"] = (300 * time.Millisecond).String()
	l := startLive(t, e)
	const pw = "correct horse battery"
	l.env.must(t, pw+"\n", "user", "create", "--username", "alice", "--email", "alice@example.net", "--password-stdin")
	recv := newLogoutReceiver(t, 0)
	app := newRP(t, l, "notes", map[string]any{"backchannel_logout_uri": recv.URL + "/backchannel"})
	b := newBrowser(t)
	verifier := oauth2.GenerateVerifier()
	p := b.authorize(app.conf.AuthCodeURL(randString(16), oauth2.S256ChallengeOption(verifier), oidc.Nonce(randString(16))), "alice", pw, nil)
	tok, err := app.conf.Exchange(ctx, p.url.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil || tok.RefreshToken == "" {
		t.Fatalf("exchange: %v (refresh token %q)", err, tok.RefreshToken)
	}
	// The refresh token works before the reset.
	st, rt := postForm(t, l.base+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, app.conf.ClientID, app.conf.ClientSecret)
	if st != http.StatusOK {
		t.Fatalf("refresh before the reset: %d %v", st, rt)
	}
	refresh := rt["refresh_token"].(string)

	newBrowser(t).post(l.base+"/login/forgot", url.Values{"account": {"alice"}})
	link, _ := mailedLink(t, srv, "alice@example.net", 0)
	if p := useLink(t, newBrowser(t), link, url.Values{"password": {"a brand new horse battery"}}); p.status != http.StatusOK {
		t.Fatalf("reset: %d\n%s", p.status, p.body)
	}
	st, out := postForm(t, l.base+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}}, app.conf.ClientID, app.conf.ClientSecret)
	if st != http.StatusBadRequest || out["error"] != "invalid_grant" {
		t.Fatalf("refresh after the reset: %d %v, want 400 invalid_grant", st, out)
	}
	ks := oidc.NewRemoteKeySet(ctx, l.base+"/jwks.json")
	if c := verifyLogoutToken(t, ks, l.base, app.conf.ClientID, recv.next(t, "password reset")); c["sub"] == nil {
		t.Fatalf("logout token without sub: %v", c)
	}
	// The consent stays: signing in again asks nothing.
	b2 := newBrowser(t)
	b2.signIn(l.base, "alice", "a brand new horse battery")
	consents := b2.get(l.base + "/account/services")
	if !strings.Contains(consents.body, "notes") {
		t.Fatalf("the consent did not survive the reset:\n%s", consents.body)
	}
	act := b2.get(l.base + "/account/api/activity")
	if !strings.Contains(act.body, "tokens revoked: ") || strings.Contains(act.body, "tokens revoked: 0") {
		t.Fatalf("activity does not count the revoked tokens:\n%s", act.body)
	}
}

// TestOwnerNotLockedOutBy100 is the lockout test: an attacker's 100
// wrong passwords from one address, then the owner on a device they signed
// in from before signs in at once; the attacker's address stays slowed.
func TestOwnerNotLockedOutBy100(t *testing.T) {
	t.Parallel()
	// Behind a trusted proxy, so that the owner and the attacker have
	// addresses of their own.
	e := limitsEnv(sqliteEnv(t))
	e["COMMONSID_TRUSTED_PROXIES"] = "127.0.0.1/32"
	l := startLive(t, e)
	l.env.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--password-stdin")
	ownerAddr := map[string]string{"X-Forwarded-For": "203.0.113.20"}
	attackerAddr := map[string]string{"X-Forwarded-For": "198.51.100.66"}
	owner := noRedirect()
	if st, _, _ := postLogin(t, owner, l.base, "alice", "correct horse battery", ownerAddr); st != http.StatusSeeOther {
		t.Fatalf("first sign-in: %d", st)
	}
	attacker := noRedirect()
	limited := 0
	for range 100 {
		st, _, _ := postLogin(t, attacker, l.base, "alice", "wrong password", attackerAddr)
		if st == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited < 90 {
		t.Fatalf("only %d of 100 wrong passwords were limited", limited)
	}
	start := time.Now()
	if st, _, _ := postLogin(t, owner, l.base, "alice", "correct horse battery", ownerAddr); st != http.StatusSeeOther {
		t.Fatalf("the owner on a known device after 100 failures: %d, want 303", st)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the owner waited %v", d)
	}
	if st, _, _ := postLogin(t, attacker, l.base, "alice", "correct horse battery", attackerAddr); st != http.StatusTooManyRequests {
		t.Fatalf("the attacker's device with the right password: %d, want 429", st)
	}
}

// TestRecoveryKitPassesSecondFactor: a person whose authenticator app is
// lost signs in with the password and the recovery phrase in its place; a
// phrase of another kit and one that is no phrase are refused and spend
// an attempt of the pending sign-in; the right one signs in, is in the
// activity log and is mailed to the verified address; five wrong phrases
// end the pending sign-in.
func TestRecoveryKitPassesSecondFactor(t *testing.T) {
	t.Parallel()
	e, srv := smtpEnv(t, sqliteEnv(t))
	c, _ := startWebVHCloud(t, e)
	const pw = "correct horse battery"
	b := newBrowser(t)
	p := b.post(c.base+"/signup", url.Values{"handle": {"alice"}, "email": {"alice@example.net"}, "password": {pw}, "return_to": {"/account"}})
	phrase, _ := recoveryKitPage(t, p)
	link, _ := mailedLink(t, srv, "alice@example.net", 0)
	if p := useLink(t, newBrowser(t), link, nil); p.status != http.StatusOK {
		t.Fatalf("verify: %d", p.status)
	}
	if !b.signedIn(c.base) {
		b.signIn(c.base, "alice", pw)
	}
	p = b.post(c.base+"/account/mfa/totp/begin", url.Values{"password": {pw}})
	m := totpKeyRE.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("enrolment: %d\n%s", p.status, p.body)
	}
	if p := b.post(c.base+"/account/mfa/totp/confirm", url.Values{"code": {totpCode(t, m[1], time.Now())}}); p.status != http.StatusOK {
		t.Fatalf("confirm: %d", p.status)
	}
	if p := b.post(c.base+"/account/mfa/require", url.Values{"password": {pw}, "required": {"on"}}); p.url.Path != "/account/security" {
		t.Fatalf("require: %d %s", p.status, p.url)
	}

	// The phone is lost: a new browser, the password, then the kit.
	lost := newBrowser(t)
	p = lost.signIn(c.base, "alice", pw)
	if p.url.Path != "/login/second-factor" || !strings.Contains(p.body, `href="/login/second-factor/kit"`) {
		t.Fatalf("second-factor page without the kit: %d %s\n%s", p.status, p.url, p.body)
	}
	if p := lost.get(c.base + "/login/second-factor/kit"); p.status != http.StatusOK || !strings.Contains(p.body, `name="phrase"`) {
		t.Fatalf("kit page: %d\n%s", p.status, p.body)
	}
	other, err := identity.NewRecoveryKit()
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{other.Phrase(), "not a recovery phrase"} {
		p := lost.post(c.base+"/login/second-factor/kit", url.Values{"phrase": {bad}})
		if p.status != http.StatusUnauthorized || !strings.Contains(p.body, "tries left") || lost.signedIn(c.base) {
			t.Fatalf("a wrong phrase: %d signed in %v\n%s", p.status, lost.signedIn(c.base), p.body)
		}
	}
	if !strings.Contains(lost.post(c.base+"/login/second-factor/kit", url.Values{"phrase": {other.Phrase()}}).body, "not the one of this account") {
		t.Fatal("another kit's phrase is not named as such")
	}
	p = lost.post(c.base+"/login/second-factor/kit", url.Values{"phrase": {strings.ToUpper(phrase)}})
	if !lost.signedIn(c.base) {
		t.Fatalf("the right phrase: %d %s\n%s", p.status, p.url, p.body)
	}
	if act := lost.get(c.base + "/account/activity"); !strings.Contains(act.body, "Recovery kit used in place of the second factor") {
		t.Fatalf("activity lacks the kit:\n%s", act.body)
	}
	notice := mailWith(t, srv, "alice@example.net", "recovery kit")
	if !strings.Contains(notice.Text, "in place of its second factor") {
		t.Fatalf("kit notice:\n%s", notice.Text)
	}
	// Five wrong phrases end a pending sign-in.
	again := newBrowser(t)
	again.signIn(c.base, "alice", pw)
	for i := range 5 {
		p := again.post(c.base+"/login/second-factor/kit", url.Values{"phrase": {other.Phrase()}})
		if i == 4 && !strings.Contains(p.body, "sign in again") {
			t.Fatalf("fifth wrong phrase: %d\n%s", p.status, p.body)
		}
	}
	if again.post(c.base+"/login/second-factor/kit", url.Values{"phrase": {phrase}}); again.signedIn(c.base) {
		t.Fatal("the right phrase after the attempts ran out signed in")
	}
}

// kitAccount signs up alice on a did:webvh cloud with an authenticator app
// she requires, and returns her recovery phrase.
func kitAccount(t *testing.T, base, pw string) string {
	t.Helper()
	b := newBrowser(t)
	phrase, _ := recoveryKitPage(t, b.post(base+"/signup", url.Values{"handle": {"alice"}, "password": {pw}, "return_to": {"/account"}}))
	if !b.signedIn(base) {
		b.signIn(base, "alice", pw)
	}
	m := totpKeyRE.FindStringSubmatch(b.post(base+"/account/mfa/totp/begin", url.Values{"password": {pw}}).body)
	if m == nil {
		t.Fatal("no authenticator key shown")
	}
	b.post(base+"/account/mfa/totp/confirm", url.Values{"code": {totpCode(t, m[1], time.Now())}})
	if p := b.post(base+"/account/mfa/require", url.Values{"password": {pw}, "required": {"on"}}); p.url.Path != "/account/security" {
		t.Fatalf("require: %d %s", p.status, p.url)
	}
	return phrase
}

// TestBrowserRecoveryKitSecondFactor drives the lost-second-factor path in
// Chromium: password, the second-factor page's link to the recovery kit, a
// wrong phrase refused on the page with the field marked, the right phrase
// signs in.
func TestBrowserRecoveryKitSecondFactor(t *testing.T) {
	t.Parallel()
	chromiumPath(t)
	c, _ := startWebVHCloud(t, sqliteEnv(t))
	const pw = "correct horse battery"
	phrase := kitAccount(t, c.base, pw)
	other, _ := identity.NewRecoveryKit()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tab := startChromium(t, ctx)
	ct := &chromeTab{t: t, tab: tab, dir: screenshotDir(t)}
	ct.do("sign in with the password",
		chromedp.Navigate(c.base+"/login"), chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), "alice"),
		chromedp.SendKeys(chromedp.ID("password"), pw),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("use-recovery-kit")),
	)
	ct.at("/login/second-factor")
	ct.shot("01-second-factor")
	ct.do("open the recovery kit page", chromedp.Click(chromedp.ID("use-recovery-kit")), chromedp.WaitVisible(chromedp.ID("phrase")))
	ct.at("/login/second-factor/kit")
	ct.do("a wrong phrase",
		chromedp.SendKeys(chromedp.ID("phrase"), other.Phrase()),
		chromedp.Click(chromedp.CSS(`form[action="/login/second-factor/kit"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("phrase-error")),
	)
	ct.shot("02-wrong-phrase")
	if msg := ct.text(chromedp.Text(chromedp.ID("phrase-error"))); !strings.Contains(msg, "not the one of this account") {
		t.Fatalf("wrong phrase message %q", msg)
	}
	invalid, err := chromedp.Run(tab, chromedp.Evaluate[string](`document.getElementById("phrase").getAttribute("aria-invalid") || ""`))
	if err != nil || invalid != "true" {
		t.Fatalf("the phrase field is not marked invalid: %q %v", invalid, err)
	}
	ct.do("the right phrase",
		chromedp.SendKeys(chromedp.ID("phrase"), phrase),
		chromedp.Click(chromedp.CSS(`form[action="/login/second-factor/kit"] button[type=submit]`)),
		chromedp.WaitNotPresent(chromedp.ID("phrase")),
		chromedp.Navigate(c.base+"/account/activity"), chromedp.WaitVisible(chromedp.CSS("h1")),
	)
	ct.at("/account/activity")
	ct.shot("03-signed-in")
	if body := ct.text(chromedp.Text(chromedp.CSS("body"))); !strings.Contains(body, "Recovery kit used in place of the second factor") {
		t.Fatalf("activity after the kit sign-in:\n%s", body)
	}
}

// subjects counts the messages to addr whose subject contains each of
// want, after the mail has settled.
func subjects(t *testing.T, srv *smtptest.Server, addr string, want ...string) map[string]int {
	t.Helper()
	for n := -1; n != len(srv.Messages()); {
		n = len(srv.Messages())
		time.Sleep(time.Second)
	}
	out := map[string]int{}
	for _, m := range srv.Messages() {
		if len(m.To) != 1 || m.To[0] != addr {
			continue
		}
		s := m.Parsed(t).Subject
		for _, w := range want {
			if strings.Contains(s, w) {
				out[w]++
			}
		}
	}
	return out
}

// TestSignInNoticesByMail: through a real SMTP server, a sign-in from a
// new device mails the verified address once and the same device again
// mails nothing; wrong passwords that start the account's delay mail the
// lockout notice, and a second lockout within the hour (after a password
// reset started the budget again) mails none.
func TestSignInNoticesByMail(t *testing.T) {
	t.Parallel()
	e, srv := smtpEnv(t, limitsEnv(sqliteEnv(t)))
	e["COMMONSID_TRUSTED_PROXIES"] = "127.0.0.1/32"
	l := startLive(t, e)
	const pw, addr = "correct horse battery", "alice@example.net"
	const newDevice, lockout = "New sign-in", "Wrong password attempts"
	b := newBrowser(t)
	b.post(l.base+"/signup", url.Values{"handle": {"alice"}, "email": {addr}, "password": {pw}, "return_to": {"/account"}})
	link, _ := mailedLink(t, srv, addr, 0)
	if p := useLink(t, newBrowser(t), link, nil); p.status != http.StatusOK {
		t.Fatalf("verify: %d", p.status)
	}
	dev := newBrowser(t)
	if p := dev.signIn(l.base, "alice", pw); p.url.Path != "/account" {
		t.Fatalf("sign-in: %d %s", p.status, p.url)
	}
	n := mailWith(t, srv, addr, newDevice)
	if !strings.Contains(n.Text, "has not been used with it before") {
		t.Fatalf("new-device mail:\n%s", n.Text)
	}
	dev.get(l.base + "/logout")
	dev.signIn(l.base, "alice", pw)
	if got := subjects(t, srv, addr, newDevice); got[newDevice] != 1 {
		t.Fatalf("%d new-device mails after a second sign-in from the same device, want 1", got[newDevice])
	}
	attack := func() {
		for range 6 {
			postLogin(t, noRedirect(), l.base, "alice", "wrong password", map[string]string{"X-Forwarded-For": "198.51.100.7"})
		}
	}
	attack()
	mailWith(t, srv, addr, lockout)
	// A reset starts the account's budget again; the next lockout within
	// the hour is not mailed.
	newBrowser(t).post(l.base+"/login/forgot", url.Values{"account": {"alice"}})
	reset := mailWith(t, srv, addr, "Reset your password")
	var resetLink string
	for _, u := range smtptest.Links(reset.Text) {
		if strings.Contains(u, "/login/reset?token=") {
			resetLink = u
		}
	}
	if p := useLink(t, newBrowser(t), resetLink, url.Values{"password": {"another horse battery"}}); p.status != http.StatusOK {
		t.Fatalf("reset: %d", p.status)
	}
	if st, _, _ := postLogin(t, noRedirect(), l.base, "alice", "wrong password", map[string]string{"X-Forwarded-For": "198.51.100.8"}); st != http.StatusUnauthorized {
		t.Fatalf("after the reset: %d, want 401 (a fresh budget)", st)
	}
	attack()
	if got := subjects(t, srv, addr, lockout); got[lockout] != 1 {
		t.Fatalf("%d lockout mails after two lockouts within the hour, want 1", got[lockout])
	}
}
