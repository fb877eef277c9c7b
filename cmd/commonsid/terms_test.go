package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// commitmentsDoc is a valid commons_commitments document (docs/commons-terms.md).
func commitmentsDoc(emailRetention string) map[string]any {
	return map[string]any{
		"version": 1,
		"keeps": []any{
			map[string]any{"claim": "email", "retention": emailRetention, "purpose": "receipts"},
			map[string]any{"scope": "profile", "retention": "session"},
		},
		"forks":  map[string]any{"shares": "pairwise_ids"},
		"export": true,
	}
}

// commonsMeta is the metadata of a service that meets the commons' terms.
func commonsMeta(name, redirect, source string) map[string]any {
	return map[string]any{
		"client_name": name, "redirect_uris": []string{redirect},
		"source_code_uri": source, "policy_uri": "https://" + name + ".example/privacy", "tos_uri": "https://" + name + ".example/tos",
		"commons_commitments": commitmentsDoc("P1Y"),
	}
}

func without(m map[string]any, keys ...string) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for _, k := range keys {
		delete(out, k)
	}
	return out
}

func with(m map[string]any, k string, v any) map[string]any {
	out := without(m)
	out[k] = v
	return out
}

// sendRegistration sends metadata to the registration endpoint (POST) or a
// registration's URI (PUT, with its access token) and returns the answer.
func sendRegistration(t *testing.T, method, u, token string, meta map[string]any) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(meta)
	req, _ := http.NewRequest(method, u, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// wantRefused checks an invalid_client_metadata answer whose description
// says every one of says.
func wantRefused(t *testing.T, what string, status int, out map[string]any, says ...string) {
	t.Helper()
	desc, _ := out["error_description"].(string)
	if status != http.StatusBadRequest || out["error"] != "invalid_client_metadata" {
		t.Errorf("%s: %d %v, want 400 invalid_client_metadata", what, status, out)
		return
	}
	for _, s := range says {
		if !strings.Contains(desc, s) {
			t.Errorf("%s: error_description %q does not say %q", what, desc, s)
		}
	}
}

// TestServiceTermsSetting: a bad --service-terms stops serve at start,
// naming the variable or the flag.
func TestServiceTermsSetting(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		env  env
		args []string
		want string
	}{
		"variable": {env{"COMMONSID_SERVICE_TERMS": "strict"}, []string{"serve"}, `COMMONSID_SERVICE_TERMS "strict": use open or commons`},
		"flag":     {nil, []string{"serve", "--service-terms", "Commons"}, `--service-terms "Commons": use open or commons`},
	} {
		t.Run(name, func(t *testing.T) {
			e := sqliteEnv(t)
			for k, v := range c.env {
				e[k] = v
			}
			r := e.run(t, "", c.args...)
			if r.code != exitUsage || !strings.Contains(r.stderr, c.want) {
				t.Fatalf("exit %d, stderr %q; want %d saying %q", r.code, r.stderr, exitUsage, c.want)
			}
		})
	}
}

