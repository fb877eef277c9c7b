package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/onecommons/commonsid/access"
)

const (
	paySecret   = "pay-service-shared-secret-0123456789abcdef"
	otherSecret = "not-the-pay-service-secret-0123456789abcdef"
)

func accessEnv(e env) env {
	e["COMMONSID_ACCESS_LEVELS"] = "enhanced,patron"
	e["COMMONSID_CONTRIBUTION_SECRETS"] = "pay:" + paySecret
	return e
}

// postNotice posts a notice signed with key at t ("" header: as given).
func postNotice(t *testing.T, base string, body []byte, header string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+access.NoticePath, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if header != "" {
		req.Header.Set(access.SignatureHeader, header)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

func noticeBody(id, account, level string, until time.Time) []byte {
	b, _ := json.Marshal(map[string]string{"notice_id": id, "account": account, "level": level, "expires_at": until.UTC().Format(time.RFC3339)})
	return b
}

// accessShow is `user access show REF --json`.
func accessShow(t *testing.T, e env, ref string) accessJSON {
	t.Helper()
	var v accessJSON
	if err := json.Unmarshal([]byte(e.must(t, "", "user", "access", "show", ref, "--json")), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func accessClaim(t *testing.T, claims map[string]any) map[string]any {
	t.Helper()
	m, ok := claims[access.Claim].(map[string]any)
	if !ok {
		t.Fatalf("no %s object in %v", access.Claim, claims)
	}
	return m
}

// TestContributionNotice: a payment service's signed notice gives alice
// enhanced access, which a real relying party (go-oidc) receives as
// commons_access in the ID token and UserInfo under the scope commons; it
// ends on time (basic again); a wrong signature, a stale timestamp, a
// replayed notice, an unknown level and an oversized body are refused and
// change nothing; a service whose consent leaves the claim out does not
// receive it; the dashboard shows the level and who received it.
func TestContributionNotice(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := startLive(t, accessEnv(sqliteEnv(t)))
	const pw = "correct horse battery"
	did := lastLine(l.env.must(t, pw+"\n", "user", "create", "--username", "alice", "--email", "alice@example.org", "--password-stdin"))

	// Discovery names the scope and the claim.
	var disc struct {
		Scopes []string `json:"scopes_supported"`
		Claims []string `json:"claims_supported"`
	}
	if resp, err := http.Get(l.base + "/.well-known/openid-configuration"); err != nil {
		t.Fatal(err)
	} else {
		json.NewDecoder(resp.Body).Decode(&disc)
		resp.Body.Close()
	}
	if !slices.Contains(disc.Scopes, access.Scope) || !slices.Contains(disc.Claims, access.Claim) {
		t.Fatalf("discovery: scopes %v claims %v", disc.Scopes, disc.Claims)
	}

	until := time.Now().Add(time.Hour).Truncate(time.Second).UTC()
	good := noticeBody("pay-1", "alice", "enhanced", until)
	unchanged := func(when string) {
		t.Helper()
		if v := accessShow(t, l.env, "alice"); v.Level != access.Basic || v.Source != "" {
			t.Fatalf("%s changed the level: %+v", when, v)
		}
	}
	// The attacker's side: each refused, nothing changes.
	if st, out := postNotice(t, l.base, good, access.Sign([]byte(otherSecret), good, time.Now())); st != 401 || out["error"] != "invalid_signature" {
		t.Fatalf("wrong secret: %d %v", st, out)
	}
	unchanged("a notice signed with another secret")
	if st, _ := postNotice(t, l.base, good, ""); st != 401 {
		t.Fatalf("no signature: %d", st)
	}
	sig := access.Sign([]byte(paySecret), good, time.Now())
	tampered := bytes.Replace(good, []byte("enhanced"), []byte("patron"), 1)
	if st, _ := postNotice(t, l.base, tampered, sig); st != 401 {
		t.Fatalf("a body changed after signing: %d", st)
	}
	if st, out := postNotice(t, l.base, good, access.Sign([]byte(paySecret), good, time.Now().Add(-6*time.Minute))); st != 401 || !strings.Contains(out["error_description"].(string), "five minutes") {
		t.Fatalf("stale timestamp: %d %v", st, out)
	}
	unchanged("a stale notice")
	unknown := noticeBody("pay-x", "alice", "platinum", until)
	if st, out := postNotice(t, l.base, unknown, access.Sign([]byte(paySecret), unknown, time.Now())); st != 400 || out["error"] != "unknown_level" {
		t.Fatalf("unknown level: %d %v", st, out)
	}
	big := []byte(`{"notice_id":"pay-big","account":"alice","level":"enhanced","expires_at":"` + until.Format(time.RFC3339) + `","pad":"` + strings.Repeat("x", access.MaxNoticeBytes) + `"}`)
	if st, _ := postNotice(t, l.base, big, access.Sign([]byte(paySecret), big, time.Now())); st != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized notice: %d", st)
	}
	nobody := noticeBody("pay-nobody", "bob", "enhanced", until)
	if st, _ := postNotice(t, l.base, nobody, access.Sign([]byte(paySecret), nobody, time.Now())); st != 404 {
		t.Fatalf("unknown account: %d", st)
	}
	unchanged("the refused notices")

	// The good notice.
	if st, out := postNotice(t, l.base, good, sig); st != 200 || out["level"] != "enhanced" || out["account"] != did {
		t.Fatalf("good notice: %d %v", st, out)
	}
	v := accessShow(t, l.env, did)
	if v.Level != "enhanced" || v.ExpiresAt != until.Format(time.RFC3339) || v.Source != "notice:pay" {
		t.Fatalf("after the notice: %+v", v)
	}
	// Replayed, even freshly signed: 409, nothing changes.
	if st, out := postNotice(t, l.base, good, access.Sign([]byte(paySecret), good, time.Now())); st != 409 || out["error"] != "replayed_notice" {
		t.Fatalf("replay: %d %v", st, out)
	}
	if again := accessShow(t, l.env, did); again.SetAt != v.SetAt || again.Level != "enhanced" {
		t.Fatalf("a replay changed the grant: %+v → %+v", v, again)
	}

	// A relying party asking for the scope commons.
	app := newRP(t, l, "club", nil)
	app.conf.Scopes = append(app.conf.Scopes, access.Scope)
	b := newBrowser(t)
	state, nonce, verifier := randString(16), randString(16), oauth2.GenerateVerifier()
	p := b.authorize(app.conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce)), "alice", pw, nil)
	if p.status != http.StatusSeeOther || !strings.HasPrefix(p.url.String(), app.redirect) {
		t.Fatalf("expected a redirect to the RP, got %d %s\n%s", p.status, p.url, p.body)
	}
	tok, err := app.conf.Exchange(ctx, p.url.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	rawID, _ := tok.Extra("id_token").(string)
	idt, err := app.provider.Verifier(&oidc.Config{ClientID: app.conf.ClientID}).Verify(ctx, rawID)
	if err != nil {
		t.Fatal(err)
	}
	var idClaims map[string]any
	idt.Claims(&idClaims)
	if c := accessClaim(t, idClaims); c["level"] != "enhanced" || c["expires_at"] != until.Format(time.RFC3339) {
		t.Fatalf("ID token commons_access = %v", c)
	}
	ui, err := app.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatal(err)
	}
	var uiClaims map[string]any
	ui.Claims(&uiClaims)
	if c := accessClaim(t, uiClaims); c["level"] != "enhanced" {
		t.Fatalf("UserInfo commons_access = %v", c)
	}

	// A service the person does not let see the claim does not get it.
	other := newRP(t, l, "quiet", nil)
	other.conf.Scopes = append(other.conf.Scopes, access.Scope)
	state2, verifier2 := randString(16), oauth2.GenerateVerifier()
	p = b.authorize(other.conf.AuthCodeURL(state2, oauth2.S256ChallengeOption(verifier2)), "alice", pw, func(f url.Values) {
		f.Del("claim")
		f.Add("claim", "preferred_username")
	})
	tok2, err := other.conf.Exchange(ctx, p.url.Query().Get("code"), oauth2.VerifierOption(verifier2))
	if err != nil {
		t.Fatalf("quiet exchange: %v (%s)", err, p.url)
	}
	ui2, err := other.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok2))
	if err != nil {
		t.Fatal(err)
	}
	var quiet map[string]any
	ui2.Claims(&quiet)
	if _, ok := quiet[access.Claim]; ok {
		t.Fatalf("a service whose consent leaves commons_access out received it: %v", quiet)
	}

	// The dashboard shows the level, its end and who received it.
	dash := b.get(l.base + "/account")
	if !strings.Contains(dash.body, `id="access-level">enhanced<`) || !strings.Contains(dash.body, until.Format("2006-01-02 15:04")) {
		t.Fatalf("dashboard lacks the level:\n%s", dash.body)
	}
	released := dash.body[strings.Index(dash.body, `id="access-released"`):]
	released = released[:strings.Index(released, "</dd>")]
	if !strings.Contains(released, "club") || strings.Contains(released, "quiet") {
		t.Fatalf("dashboard lists the receivers as %q", released)
	}
	if v := accessShow(t, l.env, "alice"); !slices.Contains(v.ReleasedTo, app.conf.ClientID) || slices.Contains(v.ReleasedTo, other.conf.ClientID) {
		t.Fatalf("released_to = %v", v.ReleasedTo)
	}

	// A short grant ends on time: basic again, in UserInfo and in the ID
	// token of a refresh.
	soon := time.Now().Add(2 * time.Second).Truncate(time.Second).Add(time.Second).UTC()
	short := noticeBody("pay-2", did, "patron", soon)
	if st, out := postNotice(t, l.base, short, access.Sign([]byte(paySecret), short, time.Now())); st != 200 || out["level"] != "patron" {
		t.Fatalf("short notice: %d %v", st, out)
	}
	ui, _ = app.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	ui.Claims(&uiClaims)
	if c := accessClaim(t, uiClaims); c["level"] != "patron" {
		t.Fatalf("UserInfo before the end = %v", c)
	}
	time.Sleep(time.Until(soon) + 100*time.Millisecond)
	ui, err = app.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatal(err)
	}
	uiClaims = nil
	ui.Claims(&uiClaims)
	if c := accessClaim(t, uiClaims); c["level"] != access.Basic || c["expires_at"] != nil {
		t.Fatalf("UserInfo after the end = %v", c)
	}
	fresh, err := app.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err != nil {
		t.Fatal(err)
	}
	rawID, _ = fresh.Extra("id_token").(string)
	idt, err = app.provider.Verifier(&oidc.Config{ClientID: app.conf.ClientID}).Verify(ctx, rawID)
	if err != nil {
		t.Fatal(err)
	}
	idClaims = nil
	idt.Claims(&idClaims)
	if c := accessClaim(t, idClaims); c["level"] != access.Basic {
		t.Fatalf("refreshed ID token commons_access = %v", c)
	}
	if v := accessShow(t, l.env, "alice"); v.Level != access.Basic || !v.Expired || v.Granted != "patron" {
		t.Fatalf("show after the end: %+v", v)
	}
	if dash := b.get(l.base + "/account"); !strings.Contains(dash.body, `id="access-level">basic<`) || !strings.Contains(dash.body, `id="access-ended"`) {
		t.Fatalf("dashboard after the end:\n%s", dash.body)
	}
}

