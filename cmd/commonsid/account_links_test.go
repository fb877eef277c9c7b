package main

import (
	"context"
	"database/sql"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/onecommons/commonsid/internal/smtptest"
)

// smtpEnv is an environment whose mail goes to an SMTP server in the test
// (STARTTLS, AUTH), configured through COMMONSID_SMTP.
func smtpEnv(t *testing.T, e env) (env, *smtptest.Server) {
	srv := smtptest.Start(t, smtptest.Options{Users: map[string]string{"cloud": "mail secret"}})
	e["COMMONSID_SMTP"] = "smtp://cloud:mail%20secret@" + srv.Addr + "?from=id@example.org&ca_file=" + url.QueryEscape(srv.CAFile)
	return e, srv
}

// mailedLink waits for message skip+1 to addr and returns its first link.
func mailedLink(t *testing.T, srv *smtptest.Server, addr string, skip int) (string, smtptest.Parsed) {
	t.Helper()
	p := srv.Wait(t, addr, skip, 15*time.Second).Parsed(t)
	links := smtptest.Links(p.Text)
	if len(links) == 0 {
		t.Fatalf("no link in the mail %q:\n%s", p.Subject, p.Text)
	}
	return links[0], p
}

// emailClaims signs in to the service with b (already signed in or with
// alice's password) and returns email_verified from the ID token and from
// UserInfo.
func emailClaims(t *testing.T, b *browser, app *rp, password string) (idToken, userInfo map[string]any) {
	t.Helper()
	ctx := context.Background()
	verifier := oauth2.GenerateVerifier()
	p := b.authorize(app.conf.AuthCodeURL(randString(16), oauth2.S256ChallengeOption(verifier), oidc.Nonce(randString(16))), "alice", password, nil)
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
	idt.Claims(&idToken)
	ui, err := app.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatalf("userinfo: %v", err)
	}
	ui.Claims(&userInfo)
	return idToken, userInfo
}

// useLink opens a mailed link (a GET that shows a form) and submits its
// form with extra fields; it returns the answer to the POST.
func useLink(t *testing.T, b *browser, link string, extra url.Values) *page {
	t.Helper()
	p := b.get(link)
	if p.status != http.StatusOK {
		t.Fatalf("GET %s: %d\n%s", link, p.status, p.body)
	}
	form := formValues(p.body)
	for k, v := range extra {
		form[k] = v
	}
	u, _ := url.Parse(link)
	return b.post(u.Scheme+"://"+u.Host+u.Path, form)
}