// TestCommonsTermsRegistration: in commons mode, dynamic registration
// refuses each missing piece of the terms with invalid_client_metadata
// naming it, and a fork that publishes its parent's source without saying
// why; an update cannot drop the terms; an operator still registers a
// service outside the terms with the CLI, marked so.
func TestCommonsTermsRegistration(t *testing.T) {
	t.Parallel()
	e := sqliteEnv(t)
	e["COMMONSID_SERVICE_TERMS"] = "commons"
	l := startLive(t, e)
	reg := l.base + "/register"
	full := commonsMeta("notes", "https://notes.example/cb", "https://code.example/notes")

	status, out := sendRegistration(t, "POST", reg, "", without(full, "source_code_uri", "policy_uri", "tos_uri", "commons_commitments"))
	wantRefused(t, "nothing of the terms", status, out, "source_code_uri is required", "policy_uri is required", "tos_uri is required", "commons_commitments is required")
	for _, field := range []string{"source_code_uri", "policy_uri", "tos_uri", "commons_commitments"} {
		status, out := sendRegistration(t, "POST", reg, "", without(full, field))
		wantRefused(t, "without "+field, status, out, field+" is required")
		if desc, _ := out["error_description"].(string); strings.Count(desc, "is required") != 1 {
			t.Errorf("without %s: %q names more than the missing field", field, desc)
		}
	}
	status, out = sendRegistration(t, "POST", reg, "", with(full, "source_code_uri", "http://127.0.0.1/notes"))
	wantRefused(t, "http source", status, out, "source_code_uri must be an https URL")
	bad := commitmentsDoc("forever")
	bad["export"], bad["sells_data"] = false, false
	status, out = sendRegistration(t, "POST", reg, "", with(full, "commons_commitments", bad))
	wantRefused(t, "bad commitments", status, out, "commons_commitments.sells_data: unknown key")
	bad = commitmentsDoc("forever")
	bad["export"] = false
	status, out = sendRegistration(t, "POST", reg, "", with(full, "commons_commitments", bad))
	wantRefused(t, "bad commitments", status, out, "commons_commitments.keeps[0].retention", "commons_commitments.export must be true")

	status, parent := sendRegistration(t, "POST", reg, "", full)
	if status != http.StatusCreated || parent["commons_terms"] != "met" || parent["commons_terms_missing"] != nil {
		t.Fatalf("a service meeting the terms: %d %v", status, parent)
	}
	if c, _ := parent["commons_commitments"].(map[string]any); c["version"] != float64(1) || c["export"] != true {
		t.Errorf("registration answer's commitments = %v", parent["commons_commitments"])
	}

	// Forks.
	fork := with(commonsMeta("notes-fork", "https://fork.example/cb", "https://CODE.example/notes/"), "forked_from", parent["client_id"])
	status, out = sendRegistration(t, "POST", reg, "", fork)
	wantRefused(t, "fork with its parent's source", status, out, "source_code_uri is the same as the parent service's", "commons_fork_reason")
	status, out = sendRegistration(t, "POST", reg, "", with(fork, "commons_fork_reason", "the same code, run for another town"))
	if status != http.StatusCreated || out["commons_terms"] != "met" {
		t.Errorf("fork that says why: %d %v", status, out)
	}
	status, out = sendRegistration(t, "POST", reg, "", with(fork, "source_code_uri", "https://code.example/notes-fork"))
	if status != http.StatusCreated || out["commons_terms"] != "met" {
		t.Errorf("fork with its own source: %d %v", status, out)
	}

	// An update (RFC 7592) cannot leave the terms, and changes nothing.
	uri, tok := parent["registration_client_uri"].(string), parent["registration_access_token"].(string)
	update := with(without(full, "tos_uri"), "client_id", parent["client_id"])
	status, out = sendRegistration(t, "PUT", uri, tok, update)
	wantRefused(t, "update without tos_uri", status, out, "tos_uri is required")
	status, out = sendRegistration(t, "GET", uri, tok, nil)
	if status != http.StatusOK || out["tos_uri"] != full["tos_uri"] {
		t.Errorf("after a refused update: %d %v", status, out)
	}

	// The operator registers a service outside the terms.
	out1 := l.env.must(t, "", "client", "create", "--name", "Legacy", "--redirect-uri", "https://legacy.example/cb")
	var created map[string]any
	if err := json.Unmarshal([]byte(out1[strings.Index(out1, "{"):]), &created); err != nil || created["commons_terms"] != "outside" {
		t.Fatalf("client create outside the terms: %v\n%s", err, out1)
	}
	var shown map[string]any
	json.Unmarshal([]byte(l.env.must(t, "", "client", "show", created["client_id"].(string))), &shown)
	if shown["outside_terms"] != true || shown["commons_terms"] != "outside" {
		t.Errorf("client show of an outside service = %v", shown)
	}
	// With every piece, the CLI registers a commons service.
	doc, _ := json.Marshal(commitmentsDoc("P30D"))
	out2 := l.env.must(t, "", "client", "create", "--name", "Wiki", "--redirect-uri", "https://wiki.example/cb", "--source-code-uri", "https://code.example/wiki",
		"--policy-uri", "https://wiki.example/privacy", "--tos-uri", "https://wiki.example/tos", "--commitments", string(doc))
	if !strings.Contains(out2, `"commons_terms": "met"`) {
		t.Errorf("client create with the terms:\n%s", out2)
	}
}

// TestOpenTermsRegistration: in open mode (the default) every relying
// party registers as before, labelled outside the terms when it does not
// meet them; a commitments document that is sent must still be valid.
func TestOpenTermsRegistration(t *testing.T) {
	t.Parallel()
	l := startLive(t, sqliteEnv(t))
	reg := l.base + "/register"
	status, out := sendRegistration(t, "POST", reg, "", map[string]any{"client_name": "plain", "redirect_uris": []string{"https://plain.example/cb"}})
	missing, _ := json.Marshal(out["commons_terms_missing"])
	if status != http.StatusCreated || out["commons_terms"] != "outside" {
		t.Fatalf("plain registration in open mode: %d %v", status, out)
	}
	for _, f := range []string{"source_code_uri", "policy_uri", "tos_uri", "commons_commitments"} {
		if !strings.Contains(string(missing), f) {
			t.Errorf("commons_terms_missing %s does not name %s", missing, f)
		}
	}
	status, out = sendRegistration(t, "POST", reg, "", commonsMeta("open-notes", "https://open-notes.example/cb", "https://code.example/open-notes"))
	if status != http.StatusCreated || out["commons_terms"] != "met" {
		t.Errorf("a service meeting the terms in open mode: %d %v", status, out)
	}
	status, out = sendRegistration(t, "POST", reg, "", with(commonsMeta("x", "https://x.example/cb", "https://code.example/x"), "commons_commitments", "keeps everything"))
	wantRefused(t, "commitments that are not an object", status, out, "commons_commitments")
}