// TestContributionCLI: `user access set|show` by the operator, and its
// refusals (an unknown level, a missing or past --until, a replica).
func TestContributionCLI(t *testing.T) {
	t.Parallel()
	e := accessEnv(sqliteEnv(t))
	lastLine(e.must(t, "correct horse battery\n", "user", "create", "--username", "carol", "--password-stdin"))
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"user", "access", "set", "carol", "platinum", "--until", "2099-01-01T00:00:00Z"}, "unknown access level"},
		{[]string{"user", "access", "set", "carol", "enhanced"}, "--until"},
		{[]string{"user", "access", "set", "carol", "enhanced", "--until", "2000-01-01T00:00:00Z"}, "future"},
		{[]string{"user", "access", "set", "carol", "enhanced", "--until", "tomorrow"}, "RFC 3339"},
		{[]string{"user", "access", "set", "nobody", "enhanced", "--until", "2099-01-01T00:00:00Z"}, "no account"},
	} {
		if r := e.run(t, "", c.args...); r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", c.args, r.code, r.stderr, c.want)
		}
	}
	if v := accessShow(t, e, "carol"); v.Level != access.Basic || v.Source != "" {
		t.Fatalf("refused commands changed the level: %+v", v)
	}
	out := e.must(t, "", "user", "access", "set", "carol", "patron", "--until", "2099-01-01T00:00:00Z")
	if !strings.Contains(out, "carol: patron until 2099-01-01T00:00:00Z, set by operator") {
		t.Fatalf("set: %s", out)
	}
	if v := accessShow(t, e, "carol"); v.Level != "patron" || v.Source != access.SourceOperator {
		t.Fatalf("show: %+v", v)
	}
	e.must(t, "", "user", "access", "set", "carol", "basic")
	if v := accessShow(t, e, "carol"); v.Level != access.Basic || v.ExpiresAt != "" {
		t.Fatalf("after basic: %+v", v)
	}
	// A level the cloud does not define is refused at start.
	bad := sqliteEnv(t)
	bad["COMMONSID_ACCESS_LEVELS"] = "basic,Gold"
	if r := bad.run(t, "", "user", "list"); r.code == 0 || !strings.Contains(r.stderr, "COMMONSID_ACCESS_LEVELS") {
		t.Fatalf("bad levels: %+v", r)
	}
	bad = sqliteEnv(t)
	bad["COMMONSID_CONTRIBUTION_SECRETS"] = "pay:short"
	bad["COMMONSID_ADDR"] = "127.0.0.1:" + freePort(t)
	if r := bad.run(t, "", "serve"); r.code == 0 || !strings.Contains(r.stderr, "COMMONSID_CONTRIBUTION_SECRETS") || strings.Contains(r.stderr, "short") {
		t.Fatalf("bad secrets: %+v", r)
	}
}