// TestVerifiedEmail: sign-up with an address mails a link; until it is
// opened services get email_verified false, after it true (ID token and
// UserInfo); the link works once; a changed address is unverified until
// its own link is opened, and the old address's link verifies nothing.
func TestVerifiedEmail(t *testing.T) {
	t.Parallel()
	e, srv := smtpEnv(t, sqliteEnv(t))
	l := startLive(t, e)
	app := newRP(t, l, "mailapp", nil)
	const pw = "correct horse battery"
	b := newBrowser(t)
	p := b.post(l.base+"/signup", url.Values{"handle": {"alice"}, "email": {"alice@example.net"}, "password": {pw}, "return_to": {"/account"}})
	if p.status >= 400 {
		t.Fatalf("signup: %d\n%s", p.status, p.body)
	}
	link, mail := mailedLink(t, srv, "alice@example.net", 0)
	if !strings.HasPrefix(link, l.base+"/verify-email?token=") || !strings.Contains(mail.HTML, "href=") {
		t.Fatalf("verification link %q", link)
	}
	if id, ui := emailClaims(t, b, app, pw); id["email"] != "alice@example.net" && ui["email"] != "alice@example.net" || ui["email_verified"] != false {
		t.Fatalf("before verification: id %v userinfo %v", id, ui)
	}
	if p := b.get(l.base + "/account/profile"); !strings.Contains(p.body, "not verified") || !strings.Contains(p.body, "/account/email/resend") {
		t.Fatalf("profile does not say unverified:\n%s", p.body)
	}
	// Only the hash is at rest.
	token := strings.TrimPrefix(link, l.base+"/verify-email?token=")
	db, err := sql.Open("sqlite", "file:"+filepath.Join(l.env["COMMONSID_DATA"], dbFile)+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	db.QueryRow(`SELECT count(*) FROM account_tokens WHERE token_hash = ?`, token).Scan(&n)
	if n != 0 {
		t.Fatal("the token itself is stored")
	}
	// Opening the link (GET) spends nothing; the form's POST verifies.
	b.get(link)
	if p := useLink(t, newBrowser(t), link, nil); p.status != http.StatusOK || !strings.Contains(p.body, "is verified") {
		t.Fatalf("verify: %d\n%s", p.status, p.body)
	}
	if p := newBrowser(t).post(l.base+"/verify-email", url.Values{"token": {token}}); p.status != http.StatusBadRequest {
		t.Fatalf("second use of the link: %d, want 400", p.status)
	}
	if id, ui := emailClaims(t, b, app, pw); ui["email_verified"] != true || (id["email_verified"] != nil && id["email_verified"] != true) {
		t.Fatalf("after verification: id %v userinfo %v", id, ui)
	}
	if p := b.get(l.base + "/account/profile"); !strings.Contains(p.body, "<strong>verified</strong>") {
		t.Fatalf("profile does not say verified:\n%s", p.body)
	}

	// A new address: unverified until its own link is opened.
	if p := b.post(l.base+"/account/profile", url.Values{"name": {"Alice"}, "email": {"ada@example.net"}}); p.status >= 400 {
		t.Fatalf("profile change: %d\n%s", p.status, p.body)
	}
	newLink, _ := mailedLink(t, srv, "ada@example.net", 0)
	if _, ui := emailClaims(t, b, app, pw); ui["email"] != "ada@example.net" || ui["email_verified"] != false {
		t.Fatalf("after the change: userinfo %v", ui)
	}
	// Resend: a new link replaces the earlier one.
	if p := b.post(l.base+"/account/email/resend", nil); p.status >= 400 {
		t.Fatalf("resend: %d\n%s", p.status, p.body)
	}
	resent, _ := mailedLink(t, srv, "ada@example.net", 1)
	if p := useLink(t, newBrowser(t), newLink, nil); p.status != http.StatusBadRequest {
		t.Fatalf("link replaced by a resend still works: %d", p.status)
	}
	if p := useLink(t, newBrowser(t), resent, nil); p.status != http.StatusOK {
		t.Fatalf("resent link: %d\n%s", p.status, p.body)
	}
	if _, ui := emailClaims(t, b, app, pw); ui["email_verified"] != true {
		t.Fatalf("after verifying the new address: userinfo %v", ui)
	}
}

// TestPasswordReset: the forgot form answers the same for an unknown
// account and mails nothing; for alice it mails a link that sets a new
// password once, ends every other session, is in the activity log and is
// followed by the password-changed mail; an expired link is refused; the
// operator's CLI prints a working link.
func TestPasswordReset(t *testing.T) {
	t.Parallel()
	e, srv := smtpEnv(t, sqliteEnv(t))
	l := startLive(t, e)
	const pw, pw2, pw3 = "correct horse battery", "new horse battery staple", "third horse battery"
	l.env.must(t, pw+"\n", "user", "create", "--username", "alice", "--email", "alice@example.net", "--password-stdin")
	other := newBrowser(t)
	if p := other.signIn(l.base, "alice", pw); p.url.Path != "/account" {
		t.Fatalf("sign-in: %d %s", p.status, p.url)
	}
	if p := other.get(l.base + "/login"); !strings.Contains(p.body, `href="/login/forgot"`) {
		t.Fatal("no Forgot password? link on the login page")
	}
	anon := newBrowser(t)
	unknown := anon.post(l.base+"/login/forgot", url.Values{"account": {"nobody"}})
	known := anon.post(l.base+"/login/forgot", url.Values{"account": {"alice@example.net"}})
	if unknown.status != http.StatusOK || unknown.body != known.body || !strings.Contains(known.body, "If an account matches") {
		t.Fatalf("answers differ: %d/%d\n%s\n---\n%s", unknown.status, known.status, unknown.body, known.body)
	}
	link, _ := mailedLink(t, srv, "alice@example.net", 0)
	if !strings.HasPrefix(link, l.base+"/login/reset?token=") {
		t.Fatalf("reset link %q", link)
	}
	if n := len(srv.Messages()); n != 1 {
		t.Fatalf("%d messages sent, want 1 (none for the unknown account)", n)
	}
	// A password that breaks the rules does not spend the link.
	if p := useLink(t, anon, link, url.Values{"password": {"short"}}); p.status != http.StatusBadRequest || !strings.Contains(p.body, "at least") {
		t.Fatalf("short password: %d\n%s", p.status, p.body)
	}
	if p := useLink(t, anon, link, url.Values{"password": {pw2}}); p.status != http.StatusOK || !strings.Contains(p.body, "password is changed") {
		t.Fatalf("reset: %d\n%s", p.status, p.body)
	}
	if p := useLink(t, anon, link, url.Values{"password": {pw3}}); p.status != http.StatusBadRequest {
		t.Fatalf("second use: %d, want 400", p.status)
	}
	changed := srv.Wait(t, "alice@example.net", 1, 15*time.Second).Parsed(t)
	if !strings.Contains(strings.ToLower(changed.Subject+changed.Text), "password") {
		t.Fatalf("password-changed mail: %q", changed.Subject)
	}
	if st, _, _ := other.api("GET", l.base+"/account/api/overview", nil); st != http.StatusUnauthorized {
		t.Fatalf("the other session after the reset: %d, want 401", st)
	}
	if st, _, _ := postLogin(t, noRedirect(), l.base, "alice", pw, nil); st != http.StatusUnauthorized {
		t.Fatalf("old password: %d, want 401", st)
	}
	b := newBrowser(t)
	if p := b.signIn(l.base, "alice", pw2); p.url.Path != "/account" {
		t.Fatalf("new password: %d %s", p.status, p.url)
	}
	if p := b.get(l.base + "/account/activity"); !strings.Contains(p.body, "password.reset") && !strings.Contains(strings.ToLower(p.body), "password reset") {
		t.Fatalf("no password.reset in the activity:\n%s", p.body)
	}

	// The operator's link: printed, and it works.
	cliLink := lastLine(l.env.must(t, "", "user", "reset-password", "alice"))
	if !strings.HasPrefix(cliLink, l.base+"/login/reset?token=") {
		t.Fatalf("CLI printed %q", cliLink)
	}
	// Expired: the clock of the row moved back 31 minutes.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(l.env["COMMONSID_DATA"], dbFile)+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE account_tokens SET expires_at = expires_at - ? WHERE purpose = 'reset_password' AND used_at IS NULL`, (31 * time.Minute).Microseconds()); err != nil {
		t.Fatal(err)
	}
	if p := useLink(t, anon, cliLink, url.Values{"password": {pw3}}); p.status != http.StatusBadRequest {
		t.Fatalf("expired link: %d, want 400", p.status)
	}
	r := l.env.run(t, "", "user", "reset-password", "--mail", "alice")
	if r.code != 0 || !strings.Contains(r.stderr, "mailed the link") {
		t.Fatalf("reset-password --mail: %d %s", r.code, r.stderr)
	}
	cliLink = lastLine(r.stdout)
	mailed, _ := mailedLink(t, srv, "alice@example.net", 2)
	if mailed != cliLink {
		t.Fatalf("mailed %q, printed %q", mailed, cliLink)
	}
	if p := useLink(t, anon, cliLink, url.Values{"password": {pw3}}); p.status != http.StatusOK {
		t.Fatalf("CLI link: %d\n%s", p.status, p.body)
	}
	if st, _, _ := postLogin(t, noRedirect(), l.base, "alice", pw3, nil); st != http.StatusSeeOther {
		t.Fatalf("password set through the CLI link: %d", st)
	}
}

