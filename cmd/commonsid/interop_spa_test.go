package main

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The steps of the single-page app (testdata/interop/spa/app.mjs): a public
// client has no introspection (that takes client authentication), and its
// second authorization is reported on its own.
var interopSPASteps = []string{
	"discovery", "authorize", "exchange", "userinfo", "refresh", "revoke", "userinfo_revoked",
	"revoke_refresh", "dead_refresh", "rotated_refresh", "reused_code", "authorize_again", "bad_verifier", "logout",
}

// runInteropSPA serves the single-page app from its own loopback origin
// (another port, so every call to the issuer is cross-origin and needs
// CORS), registers it as a public client, and lets Chromium run it while the
// test signs the person in on the issuer's pages. It returns the steps the
// page wrote into #results, and the client_id.
func runInteropSPA(t *testing.T, l *live) ([]interopStep, string) {
	t.Helper()
	chromiumPath(t) // skip before starting anything
	_, nodeDir := interopNode(t)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	origin := "http://" + ln.Addr().String()
	app := newRP(t, l, "spa", map[string]any{
		"redirect_uris":              []string{origin + "/callback"},
		"post_logout_redirect_uris":  []string{origin + "/logged-out"},
		"token_endpoint_auth_method": "none",
	})
	_, disc := get(t, l.base+"/.well-known/openid-configuration")
	config, _ := json.Marshal(map[string]any{
		"issuer": l.base, "client_id": app.conf.ClientID,
		"redirect_uri": origin + "/callback", "post_logout_redirect_uri": origin + "/logged-out",
		"metadata": json.RawMessage(disc),
	})
	spaDir := filepath.Join("testdata", "interop", "spa")
	mux := http.NewServeMux()
	for _, p := range []string{"GET /{$}", "GET /callback", "GET /logged-out"} {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			http.ServeFile(w, r, filepath.Join(spaDir, "index.html"))
		})
	}
	mux.HandleFunc("GET /app.mjs", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		http.ServeFile(w, r, filepath.Join(spaDir, "app.mjs"))
	})
	mux.HandleFunc("GET /oauth4webapi.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		http.ServeFile(w, r, filepath.Join(nodeDir, "node_modules", "oauth4webapi", "build", "index.js"))
	})
	mux.HandleFunc("GET /config.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(config)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute) // a whole browser session; a busy machine runs tests in parallel
	defer cancel()
	tab := startChromium(t, ctx)
	ct := &chromeTab{t: t, tab: tab, dir: screenshotDir(t)}
	ct.do("open the single-page app", chromedp.Navigate(origin+"/"))

	// Play the person: sign in on the login page and allow on the consent
	// page whenever the app sends the browser there, until the app is done.
	deadline := time.Now().Add(45 * time.Second)
	for {
		if time.Now().After(deadline) {
			ct.shot("spa-stuck")
			loc, _ := chromedp.Run(tab, chromedp.Location())
			t.Fatalf("the single-page app did not finish within 45s; at %s", loc)
		}
		loc, err := chromedp.Run(tab, chromedp.Location())
		if err != nil {
			time.Sleep(200 * time.Millisecond) // navigating
			continue
		}
		u, _ := url.Parse(loc)
		switch {
		case strings.HasPrefix(loc, l.base+"/login"):
			chromedp.Do(tab,
				chromedp.WaitVisible(chromedp.ID("username")),
				chromedp.SendKeys(chromedp.ID("username"), interopUser),
				chromedp.SendKeys(chromedp.ID("password"), interopPassword),
				chromedp.Click(chromedp.CSS("button[type=submit]")),
			)
			waitLeave(tab, loc)
		case strings.HasPrefix(loc, l.base+"/consent"):
			chromedp.Do(tab, chromedp.Click(chromedp.CSS("button[name=decision][value=allow]")))
			waitLeave(tab, loc)
		case u != nil && u.Scheme+"://"+u.Host == origin:
			done, err := chromedp.Run(tab, chromedp.Evaluate[bool](`document.getElementById("done") !== null`))
			if err == nil && done {
				raw, err := chromedp.Run(tab, chromedp.Text(chromedp.ID("results")))
				if err != nil {
					t.Fatalf("read the app's results: %v", err)
				}
				var steps []interopStep
				if err := json.Unmarshal([]byte(raw), &steps); err != nil {
					t.Fatalf("the app's results %q: %v", raw, err)
				}
				ct.shot("spa-done")
				return steps, app.conf.ClientID
			}
		case strings.HasPrefix(loc, l.base):
			ct.shot("spa-issuer-page")
			body, _ := chromedp.Run(tab, chromedp.Text(chromedp.CSS("body")))
			t.Fatalf("the app's flow stopped on the issuer's page %s: %s", loc, body)
		}
		time.Sleep(150 * time.Millisecond)
	}
}

// waitLeave waits, briefly, until the tab has left loc.
func waitLeave(tab context.Context, loc string) {
	for range 40 {
		now, err := chromedp.Run(tab, chromedp.Location())
		if err == nil && now != loc || errors.Is(err, context.DeadlineExceeded) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