// TestContributionTravels: a level set on A reaches B's replica of the
// account (the person shares it), is shown there and released by B's
// provider as B's own; after an export from A and an import on C the level
// is there.
func TestContributionTravels(t *testing.T) {
	t.Parallel()
	a := startCloud(t, accessEnv(sqliteEnv(t)))
	b := startCloud(t, accessEnv(postgresEnv(t)))
	c := startLive(t, accessEnv(sqliteEnv(t)))
	a.env.must(t, "", "peer", "add", b.base)
	b.env.must(t, "", "peer", "add", a.base)
	const pw = "correct horse battery"
	did := lastLine(a.env.must(t, pw+"\n", "user", "create", "--username", "alice", "--email", "alice@example.org", "--password-stdin"))
	home := newFedBrowser(t)
	if p := home.signIn(a.base, "alice", pw); p.url.Path != "/account" {
		t.Fatalf("sign in on A: %d %s", p.status, p.url)
	}
	st, _, _ := home.api("PUT", a.base+"/account/api/privacy", map[string]any{"subject_mode": "pairwise", "fork_policy": "ask",
		"federation_sharing": "public_profile", "activity_retention_days": 365, "consent_lifetime_days": 0, "claim_policy": map[string]string{}})
	if st != 200 {
		t.Fatalf("share on A: %d", st)
	}
	until := "2099-06-01T00:00:00Z"
	body := noticeBody("travel-1", "alice", "enhanced", time.Date(2099, 6, 1, 0, 0, 0, 0, time.UTC))
	if st, out := postNotice(t, a.base, body, access.Sign([]byte(paySecret), body, time.Now())); st != 200 {
		t.Fatalf("notice on A: %d %v", st, out)
	}
	var onB accessJSON
	eventually(t, 10*time.Second, "the level on B's replica", func() bool {
		r := b.env.run(t, "", "user", "access", "show", did, "--json")
		return r.code == 0 && json.Unmarshal([]byte(r.stdout), &onB) == nil && onB.Level == "enhanced"
	})
	if !onB.Replica || onB.ExpiresAt != until || onB.Source != "notice:pay" {
		t.Fatalf("on B: %+v", onB)
	}
	// Only the home sets it: a notice on B for the replica is refused.
	if st, _ := postNotice(t, b.base, body, access.Sign([]byte(paySecret), body, time.Now())); st != 404 {
		t.Fatalf("notice for a replica on B: %d", st)
	}
	if r := b.env.run(t, "", "user", "access", "set", did, "patron", "--until", until); r.code == 0 || !strings.Contains(r.stderr, "replica") {
		t.Fatalf("set on a replica: %+v", r)
	}
	// A change on A follows; basic drops it on B.
	a.env.must(t, "", "user", "access", "set", "alice", "basic")
	eventually(t, 10*time.Second, "basic on B", func() bool {
		r := b.env.run(t, "", "user", "access", "show", did, "--json")
		return r.code == 0 && json.Unmarshal([]byte(r.stdout), &onB) == nil && onB.Level == access.Basic
	})
	a.env.must(t, "", "user", "access", "set", "alice", "patron", "--until", until)

	// Export from A, import on C: the level is there.
	file := filepath.Join(t.TempDir(), "alice.json")
	a.env.must(t, "a long passphrase here\n", "export", "alice", "--out", file, "--passphrase-stdin")
	raw, _ := os.ReadFile(file)
	doc := exportedDocument(t, raw)
	if doc.Access == nil || doc.Access.Level != "patron" || doc.Access.ExpiresAt == nil || doc.Access.ExpiresAt.Format(time.RFC3339) != until {
		t.Fatalf("export access = %+v", doc.Access)
	}
	if out := c.env.must(t, "a long passphrase here\n", "import", file, "--passphrase-stdin"); lastLine(out) != did {
		t.Fatalf("import: %s", out)
	}
	if v := accessShow(t, c.env, "alice"); v.Level != "patron" || v.ExpiresAt != until || v.Source != access.SourceOperator || v.Replica {
		t.Fatalf("on C after the import: %+v", v)
	}
}