// TestResetOutbox: without SMTP the reset mail is an .eml file in the
// data folder's outbox, with the working link in it.
func TestResetOutbox(t *testing.T) {
	t.Parallel()
	l := startLive(t, sqliteEnv(t))
	l.env.must(t, "correct horse battery\n", "user", "create", "--username", "bob", "--email", "bob@example.net", "--password-stdin")
	newBrowser(t).post(l.base+"/login/forgot", url.Values{"account": {"bob"}})
	dir := filepath.Join(l.env["COMMONSID_DATA"], "mail")
	var raw []byte
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && raw == nil; time.Sleep(50 * time.Millisecond) {
		files, _ := filepath.Glob(filepath.Join(dir, "*password-reset*.eml"))
		if len(files) > 0 {
			raw, _ = os.ReadFile(files[0])
		}
	}
	if raw == nil {
		t.Fatalf("no password-reset .eml in %s", dir)
	}
	p, err := smtptest.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	links := smtptest.Links(p.Text)
	if len(links) == 0 || !strings.HasPrefix(links[0], l.base+"/login/reset?token=") {
		t.Fatalf("outbox mail links %v", links)
	}
	if q := useLink(t, newBrowser(t), links[0], url.Values{"password": {"another horse battery"}}); q.status != http.StatusOK {
		t.Fatalf("outbox link: %d\n%s", q.status, q.body)
	}
}

// TestResetRateLimited: reset requests are limited per account (3 free,
// then a wait), for a name that matches nothing as for one that does, so
// the limit does not tell them apart; the 429 page links to the reset.
func TestResetRateLimited(t *testing.T) {
	e, srv := smtpEnv(t, limitsEnv(sqliteEnv(t)))
	l := startLive(t, e)
	l.env.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--email", "alice@example.net", "--password-stdin")
	for _, name := range []string{"alice", "nobody"} {
		var codes []int
		var last *page
		for range 4 {
			last = newBrowser(t).post(l.base+"/login/forgot", url.Values{"account": {name}})
			codes = append(codes, last.status)
		}
		if codes[2] != http.StatusOK || codes[3] != http.StatusTooManyRequests || last.header.Get("Retry-After") == "" || !strings.Contains(last.body, `href="/login/forgot"`) {
			t.Fatalf("%s: %v, want 200 ×3 then 429 with Retry-After and the reset link\n%s", name, codes, last.body)
		}
	}
	if n := len(srv.Messages()); n != 3 {
		t.Fatalf("%d reset mails, want 3", n)
	}
}
