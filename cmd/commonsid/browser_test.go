package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// chromiumPath finds Chromium: COMMONSID_TEST_CHROMIUM when set, else
// Debian's /usr/bin/chromium or chromium on PATH. Without one the test is
// skipped, or fails when COMMONSID_TEST_REQUIRE_CHROMIUM=1.
func chromiumPath(t *testing.T) string {
	t.Helper()
	candidates := []string{"/usr/bin/chromium", "chromium", "chromium-browser"}
	if p := os.Getenv("COMMONSID_TEST_CHROMIUM"); p != "" {
		candidates = []string{p}
	}
	var tried []string
	for _, c := range candidates {
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
		tried = append(tried, c)
	}
	msg := fmt.Sprintf("chromium not found (tried %s); set COMMONSID_TEST_CHROMIUM to its path", strings.Join(tried, ", "))
	if os.Getenv("COMMONSID_TEST_REQUIRE_CHROMIUM") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg) // chromium missing and not required
	return ""
}

// lockedBuffer collects the browser's output, written from another goroutine.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startChromium starts headless Chromium with a fresh profile and returns
// the context of its first tab. The browser is closed when ctx ends or at
// the end of the test.
func startChromium(t *testing.T, ctx context.Context) context.Context {
	t.Helper()
	path := chromiumPath(t)
	out := &lockedBuffer{}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox, // tests run as root in CI containers
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1024, 800),
		chromedp.CombinedOutput(out),
	)
	tab, cancelTab := chromedp.NewContext(allocCtx)
	// Cleanups run last in, first out: close the tab, then stop the browser.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("chromium output:\n%s", out)
		}
	})
	t.Cleanup(cancelAlloc)
	t.Cleanup(cancelTab)
	if err := chromedp.Do(tab); err != nil {
		t.Fatalf("start %s: %v\n%s", path, err, out)
	}
	return tab
}

// chromeTab wraps a Chromium tab with helpers that fail the test with what
// was being done, and saves screenshots into dir.
type chromeTab struct {
	t   *testing.T
	tab context.Context
	dir string
}

func (c *chromeTab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	c.t.Helper()
	if err := chromedp.Do(c.tab, steps...); err != nil {
		c.t.Fatalf("%s: %v", what, err)
	}
}

func (c *chromeTab) text(a chromedp.Action[string]) string {
	c.t.Helper()
	s, err := chromedp.Run(c.tab, a)
	if err != nil {
		c.t.Fatal(err)
	}
	return strings.TrimSpace(s)
}

func (c *chromeTab) shot(name string) {
	c.t.Helper()
	png, err := chromedp.Run(c.tab, chromedp.FullScreenshot(100)) // quality 100: PNG
	if err != nil {
		c.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(c.dir, name+".png"), png, 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// at fails unless the tab shows path, saving a screenshot of what it shows.
func (c *chromeTab) at(path string) {
	c.t.Helper()
	loc, err := url.Parse(c.text(chromedp.Location()))
	if err != nil || loc.Path != path {
		c.shot("unexpected-" + strings.NewReplacer("/", "-").Replace(strings.Trim(path, "/")))
		c.t.Fatalf("at %v, want %s", loc, path)
	}
}

// screenshotDir is COMMONSID_SCREENSHOTS/TestName, by default under the
// system's temporary folder; it is kept after the test for people to look at.
func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("COMMONSID_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "commonsid-screenshots")
	}
	dir = filepath.Join(dir, t.Name())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// followRequests reads the tab's document requests until one starts with
// prefix, and returns every document URL requested on the way, that one
// last. The relying party's redirect URI has no server behind it: the
// request is seen here even though the page then fails to load.
func followRequests(reqs iter.Seq2[network.EventRequestWillBeSent, error], prefix string) ([]string, error) {
	var urls []string
	for ev, err := range reqs {
		if err != nil {
			return urls, fmt.Errorf("waiting for a request to %s (document requests so far: %v): %w", prefix, urls, err)
		}
		if ev.Type != network.ResourceTypeDocument || ev.Request == nil {
			continue
		}
		urls = append(urls, ev.Request.URL)
		if strings.HasPrefix(ev.Request.URL, prefix) {
			return urls, nil
		}
	}
	return urls, errors.New("the event stream ended")
}

// navigateAfter is chromedp.Navigate for a tab that may still be loading
// the page a click led to (a service's callback, which the test only
// watches go out): a navigation the pending one aborted (net::ERR_ABORTED)
// is started again once that one is stopped, up to three times.
func navigateAfter(url string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		var err error
		for range 3 {
			if _, err = chromedp.Navigate(url)(ctx, tg); err == nil || !strings.Contains(err.Error(), "ERR_ABORTED") {
				return err
			}
			if _, err := chromedp.Stop()(ctx, tg); err != nil {
				return err
			}
			time.Sleep(100 * time.Millisecond)
		}
		return err
	})
}

// pathsOn returns the paths of the URLs on host (scheme://host:port).
func pathsOn(urls []string, host string) []string {
	var ps []string
	for _, u := range urls {
		if strings.HasPrefix(u, host+"/") {
			p, _ := url.Parse(u)
			ps = append(ps, p.Path)
		}
	}
	return ps
}

