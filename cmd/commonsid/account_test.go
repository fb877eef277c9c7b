package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/onecommons/commonsid/privacy"
)

// signIn logs a browser in directly on /login.
func (b *browser) signIn(base, user, password string) *page {
	b.t.Helper()
	return b.post(base+"/login", url.Values{"username": {user}, "password": {password}, "return_to": {"/account"}})
}

// api calls the account JSON API.
func (b *browser) api(method, u string, body any) (int, map[string]any, []any) {
	b.t.Helper()
	var r io.Reader
	if body != nil {
		j, _ := json.Marshal(body)
		r = strings.NewReader(string(j))
	}
	req, _ := http.NewRequest(method, u, r)
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var obj map[string]any
	var arr []any
	if json.Unmarshal(raw, &obj) != nil {
		json.Unmarshal(raw, &arr)
	}
	return resp.StatusCode, obj, arr
}

func openTestCloud(t testing.TB, l *live) *cloud {
	t.Helper()
	cfg := &Config{DataDir: l.env["COMMONSID_DATA"], DB: l.env["COMMONSID_DB"], Issuer: l.base, LogFormat: "text", LogLevel: "warn"}
	cl, err := openCloud(context.Background(), cfg, newLogger(cfg, io.Discard), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// TestDashboard drives every section of /account over HTTP, on SQLite and
// PostgreSQL.
func TestDashboard(t *testing.T) {
	t.Parallel()
	for name, mk := range map[string]func(testing.TB) env{"sqlite": sqliteEnv, "postgres": postgresEnv} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			l := startLive(t, mk(t))
			did := lastLine(l.env.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--email", "alice@example.org", "--name", "Alice", "--password-stdin"))
			app := newRP(t, l, "journal", nil)
			b := newBrowser(t)

			// Without a session: to /login, then back to /account.
			p := b.get(l.base + "/account")
			if p.url.Path != "/login" || p.url.Query().Get("return_to") != "/account" {
				t.Fatalf("/account without a session: %s", p.url)
			}
			form := formValues(p.body)
			form.Set("username", "alice")
			form.Set("password", "correct horse battery")
			p = b.post(l.base+"/login", form)
			if p.url.Path != "/account" || !strings.Contains(p.body, did) {
				t.Fatalf("after login: %s", p.url)
			}
			if st, _, _ := newBrowser(t).api("GET", l.base+"/account/api/overview", nil); st != 401 {
				t.Fatalf("API without a session: %d", st)
			}

			// A service gets tokens; the dashboard lists it; revoking it
			// stops its UserInfo, refresh and introspection at once.
			v := oauth2.GenerateVerifier()
			p = b.authorize(app.conf.AuthCodeURL(randString(12), oauth2.S256ChallengeOption(v)), "alice", "correct horse battery", nil)
			tok, err := app.conf.Exchange(ctx, p.url.Query().Get("code"), oauth2.VerifierOption(v))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := app.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok)); err != nil {
				t.Fatal(err)
			}
			p = b.get(l.base + "/account/services")
			if !strings.Contains(p.body, "journal") || !strings.Contains(p.body, "https://code.example.org/journal") {
				t.Fatalf("services page lacks the service:\n%s", p.body)
			}
			p = b.get(l.base + "/account/profile")
			if !strings.Contains(p.body, "journal") {
				t.Fatalf("profile does not say who received the claims:\n%s", p.body)
			}
			p = b.post(l.base+"/account/services/revoke", url.Values{"client_id": {app.conf.ClientID}})
			if !strings.Contains(p.url.RawQuery, "done=revoked") {
				t.Fatalf("revoke: %d %s", p.status, p.url)
			}
			if _, err := app.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok)); err == nil || !strings.Contains(err.Error(), "401") {
				t.Fatalf("UserInfo after revoke: %v", err)
			}
			if st, e := postForm(t, l.base+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, app.conf.ClientID, app.conf.ClientSecret); st != 400 || e["error"] != "invalid_grant" {
				t.Fatalf("refresh after revoke: %d %v", st, e)
			}
			if _, in := postForm(t, l.base+"/introspect", url.Values{"token": {tok.AccessToken}}, app.conf.ClientID, app.conf.ClientSecret); in["active"] != false {
				t.Fatalf("introspection after revoke: %v", in)
			}
			if st, _, _ := b.api("POST", l.base+"/account/api/services/"+app.conf.ClientID+"/revoke", nil); st != 404 {
				t.Fatalf("revoking twice: %d", st)
			}

			// Activity: the revocation is logged; the filter works.
			st, act, _ := b.api("GET", l.base+"/account/api/activity?kind="+privacy.ActivityRevoked, nil)
			entries, _ := act["entries"].([]any)
			if st != 200 || len(entries) != 1 {
				t.Fatalf("activity filter: %d %v", st, act)
			}
			if p := b.get(l.base + "/account/activity"); !strings.Contains(p.body, "Access revoked") || !strings.Contains(p.body, "Data shared") {
				t.Fatalf("activity page:\n%s", p.body)
			}

			// Profile edit, through the page and the API.
			p = b.post(l.base+"/account/profile", url.Values{"name": {"Alice Liddell"}, "email": {"alice@wonderland.example"}})
			if !strings.Contains(p.url.RawQuery, "done=profile") {
				t.Fatalf("profile save: %s %s", p.url, p.body)
			}
			st, prof, _ := b.api("PUT", l.base+"/account/api/profile", map[string]any{"email": "not an email"})
			if st != 400 || prof["error"] != "invalid_request" {
				t.Fatalf("bad email through the API: %d %v", st, prof)
			}
			_, prof, _ = b.api("GET", l.base+"/account/api/profile", nil)
			if prof["name"] != "Alice Liddell" || prof["email"] != "alice@wonderland.example" {
				t.Fatalf("profile: %v", prof)
			}

			// Privacy settings: public mode makes the next sign-in use the DID.
			p = b.post(l.base+"/account/privacy", url.Values{"subject_mode": {"public"}, "fork_policy": {"ask"}, "federation_sharing": {"none"},
				"consent_lifetime_days": {"90"}, "activity_retention_days": {"365"}, "claim_email": {"never"}})
			if !strings.Contains(p.url.RawQuery, "done=privacy") {
				t.Fatalf("privacy save: %d %s", p.status, p.body)
			}
			st, bad, _ := b.api("PUT", l.base+"/account/api/privacy", map[string]any{"subject_mode": "loud", "fork_policy": "ask",
				"federation_sharing": "none", "activity_retention_days": 5})
			if st != 400 || !strings.Contains(fmt.Sprint(bad["error_description"]), "subject_mode") || !strings.Contains(fmt.Sprint(bad["error_description"]), "activity_retention_days") {
				t.Fatalf("bad settings: %d %v", st, bad)
			}
			v2 := oauth2.GenerateVerifier()
			p = b.authorize(app.conf.AuthCodeURL(randString(12), oauth2.S256ChallengeOption(v2)), "alice", "correct horse battery", nil)
			tok2, err := app.conf.Exchange(ctx, p.url.Query().Get("code"), oauth2.VerifierOption(v2))
			if err != nil {
				t.Fatal(err)
			}
			idt, _ := app.provider.Verifier(&oidc.Config{ClientID: app.conf.ClientID}).Verify(ctx, tok2.Extra("id_token").(string))
			if idt.Subject != did {
				t.Fatalf("public mode: sub %s, want the DID", idt.Subject)
			}
			_, svcs, arr := b.api("GET", l.base+"/account/api/services", nil)
			_ = svcs
			if len(arr) != 1 || arr[0].(map[string]any)["expires_at"] == nil {
				t.Fatalf("a 90-day consent lifetime gave no expiry: %v", arr)
			}

			// Sessions: a second device is listed and can be signed out.
			other := newBrowser(t)
			other.signIn(l.base, "alice", "correct horse battery")
			_, _, ss := b.api("GET", l.base+"/account/api/sessions", nil)
			if len(ss) != 2 {
				t.Fatalf("sessions: %v", ss)
			}
			var otherID string
			for _, s := range ss {
				if m := s.(map[string]any); m["current"] == false {
					otherID = m["id"].(string)
				}
			}
			if st, _, _ := b.api("DELETE", l.base+"/account/api/sessions/"+otherID, nil); st != 204 {
				t.Fatalf("end other session: %d", st)
			}
			if st, _, _ := other.api("GET", l.base+"/account/api/overview", nil); st != 401 {
				t.Fatalf("signed-out device still in: %d", st)
			}

			// Re-authentication: with a sign-in older than 5 minutes,
			// signing out every other device asks for the password.
			cl := openTestCloud(t, l)
			_, _, ss = b.api("GET", l.base+"/account/api/sessions", nil)
			cur := ss[0].(map[string]any)["id"].(string)
			cl.db.ReauthSession(ctx, cur, time.Now().Add(-10*time.Minute))
			p = b.post(l.base+"/account/sessions/end-others", url.Values{})
			if p.status != 403 || !strings.Contains(p.body, "enter your password") {
				t.Fatalf("stale sign-in: %d", p.status)
			}
			p = b.post(l.base+"/account/sessions/end-others", url.Values{"password": {"correct horse battery"}})
			if !strings.Contains(p.url.RawQuery, "done=others") {
				t.Fatalf("end others with password: %d %s", p.status, p.url)
			}

			// Password change signs other devices out and takes effect.
			p = b.post(l.base+"/account/password", url.Values{"current_password": {"wrong"}, "new_password": {"new password 123"}})
			if p.status != 403 {
				t.Fatalf("password change with a wrong current password: %d", p.status)
			}
			p = b.post(l.base+"/account/password", url.Values{"current_password": {"correct horse battery"}, "new_password": {"new password 123"}})
			if !strings.Contains(p.url.RawQuery, "done=password") {
				t.Fatalf("password change: %d %s", p.status, p.body)
			}
			if p := newBrowser(t).signIn(l.base, "alice", "correct horse battery"); p.status != 401 {
				t.Fatalf("old password still works: %d", p.status)
			}

			// Retention: entries older than the person's retention are pruned.
			old := time.Now().Add(-400 * 24 * time.Hour)
			cl.db.AppendActivity(ctx, &privacy.Activity{AccountDID: did, At: old, Kind: "login"})
			cl.db.AppendActivity(ctx, &privacy.Activity{AccountDID: did, At: time.Now().Add(-40 * 24 * time.Hour), Kind: "login"})
			if n, err := cl.db.PruneActivity(ctx, time.Now()); err != nil || n != 1 {
				t.Fatalf("prune at 365 days: %d %v", n, err)
			}
			p = b.post(l.base+"/account/privacy", url.Values{"subject_mode": {"pairwise"}, "fork_policy": {"ask"}, "federation_sharing": {"none"},
				"consent_lifetime_days": {"0"}, "activity_retention_days": {"30"}})
			if !strings.Contains(p.url.RawQuery, "done=privacy") {
				t.Fatalf("retention save: %d", p.status)
			}
			if n, err := cl.db.PruneActivity(ctx, time.Now()); err != nil || n != 1 {
				t.Fatalf("prune at 30 days: %d %v", n, err)
			}

			// Deletion: nothing personal is left in any table.
			p = b.post(l.base+"/account/delete", url.Values{"password": {"new password 123"}})
			if p.status != 400 {
				t.Fatalf("delete without the confirmation box: %d", p.status)
			}
			p = b.post(l.base+"/account/delete", url.Values{"password": {"new password 123"}, "confirm": {"yes"}})
			if p.status != 200 || !strings.Contains(p.body, "deleted") {
				t.Fatalf("delete: %d %s", p.status, p.body)
			}
			if st, _, _ := b.api("GET", l.base+"/account/api/overview", nil); st != 401 {
				t.Fatalf("deleted account still signed in: %d", st)
			}
			assertForgotten(t, cl.db.SQL(), did, []string{"alice@example.org", "alice@wonderland.example", "Alice Liddell", "$argon2id$"})
			evs, err := cl.db.ListEvents(ctx, 0, 100)
			var about []string
			for _, e := range evs {
				if e.AccountDID == did {
					about = append(about, e.Type)
				}
			}
			if err != nil || len(about) != 1 || about[0] != "account.deleted" {
				t.Fatalf("the event log should keep only the deletion of the account: %v %v", about, err)
			}
			if r := l.env.run(t, "another one 123\n", "user", "create", "--username", "alice", "--password-stdin"); r.code == 0 {
				t.Fatal("the handle of a deleted account was taken over")
			}
		})
	}
}

