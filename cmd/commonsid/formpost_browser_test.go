package main

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"
)

// TestBrowserFormPost: with response_mode=form_post, Chromium, under the
// pages' Content-Security-Policy, submits the response page's form by
// itself, and a real listening service receives code, state and iss in
// the POST body.
func TestBrowserFormPost(t *testing.T) {
	t.Parallel()
	chromiumPath(t) // skip before starting a server
	l := startLive(t, sqliteEnv(t))
	l.env.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--email", "alice@example.org", "--password-stdin")

	got := make(chan url.Values, 1)
	svc := startHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/cb" && r.ParseForm() == nil {
			select {
			case got <- r.PostForm:
			default:
			}
		}
		w.Write([]byte("<!doctype html><title>service</title><p>ok</p>"))
	}))
	app := newRP(t, l, "posted", map[string]any{"redirect_uris": []string{svc + "/cb"}})
	app.conf.RedirectURL = svc + "/cb"

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute) // a whole browser session; a busy machine runs tests in parallel
	defer cancel()
	tab := startChromium(t, ctx)
	ct := &chromeTab{t: t, tab: tab, dir: screenshotDir(t)}

	state := randString(12)
	ct.do("open the authorization URL",
		chromedp.Navigate(app.conf.AuthCodeURL(state, oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("response_mode", "form_post"))),
		chromedp.WaitVisible(chromedp.ID("username")),
	)
	ct.do("sign in",
		chromedp.SendKeys(chromedp.ID("username"), "alice"),
		chromedp.SendKeys(chromedp.ID("password"), "correct horse battery"),
		chromedp.Click(chromedp.CSS("button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("button[name=decision][value=allow]")),
	)
	ct.do("allow", chromedp.Click(chromedp.CSS("button[name=decision][value=allow]")))
	select {
	case f := <-got:
		if f.Get("code") == "" || f.Get("state") != state || f.Get("iss") != l.base {
			t.Fatalf("the service received %v: want code, state and iss", f)
		}
	case <-ctx.Done():
		ct.shot("form-post-not-submitted")
		t.Fatal("the form_post page did not post to the service")
	}
}
