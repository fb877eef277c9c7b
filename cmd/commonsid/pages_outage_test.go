package main

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/oauth2"
)

// TestPagesDuringOutagePostgres: while the database refuses connections,
// sign-up, the dashboard (page and API) and a signed-in authorization
// request answer 503 with Retry-After — never a 500, a sign-in page or a
// 401 that would tell the person they are signed out — and nothing is half
// done: the sign-up attempted during the outage does not exist afterwards,
// and the same sign-up then succeeds.
func TestPagesDuringOutagePostgres(t *testing.T) {
	t.Parallel()
	e := postgresEnv(t)
	e.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--email", "alice@example.org", "--password-stdin")
	l := startLive(t, e)
	app := newRP(t, l, "notes", nil)
	_, _, session := signIn(t, l.base, "alice", "correct horse battery")
	if session == "" {
		t.Fatal("no session before the outage")
	}
	withSession := func(method, path string, body string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, l.base+path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		req.AddCookie(&http.Cookie{Name: "commonsid_session", Value: session})
		resp, b, _ := sendNoRedirect(t, req)
		return resp, b
	}
	signupForm := url.Values{"handle": {"bob"}, "password": {"correct horse battery"}, "email": {"bob@example.org"}}.Encode()
	authURL := strings.TrimPrefix(app.conf.AuthCodeURL(randString(12), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), l.base)

	admin, name := pgAdmin(t, e["COMMONSID_DB"])
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	db := pgx.Identifier{name}.Sanitize()
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+db+" ALLOW_CONNECTIONS false"); err != nil {
		t.Fatal(err)
	}
	restored := false
	restore := func() {
		if !restored {
			if _, err := admin.Exec(ctx, "ALTER DATABASE "+db+" ALLOW_CONNECTIONS true"); err != nil {
				t.Fatal(err)
			}
			restored = true
		}
	}
	defer restore()
	if err := terminate(ctx, admin, name); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct{ what, method, path, body string }{
		{"sign-up", "POST", "/signup", signupForm},
		{"dashboard page", "GET", "/account/profile", ""},
		{"dashboard API", "GET", "/account/api/overview", ""},
		{"signed-in authorization request", "GET", authURL, ""},
	} {
		resp, body := withSession(c.method, c.path, c.body)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
			!strings.Contains(strings.ToLower(body), "try again") {
			t.Errorf("%s during the outage: %d Retry-After=%q, want 503 with Retry-After saying to try again\n%.400s",
				c.what, resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
	}
	restore()

	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, body := withSession("POST", "/signup", signupForm)
		if resp.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
			if resp.StatusCode >= 400 {
				t.Fatalf("sign-up after the outage: %d (was it half done during it?)\n%.400s", resp.StatusCode, body)
			}
			break
		}
		time.Sleep(200 * time.Millisecond) // the pool reconnects
	}
	if resp, _ := withSession("GET", "/account/api/overview", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("dashboard API after the outage: %d", resp.StatusCode)
	}
}