// TestCommitmentsChanged: a consent records the commitments the person
// saw; when the service changes them, a silent request gets
// consent_required, the dashboard flags the service, and the consent page
// (saying so) comes back before anything is released.
func TestCommitmentsChanged(t *testing.T) {
	t.Parallel()
	l := startLive(t, sqliteEnv(t))
	const pw = "correct horse battery staple"
	l.env.must(t, pw+"\n", "user", "create", "--username", "tess", "--email", "tess@example.org", "--password-stdin")
	app := newRP(t, l, "terms-app", map[string]any{"tos_uri": "https://terms-app.example/tos", "commons_commitments": commitmentsDoc("P1Y")})
	if app.reg["commons_terms"] != "met" {
		t.Fatalf("registration: %v", app.reg)
	}
	b := newBrowser(t)
	authURL := func(extra ...oauth2.AuthCodeOption) string {
		return app.conf.AuthCodeURL(randString(8), append(extra, oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))...)
	}
	verifier := oauth2.GenerateVerifier()
	p := b.get(app.conf.AuthCodeURL(randString(8), oauth2.S256ChallengeOption(verifier)))
	form := formValues(p.body)
	form.Set("username", "tess")
	form.Set("password", pw)
	p = b.post(l.base+"/login", form)
	if p.url.Path != "/consent" {
		t.Fatalf("after login at %s", p.url)
	}
	for _, want := range []string{"What it commits to", "It keeps your email address for 1 year.", "You may export all the data it holds about you."} {
		if !strings.Contains(p.body, want) {
			t.Errorf("consent page does not say %q", want)
		}
	}
	if strings.Contains(p.body, "Not a commons service") || strings.Contains(p.body, "commitments changed") {
		t.Error("consent page of a commons service labels it outside the terms or changed")
	}
	back := b.answerConsent(p, nil)
	if back.url.Query().Get("code") == "" {
		t.Fatalf("first consent: %s", back.url)
	}
	first, err := app.conf.Exchange(context.Background(), back.url.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil || first.RefreshToken == "" {
		t.Fatalf("code exchange: %v (%+v)", err, first)
	}
	if back := b.get(authURL(oauth2.SetAuthURLParam("prompt", "none"))); back.url.Query().Get("code") == "" {
		t.Fatalf("silent sign-in with a standing consent: %s", back.url)
	}
	if services := b.get(l.base + "/account/services"); strings.Contains(services.body, "commitments changed") {
		t.Error("dashboard flags a service whose commitments did not change")
	}

	// The service keeps email longer now.
	uri, tok := app.reg["registration_client_uri"].(string), app.reg["registration_access_token"].(string)
	_, cur := sendRegistration(t, "GET", uri, tok, nil)
	status, out := sendRegistration(t, "PUT", uri, tok, with(without(cur, "registration_client_uri", "client_id_issued_at", "commons_terms"), "commons_commitments", commitmentsDoc("P5Y")))
	if status != http.StatusOK {
		t.Fatalf("update: %d %v", status, out)
	}
	if _, err := app.conf.TokenSource(context.Background(), &oauth2.Token{RefreshToken: first.RefreshToken}).Token(); err == nil ||
		!strings.Contains(err.Error(), "invalid_grant") {
		t.Errorf("refresh after the commitments changed: %v, want invalid_grant", err)
	}
	back = b.get(authURL(oauth2.SetAuthURLParam("prompt", "none")))
	if back.url.Query().Get("error") != "consent_required" || back.url.Query().Get("code") != "" {
		t.Fatalf("silent sign-in after the commitments changed: %s, want error=consent_required", back.url)
	}
	if services := b.get(l.base + "/account/services"); !strings.Contains(services.body, "Its commitments changed since you agreed") {
		t.Error("dashboard does not flag the changed commitments")
	}
	var api []map[string]any
	if r := b.get(l.base + "/account/api/services"); json.Unmarshal([]byte(r.body), &api) != nil || len(api) != 1 || api[0]["terms_changed"] != true {
		t.Errorf("dashboard API services = %s", r.body)
	}
	p = b.get(authURL())
	if p.url.Path != "/consent" || !strings.Contains(p.body, "Its commitments changed since you agreed") || !strings.Contains(p.body, "It keeps your email address for 5 years.") {
		t.Fatalf("sign-in after the change: at %s, want the consent page with the new commitments", p.url)
	}
	if back := b.answerConsent(p, nil); back.url.Query().Get("code") == "" {
		t.Fatalf("consent again: %s", back.url)
	}
	if services := b.get(l.base + "/account/services"); strings.Contains(services.body, "commitments changed") {
		t.Error("dashboard still flags the service after the person agreed again")
	}
	if back := b.get(authURL(oauth2.SetAuthURLParam("prompt", "none"))); back.url.Query().Get("code") == "" {
		t.Fatalf("silent sign-in after agreeing again: %s", back.url)
	}
}