// assertForgotten scans every table: personal values must be gone, and the
// DID may remain only in the accounts tombstone.
func assertForgotten(t *testing.T, db *sql.DB, did string, values []string) {
	t.Helper()
	tables := listTables(t, db)
	if len(tables) < 10 {
		t.Fatalf("found only tables %v", tables)
	}
	for _, table := range tables {
		rows, err := db.Query("SELECT * FROM " + table)
		if err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			rows.Scan(ptrs...)
			var line strings.Builder
			for _, v := range vals {
				fmt.Fprintf(&line, "%s|", v)
			}
			s := line.String()
			for _, v := range values {
				if strings.Contains(s, v) {
					t.Errorf("table %s still holds %q: %s", table, v, s)
				}
			}
			if strings.Contains(s, did) && table != "accounts" && !(table == "events" && strings.Contains(s, "account.deleted")) {
				t.Errorf("table %s still refers to the deleted DID: %s", table, s)
			}
			if table == "accounts" && strings.Contains(s, did) && !strings.Contains(s, "deleted") {
				t.Errorf("the account row is not a tombstone: %s", s)
			}
		}
		rows.Close()
	}
}

func listTables(t *testing.T, db *sql.DB) []string {
	q := `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`
	if _, err := db.Exec("SELECT 1 FROM sqlite_master LIMIT 1"); err != nil {
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`
	}
	rows, err := db.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		out = append(out, n)
	}
	return out
}

// TestDashboardIsolation: one person can neither see nor change another's
// data, whatever ids or form values they send; cross-origin posts fail.
func TestDashboardIsolation(t *testing.T) {
	t.Parallel()
	l := startLive(t, sqliteEnv(t))
	l.env.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--email", "alice@example.org", "--password-stdin")
	bobDID := lastLine(l.env.must(t, "correct horse battery\n", "user", "create", "--username", "bob", "--email", "bob@example.org", "--password-stdin"))
	bobs := newRP(t, l, "bobs-app", nil)
	alice, bob := newBrowser(t), newBrowser(t)
	alice.signIn(l.base, "alice", "correct horse battery")
	bob.authorize(bobs.conf.AuthCodeURL(randString(12), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), "bob", "correct horse battery", nil)
	_, _, bobSessions := bob.api("GET", l.base+"/account/api/sessions", nil)
	bobSession := bobSessions[0].(map[string]any)["id"].(string)

	for _, path := range []string{"/account", "/account/profile", "/account/services", "/account/activity", "/account/sessions", "/account/privacy", "/account/security", "/account/data"} {
		p := alice.get(l.base + path)
		if p.status != 200 || strings.Contains(p.body, "bob@example.org") || strings.Contains(p.body, bobDID) || strings.Contains(p.body, "bobs-app") || strings.Contains(p.body, bobSession) {
			t.Errorf("%s shows bob's data to alice (%d)", path, p.status)
		}
	}
	for _, path := range []string{"overview", "profile", "services", "activity", "sessions", "privacy"} {
		st, obj, arr := alice.api("GET", l.base+"/account/api/"+path, nil)
		s := fmt.Sprint(obj, arr)
		if st != 200 || strings.Contains(s, "bob") || strings.Contains(s, bobSession) {
			t.Errorf("API %s shows bob's data to alice: %d %s", path, st, s)
		}
	}
	// Forged ids and form values.
	if st, _, _ := alice.api("DELETE", l.base+"/account/api/sessions/"+bobSession, nil); st != 404 {
		t.Errorf("alice ended bob's session: %d", st)
	}
	if p := alice.post(l.base+"/account/sessions/end", url.Values{"id": {bobSession}}); p.status != 404 {
		t.Errorf("alice ended bob's session through the form: %d", p.status)
	}
	if st, _, _ := alice.api("POST", l.base+"/account/api/services/"+bobs.conf.ClientID+"/revoke", nil); st != 404 {
		t.Errorf("alice revoked bob's service: %d", st)
	}
	if p := alice.post(l.base+"/account/services/revoke", url.Values{"client_id": {bobs.conf.ClientID}}); p.status != 404 {
		t.Errorf("alice revoked bob's service through the form: %d", p.status)
	}
	alice.post(l.base+"/account/profile", url.Values{"name": {"Mallory"}, "email": {"alice@example.org"}, "did": {bobDID}, "handle": {"bob"}})
	if st, _, _ := bob.api("GET", l.base+"/account/api/overview", nil); st != 200 {
		t.Fatal("bob's session was ended")
	}
	_, bp, _ := bob.api("GET", l.base+"/account/api/profile", nil)
	if bp["name"] == "Mallory" || bp["email"] != "bob@example.org" {
		t.Fatalf("bob's profile changed: %v", bp)
	}
	_, bs, arr := bob.api("GET", l.base+"/account/api/services", nil)
	if len(arr) != 1 {
		t.Fatalf("bob's consent was touched: %v %v", bs, arr)
	}
	// A cross-origin form post is refused and changes nothing.
	req, _ := http.NewRequest("POST", l.base+"/account/profile", strings.NewReader(url.Values{"name": {"Evil"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := alice.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("cross-site post: %d", resp.StatusCode)
	}
	_, ap, _ := alice.api("GET", l.base+"/account/api/profile", nil)
	if ap["name"] == "Evil" {
		t.Fatal("a cross-site post changed the profile")
	}
}
