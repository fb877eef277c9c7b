package main

import (
	"bytes"
	"context"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// importForm posts "Bring my identity" on /signup.
func (b *browser) importForm(base string, file []byte, passphrase, handle string) *page {
	b.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file", "export.json")
	fw.Write(file)
	mw.WriteField("passphrase", passphrase)
	mw.WriteField("new_handle", handle)
	mw.Close()
	req, _ := http.NewRequest("POST", base+"/signup/import", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return b.do(req)
}

// TestMoveThroughPages: "Download my identity" on the dashboard of a SQLite
// cloud, "Bring my identity" on the sign-up page of a PostgreSQL cloud in
// headless Chromium; same sub at the service on both; the old cloud shows
// the moved page.
func TestMoveThroughPages(t *testing.T) {
	t.Parallel()
	chromiumPath(t)
	a := startLive(t, sqliteEnv(t))
	b := startLive(t, postgresEnv(t))
	const pw = "correct horse battery"
	did := lastLine(a.env.must(t, pw+"\n", "user", "create", "--username", "alice", "--email", "alice@example.org", "--password-stdin"))
	redirect := "http://127.0.0.88:9/wiki/callback"
	onA, onB := newRPAt(t, a, "wiki", redirect), newRPAt(t, b, "wiki", redirect)
	br := newBrowser(t)
	subA, _ := subAt(t, br, onA, pw)

	// Download my identity: mismatched passphrases and short ones are refused.
	p := br.post(a.base+"/account/export", url.Values{"passphrase": {"a long passphrase here"}, "passphrase_confirm": {"another one entirely"}})
	if p.status != 400 || !strings.Contains(p.body, "differ") {
		t.Fatalf("mismatched passphrases: %d", p.status)
	}
	p = br.post(a.base+"/account/export", url.Values{"passphrase": {"short"}, "passphrase_confirm": {"short"}})
	if p.status != 400 || !strings.Contains(p.body, "at least 12") {
		t.Fatalf("short passphrase: %d %s", p.status, p.body)
	}
	req, _ := http.NewRequest("POST", a.base+"/account/export", strings.NewReader(url.Values{"passphrase": {"a long passphrase here"},
		"passphrase_confirm": {"a long passphrase here"}, "include_password": {"yes"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := br.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	file, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Disposition"), "attachment") || exportedDocument(t, file).Account.DID != did {
		t.Fatalf("download: %d %s", resp.StatusCode, resp.Header.Get("Content-Disposition"))
	}
	path := filepath.Join(t.TempDir(), "alice.json")
	os.WriteFile(path, file, 0o600)

	// A wrong passphrase on the page says so and writes nothing.
	if p := newBrowser(t).importForm(b.base, file, "not the passphrase", ""); p.status != 400 || !strings.Contains(p.body, "Wrong passphrase") {
		t.Fatalf("wrong passphrase on the page: %d", p.status)
	}

	// Bring my identity, in Chromium.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tab := startChromium(t, ctx)
	dir := screenshotDir(t)
	t.Logf("screenshots in %s", dir)
	ct := &chromeTab{t: t, tab: tab, dir: dir}
	ct.do("open /signup", chromedp.Navigate(b.base+"/signup"), chromedp.WaitVisible(chromedp.ID("file")))
	ct.shot("01-signup-bring")
	ct.do("bring my identity",
		chromedp.SetUploadFiles(chromedp.ID("file"), []string{path}),
		chromedp.SendKeys(chromedp.ID("import-passphrase"), "a long passphrase here"),
		chromedp.Click(chromedp.CSS(`form[action="/signup/import"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("move")),
	)
	ct.shot("02-imported")
	if got := ct.text(chromedp.Text(chromedp.ID("did"))); got != did {
		t.Fatalf("imported DID %q, want %q", got, did)
	}
	move, err := chromedp.Run(tab, chromedp.Value(chromedp.ID("move")))
	if err != nil || strings.Count(move, ".") != 2 {
		t.Fatalf("move statement %q: %v", move, err)
	}
	stmt := filepath.Join(t.TempDir(), "move.jws")
	os.WriteFile(stmt, []byte(move), 0o600)
	a.env.must(t, "", "user", "moved", "--statement", stmt)

	// The old cloud's login page shows where the account went.
	ct.do("sign in on the old cloud", chromedp.Navigate(a.base+"/login"), chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), "alice"), chromedp.SendKeys(chromedp.ID("password"), pw),
		chromedp.Click(chromedp.CSS("button[type=submit]")), chromedp.WaitVisible(chromedp.ID("new-home")))
	ct.shot("03-moved")
	if href, err := chromedp.Run(tab, chromedp.AttributeValue(chromedp.ID("new-home"), "href")); err != nil || !strings.HasPrefix(href.Value, b.base) {
		t.Fatalf("moved page links to %q: %v", href.Value, err)
	}
	// The service on the new cloud knows the person as before.
	subB, asked := subAt(t, newBrowser(t), onB, pw)
	if subB != subA || asked {
		t.Fatalf("new cloud: sub %s (old %s), consent asked again: %v", subB, subA, asked)
	}
}