// TestBrowserNotCommonsService: a service the operator registered outside
// the terms is labelled "Not a commons service" on the consent page and
// on the dashboard, in Chromium (screenshots in screenshotDir).
func TestBrowserNotCommonsService(t *testing.T) {
	chromiumPath(t)
	t.Parallel()
	l := startLive(t, sqliteEnv(t))
	const pw = "correct horse battery staple"
	l.env.must(t, pw+"\n", "user", "create", "--username", "olga", "--email", "olga@example.org", "--password-stdin")
	redirect := "http://127.0.0.1:9/outside/callback"
	id, secret := cliClient(t, l, "--name", "Outside Shop", "--redirect-uri", redirect)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	provider, err := oidc.NewProvider(ctx, l.base)
	if err != nil {
		t.Fatal(err)
	}
	conf := &oauth2.Config{ClientID: id, ClientSecret: secret, Endpoint: provider.Endpoint(), RedirectURL: redirect, Scopes: []string{oidc.ScopeOpenID, "email"}}
	tab := startChromium(t, ctx)
	ct := &chromeTab{t: t, tab: tab, dir: screenshotDir(t)}
	ct.do("open the authorization URL", chromedp.Navigate(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))),
		chromedp.WaitVisible(chromedp.ID("username")))
	ct.do("sign in",
		chromedp.SendKeys(chromedp.ID("username"), "olga"),
		chromedp.SendKeys(chromedp.ID("password"), pw),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(".not-commons")))
	ct.at("/consent")
	ct.shot("consent-not-commons")
	if got := ct.text(chromedp.Text(chromedp.CSS(".not-commons"))); !strings.HasPrefix(got, "Not a commons service.") {
		t.Errorf("consent label %q", got)
	}
	if got := ct.text(chromedp.Text(chromedp.CSS(".commitments-list"))); !strings.Contains(got, "published no commitments") {
		t.Errorf("consent commitments %q", got)
	}
	flow := chromedp.Events(tab, network.RequestWillBeSent)
	ct.do("allow", chromedp.Click(chromedp.CSS("button[name=decision][value=allow]")))
	if _, err := followRequests(flow, redirect+"?"); err != nil {
		t.Fatal(err)
	}
	ct.do("open the services page", chromedp.Navigate(l.base+"/account/services"), chromedp.WaitVisible(chromedp.CSS(".service-card .not-commons")))
	ct.shot("services-not-commons")
	if got := ct.text(chromedp.Text(chromedp.CSS(".service-card"))); !strings.Contains(got, "Outside Shop") || !strings.Contains(got, "Not a commons service") {
		t.Errorf("services page card %q", got)
	}
}

// TestAdminOutsideTerms: in commons mode the admin API still registers a
// service outside the terms, marked so, while the public registration
// endpoint refuses the same metadata.
func TestAdminOutsideTerms(t *testing.T) {
	t.Parallel()
	e := sqliteEnv(t)
	e["COMMONSID_SERVICE_TERMS"] = "commons"
	l, adm := startAdminLive(t, e)
	meta := map[string]any{"client_name": "Payroll", "redirect_uris": []string{"https://payroll.example/cb"}}
	status, out := sendRegistration(t, "POST", l.base+"/register", "", meta)
	wantRefused(t, "public registration outside the terms", status, out, "source_code_uri is required")
	st, _, body, raw := adminCall(t, "POST", adm+"/admin/v1/clients", testAdminToken, meta)
	if st != http.StatusCreated || body["commons_terms"] != "outside" {
		t.Fatalf("admin registration outside the terms: %d %s", st, raw)
	}
	st, _, body, raw = adminCall(t, "GET", adm+"/admin/v1/clients/"+body["client_id"].(string), testAdminToken, nil)
	if st != http.StatusOK || body["outside_terms"] != true {
		t.Errorf("admin show: %d %s", st, raw)
	}
}