// TestContributionAdminAPI: PUT and GET /admin/v1/accounts/{id}/access set
// and read the level as the CLI does, refusing an unknown level, a past
// expiry, a missing level and a call without the admin token.
func TestContributionAdminAPI(t *testing.T) {
	t.Parallel()
	l, adm := startAdminLive(t, accessEnv(sqliteEnv(t)))
	did := lastLine(l.env.must(t, "correct horse battery\n", "user", "create", "--username", "dora", "--password-stdin"))
	u := adm + "/admin/v1/accounts/dora/access"
	if st, _, _, _ := adminCall(t, "PUT", u, "", map[string]any{"level": "enhanced", "expires_at": "2099-01-01T00:00:00Z"}); st != 401 {
		t.Fatalf("PUT without a token: %d", st)
	}
	for _, c := range []struct {
		body map[string]any
		want string
	}{
		{map[string]any{"level": "platinum", "expires_at": "2099-01-01T00:00:00Z"}, "unknown access level"},
		{map[string]any{"level": "enhanced", "expires_at": "2001-01-01T00:00:00Z"}, "future"},
		{map[string]any{"expires_at": "2099-01-01T00:00:00Z"}, "level is required"},
		{map[string]any{"level": "enhanced", "until": "2099-01-01T00:00:00Z"}, "until"},
	} {
		st, _, out, _ := adminCall(t, "PUT", u, testAdminToken, c.body)
		if d, _ := out["error_description"].(string); st != 400 || !strings.Contains(d, c.want) {
			t.Errorf("PUT %v: %d %v, want 400 %q", c.body, st, out, c.want)
		}
	}
	if st, _, out, _ := adminCall(t, "GET", u, testAdminToken, nil); st != 200 || out["level"] != access.Basic || out["source"] != nil {
		t.Fatalf("refused PUTs changed the level: %d %v", st, out)
	}
	st, _, out, _ := adminCall(t, "PUT", u, testAdminToken, map[string]any{"level": "enhanced", "expires_at": "2099-01-01T00:00:00Z"})
	if st != 200 || out["level"] != "enhanced" || out["account"] != did || out["source"] != access.SourceOperator {
		t.Fatalf("PUT: %d %v", st, out)
	}
	if st, _, out, _ := adminCall(t, "GET", adm+"/admin/v1/accounts/"+url.PathEscape(did)+"/access", testAdminToken, nil); st != 200 || out["expires_at"] != "2099-01-01T00:00:00Z" {
		t.Fatalf("GET by DID: %d %v", st, out)
	}
	if v := accessShow(t, l.env, "dora"); v.Level != "enhanced" {
		t.Fatalf("the CLI sees %+v", v)
	}
	if st, _, _, _ := adminCall(t, "GET", adm+"/admin/v1/accounts/nobody/access", testAdminToken, nil); st != 404 {
		t.Fatalf("GET for an unknown account: %d", st)
	}
}