// TestBrowserFlow drives the pages in Chromium: sign-up, then a service
// signs the new person in through the login and consent pages, then a
// second service signs them in from the same browser without a password.
func TestBrowserFlow(t *testing.T) {
	t.Parallel()
	chromiumPath(t) // skip before starting a server
	l := startLive(t, sqliteEnv(t))
	svcA := newRP(t, l, "service-a", nil)
	svcA.conf.Scopes = append(svcA.conf.Scopes, "did")
	svcB := newRP(t, l, "service-b", nil)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute) // a whole browser session; a busy machine runs tests in parallel
	defer cancel()
	tab := startChromium(t, ctx)
	dir := screenshotDir(t)
	t.Logf("screenshots in %s", dir)

	// do runs browser actions, failing the test with what was being done.
	ct := &chromeTab{t: t, tab: tab, dir: dir}
	do, text, shot := ct.do, ct.text, ct.shot
	// expectPage checks that the tab shows path with this title and heading.
	expectPage := func(name, path, title, heading string) {
		t.Helper()
		loc, err := url.Parse(text(chromedp.Location()))
		if err != nil || loc.Path != path {
			shot(name + "-unexpected")
			t.Fatalf("%s: at %v, want %s", name, loc, path)
		}
		if got := text(chromedp.Title()); got != title {
			t.Errorf("%s: title %q, want %q", name, got, title)
		}
		if got := text(chromedp.Text(chromedp.CSS("h1"))); got != heading {
			t.Errorf("%s: heading %q, want %q", name, got, heading)
		}
		shot(name)
	}
	links := func() []string {
		t.Helper()
		hrefs, err := chromedp.Run(tab, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("a[href]"), a => a.href)`))
		if err != nil {
			t.Fatal(err)
		}
		return hrefs
	}
	checked := func(claim string) bool {
		t.Helper()
		on, err := chromedp.Run(tab, chromedp.Evaluate[bool](fmt.Sprintf(`document.querySelector('input[name=claim][value=%q]')?.checked === true`, claim)))
		if err != nil {
			t.Fatal(err)
		}
		return on
	}

	// Sign-up.
	const handle, password, name = "ada.lovelace", "correct horse battery staple", "Ada Lovelace"
	do("open /signup", chromedp.Navigate(l.base+"/signup"), chromedp.WaitVisible(chromedp.ID("handle")))
	expectPage("01-signup", "/signup", "Create your account · Commons ID", "Create your account")
	do("fill in the sign-up form",
		chromedp.SendKeys(chromedp.ID("handle"), handle),
		chromedp.SendKeys(chromedp.ID("name"), name),
		chromedp.SendKeys(chromedp.ID("email"), "ada@example.org"),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Click(chromedp.CSS("button[type=submit]")),
		chromedp.WaitVisible(chromedp.ID("did")),
	)
	expectPage("02-signup-done", "/signup", "Welcome · Commons ID", "Welcome, "+handle)
	did := text(chromedp.Text(chromedp.ID("did")))
	if !strings.HasPrefix(did, "did:key:") {
		t.Fatalf("sign-up shows DID %q, want a did:key", did)
	}
	// Sign-up signed the person in; service A's flow starts signed out.
	if _, err := chromedp.Call(tab, network.ClearBrowserCookies, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}

	// Service A: login, then consent, then the code at the redirect URI.
	state, nonce, verifier := randString(16), randString(16), oauth2.GenerateVerifier()
	flowA := chromedp.Events(tab, network.RequestWillBeSent)
	do("open service A's authorization URL",
		chromedp.Navigate(svcA.conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce))),
		chromedp.WaitVisible(chromedp.ID("username")),
	)
	expectPage("03-login", "/login", "Sign in · Commons ID", "Sign in")
	do("sign in",
		chromedp.SendKeys(chromedp.ID("username"), handle),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Click(chromedp.CSS("button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("button[name=decision][value=allow]")),
	)
	expectPage("04-consent", "/consent", "Share with service-a? · Commons ID", "service-a wants to sign you in")
	// Untick the email address: the browser's form submission must carry it.
	if !checked("email") || !checked("name") || !checked("did") {
		t.Errorf("consent: email, name and did should start ticked")
	}
	do("untick email", chromedp.Click(chromedp.CSS(`input[name=claim][value="email"]`)))
	if checked("email") {
		t.Fatal("the email checkbox is still ticked after a click")
	}
	if who := text(chromedp.Text(chromedp.CSS(".who"))); !strings.Contains(who, handle) {
		t.Errorf("consent page says %q, not who is signed in", who)
	}
	hrefs := links()
	for _, want := range []string{"https://code.example.org/service-a", "https://example.org/service-a/privacy"} {
		if !slices.Contains(hrefs, want) {
			t.Errorf("consent page has no link to %s; links: %v", want, hrefs)
		}
	}
	do("allow service A", chromedp.Click(chromedp.CSS("button[name=decision][value=allow]")))
	seen, err := followRequests(flowA, svcA.redirect+"?")
	if err != nil {
		t.Fatal(err)
	}
	if got := pathsOn(seen, l.base); !slices.Contains(got, "/login") || !slices.Contains(got, "/consent") {
		t.Errorf("service A's flow went through %v, want /login and /consent", got)
	}
	back, _ := url.Parse(seen[len(seen)-1])
	if e := back.Query().Get("error"); e != "" {
		t.Fatalf("service A got error %q: %s", e, back.Query().Get("error_description"))
	}
	if back.Query().Get("state") != state {
		t.Fatalf("state %q, want %q", back.Query().Get("state"), state)
	}
	tokA, err := svcA.conf.Exchange(ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("service A's code exchange: %v", err)
	}
	rawA, _ := tokA.Extra("id_token").(string)
	idA, err := svcA.provider.Verifier(&oidc.Config{ClientID: svcA.conf.ClientID}).Verify(ctx, rawA)
	if err != nil {
		t.Fatalf("service A's ID token: %v", err)
	}
	if idA.Subject == "" || idA.Nonce != nonce {
		t.Fatalf("service A's ID token: sub %q, nonce %q", idA.Subject, idA.Nonce)
	}
	ui, err := svcA.provider.UserInfo(ctx, oauth2.StaticTokenSource(tokA))
	if err != nil {
		t.Fatalf("userinfo: %v", err)
	}
	var claims map[string]any
	ui.Claims(&claims)
	if claims["name"] != name || claims["did"] != did {
		t.Errorf("userinfo = %v, want name %q and the DID shown at sign-up %q", claims, name, did)
	}
	if _, ok := claims["email"]; ok {
		t.Errorf("userinfo releases the email unticked in the browser: %v", claims)
	}

	// Service B: the browser's session signs the person in; only consent.
	stateB, verifierB := randString(16), oauth2.GenerateVerifier()
	flowB := chromedp.Events(tab, network.RequestWillBeSent)
	do("open service B's authorization URL",
		chromedp.Navigate(svcB.conf.AuthCodeURL(stateB, oauth2.S256ChallengeOption(verifierB))))
	expectPage("05-consent-b", "/consent", "Share with service-b? · Commons ID", "service-b wants to sign you in")
	do("allow service B", chromedp.Click(chromedp.CSS("button[name=decision][value=allow]")))
	seen, err = followRequests(flowB, svcB.redirect+"?")
	if err != nil {
		t.Fatal(err)
	}
	if got := pathsOn(seen, l.base); slices.Contains(got, "/login") {
		t.Fatalf("service B's flow showed the login page: %v", got)
	}
	back, _ = url.Parse(seen[len(seen)-1])
	if back.Query().Get("state") != stateB {
		t.Fatalf("service B: state %q, want %q (%s)", back.Query().Get("state"), stateB, back)
	}
	tokB, err := svcB.conf.Exchange(ctx, back.Query().Get("code"), oauth2.VerifierOption(verifierB))
	if err != nil {
		t.Fatalf("service B's code exchange: %v", err)
	}
	rawB, _ := tokB.Extra("id_token").(string)
	idB, err := svcB.provider.Verifier(&oidc.Config{ClientID: svcB.conf.ClientID}).Verify(ctx, rawB)
	if err != nil {
		t.Fatalf("service B's ID token: %v", err)
	}
	if idB.Subject == "" || idB.Subject == idA.Subject {
		t.Fatalf("service B's sub %q (service A's %q): want a different pairwise sub", idB.Subject, idA.Subject)
	}

	// A returning person without a session: sign in once more, and the
	// remembered consent sends them straight back to service A (the
	// redirect after the login form must not be blocked by the page's CSP).
	if _, err := chromedp.Call(tab, network.ClearBrowserCookies, cdp.Empty{}); err != nil {
		t.Fatalf("forget the session: %v", err)
	}
	stateA2, verifierA2 := randString(16), oauth2.GenerateVerifier()
	flowA2 := chromedp.Events(tab, network.RequestWillBeSent)
	do("open service A's authorization URL again",
		chromedp.Navigate(svcA.conf.AuthCodeURL(stateA2, oauth2.S256ChallengeOption(verifierA2))))
	expectPage("06-login-again", "/login", "Sign in · Commons ID", "Sign in")
	do("sign in again",
		chromedp.SendKeys(chromedp.ID("username"), handle),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Click(chromedp.CSS("button[type=submit]")),
	)
	seen, err = followRequests(flowA2, svcA.redirect+"?")
	if err != nil {
		shot("06-login-again-stuck")
		t.Fatalf("returning sign-in never reached service A: %v", err)
	}
	if got := pathsOn(seen, l.base); slices.Contains(got, "/consent") {
		t.Fatalf("remembered consent was asked again: %v", got)
	}
	back, _ = url.Parse(seen[len(seen)-1])
	if back.Query().Get("state") != stateA2 || back.Query().Get("code") == "" {
		t.Fatalf("returning sign-in: %s", back)
	}
	if _, err := svcA.conf.Exchange(ctx, back.Query().Get("code"), oauth2.VerifierOption(verifierA2)); err != nil {
		t.Fatalf("returning sign-in's code exchange: %v", err)
	}
}
