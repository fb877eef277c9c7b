package main

import (
	"context"
	"database/sql"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/onecommons/commonsid/internal/testpg"
)

// signIn posts the login form without following the redirect and returns
// the answer, its body and the session cookie it set ("" for none).
func signIn(t *testing.T, base, user, password string) (*http.Response, string, string) {
	t.Helper()
	form := url.Values{"username": {user}, "password": {password}}
	req, _ := http.NewRequest("POST", base+"/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return sendNoRedirect(t, req)
}

func sendNoRedirect(t *testing.T, req *http.Request) (*http.Response, string, string) {
	t.Helper()
	c := &http.Client{Timeout: 40 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	tok := ""
	for _, ck := range resp.Cookies() {
		if ck.Name == "commonsid_session" && ck.MaxAge >= 0 {
			tok = ck.Value
		}
	}
	return resp, string(body), tok
}

// signedIn reports whether the session token still opens the account pages.
func signedIn(t *testing.T, base, tok string) bool {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/account/profile", nil)
	req.AddCookie(&http.Cookie{Name: "commonsid_session", Value: tok})
	resp, _, _ := sendNoRedirect(t, req)
	return resp.StatusCode == http.StatusOK
}

func logOut(t *testing.T, base, tok string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/logout", strings.NewReader("confirm=yes"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: "commonsid_session", Value: tok})
	resp, body, _ := sendNoRedirect(t, req)
	return resp, body
}

func wantSignInUnavailable(t *testing.T, what string, resp *http.Response, body string) {
	t.Helper()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
		!strings.Contains(body, "try again") {
		t.Fatalf("%s during the outage: %d Retry-After=%q, want 503 with Retry-After and a page saying to try again\n%.600s",
			what, resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
}

// TestSignInDuringOutageSQLite holds the SQLite write lock from another
// connection, longer than the server's busy timeout (10 s). The right
// password then cannot start a session: the answer is 503 with Retry-After
// (not a 500, and not "wrong password"), no cookie, and the attempt is not
// counted: with the per-account limit scaled down to one attempt, the
// right password signs in at once after the lock is released.
//
// (SQLite in WAL mode keeps serving reads under a write lock, so a wrong
// password is still checked, and refused, during it; the PostgreSQL case
// below takes the reads away too.)
func TestSignInDuringOutageSQLite(t *testing.T) {
	e := sqliteEnv(t)
	e["COMMONSID_RATE_LIMIT"] = "0.1" // 1 attempt per account per 5 minutes
	e.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--email", "alice@example.org", "--password-stdin")
	l := startLive(t, e)

	db, err := sql.Open("sqlite", "file:"+filepath.Join(e["COMMONSID_DATA"], dbFile)+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	locked := true
	unlock := func() {
		if locked {
			conn.ExecContext(context.Background(), "ROLLBACK")
			conn.Close()
			locked = false
		}
	}
	defer unlock()

	resp, body, tok := signIn(t, l.base, "alice", "correct horse battery")
	wantSignInUnavailable(t, "right password", resp, body)
	if tok != "" {
		t.Fatal("a session cookie was set although no session was stored")
	}
	unlock()

	resp, body, tok = signIn(t, l.base, "alice", "correct horse battery")
	if resp.StatusCode != http.StatusSeeOther || tok == "" {
		t.Fatalf("right password after the outage: %d, want 303 with a session (the outage counted against the account?)\n%.300s", resp.StatusCode, body)
	}
	if !signedIn(t, l.base, tok) {
		t.Fatal("the session of the sign-in after the outage does not work")
	}
}

// TestSignInDuringOutagePostgres cuts the cloud off its PostgreSQL database
// (no new connections, existing ones terminated). Twelve sign-ins, with the
// right and with a wrong password, more than the per-account limit of 10
// in 5 minutes, all answer 503 with Retry-After; a logout answers 503 and
// does not claim "signed out". Once the database is back the right password
// signs in at once, and the session the failed logout left is indeed still
// live, until a logout that works.
func TestSignInDuringOutagePostgres(t *testing.T) {
	e := postgresEnv(t)
	e["COMMONSID_RATE_LIMIT"] = "on"
	e.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--email", "alice@example.org", "--password-stdin")
	l := startLive(t, e)
	_, _, session := signIn(t, l.base, "alice", "correct horse battery")
	if session == "" {
		t.Fatal("no session before the outage")
	}

	u, err := url.Parse(e["COMMONSID_DB"])
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	admin := os.Getenv("COMMONSID_TEST_POSTGRES_DSN")
	if admin == "" {
		admin = testpg.DefaultDSN
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pg, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close(context.Background())
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := pg.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec("ALTER DATABASE " + pgx.Identifier{name}.Sanitize() + " ALLOW_CONNECTIONS false")
	restored := false
	restore := func() {
		if !restored {
			exec("ALTER DATABASE " + pgx.Identifier{name}.Sanitize() + " ALLOW_CONNECTIONS true")
			restored = true
		}
	}
	defer restore()
	exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", name)

	for i := range 12 {
		pw := "correct horse battery"
		if i%2 == 1 {
			pw = "a wrong password"
		}
		resp, body, tok := signIn(t, l.base, "alice", pw)
		wantSignInUnavailable(t, "sign-in", resp, body)
		if tok != "" {
			t.Fatal("a session cookie was set during the outage")
		}
	}
	resp, body := logOut(t, l.base, session)
	wantSignInUnavailable(t, "logout", resp, body)
	if strings.Contains(strings.ToLower(body), "signed out") && !strings.Contains(body, "did not complete") {
		t.Fatalf("logout during the outage claims success:\n%.600s", body)
	}
	restore()

	deadline := time.Now().Add(20 * time.Second)
	var tok string
	for {
		resp, body, tok = signIn(t, l.base, "alice", "correct horse battery")
		if resp.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond) // the pool reconnects
	}
	if resp.StatusCode != http.StatusSeeOther || tok == "" {
		t.Fatalf("right password after the outage: %d, want 303 (the outage counted against the account?)\n%.300s", resp.StatusCode, body)
	}
	if !signedIn(t, l.base, session) {
		t.Fatal("the session that the failed logout left is gone: then the logout should have said so")
	}
	if resp, body := logOut(t, l.base, session); resp.StatusCode != http.StatusOK {
		t.Fatalf("logout after the outage: %d\n%.300s", resp.StatusCode, body)
	}
	if signedIn(t, l.base, session) {
		t.Fatal("still signed in after a logout that said it worked")
	}
}
