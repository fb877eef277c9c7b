package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/oauth2"
)

// answer is an HTTP response as the tests look at it.
type answer struct {
	status int
	header http.Header
	body   map[string]any
}

// call POSTs form to u, authenticated with HTTP Basic (user) or a bearer
// token.
func call(t *testing.T, u string, form url.Values, user, pass, bearer string) answer {
	t.Helper()
	req, _ := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	json.Unmarshal(b, &out)
	return answer{resp.StatusCode, resp.Header, out}
}

// personToken signs alice in to app and exchanges the code.
func personToken(t *testing.T, b *browser, app *rp) *oauth2.Token {
	t.Helper()
	v := oauth2.GenerateVerifier()
	tok, err := app.conf.Exchange(context.Background(), codeFor(t, b, app, v), oauth2.VerifierOption(v))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// cliClient creates a client with the admin CLI; it returns its id and secret.
func cliClient(t *testing.T, l *live, args ...string) (string, string) {
	t.Helper()
	out := l.env.must(t, "", append([]string{"client", "create"}, args...)...)
	var reg struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &reg); err != nil || reg.ClientID == "" {
		t.Fatalf("client create: %v\n%s", err, out)
	}
	return reg.ClientID, reg.ClientSecret
}

// wantUnavailable checks a storage failure's answer: 503, Retry-After, and
// the endpoint's error code.
func wantUnavailable(t *testing.T, what string, a answer, code string) {
	t.Helper()
	if a.status != http.StatusServiceUnavailable || a.body["error"] != code || a.header.Get("Retry-After") == "" {
		t.Errorf("%s during the outage: %d %v (Retry-After %q), want 503 %s with Retry-After", what, a.status, a.body, a.header.Get("Retry-After"), code)
	}
}

// TestAckRevokeUnderSQLiteLock: while another connection holds SQLite's
// write lock for longer than the server's busy timeout, a revocation and a
// client-credentials grant cannot commit; they answer 503
// temporarily_unavailable with Retry-After (not 200 for a revocation that
// did not happen, nor 500), introspection still reads the token as active,
// and once the lock is released the same revocation answers 200 and the
// token is inactive.
func TestAckRevokeUnderSQLiteLock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := startLive(t, sqliteEnv(t))
	l.env.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--password-stdin")
	app := newRP(t, l, "ack", nil)
	tok := personToken(t, newBrowser(t), app)
	workerID, workerSecret := cliClient(t, l, "--name", "worker", "--grant", "client_credentials")

	db, err := sql.Open("sqlite", "file:"+filepath.Join(l.env["COMMONSID_DATA"], dbFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	locked := true
	release := func() {
		if locked {
			locked = false
			if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
				t.Fatal(err)
			}
		}
	}
	defer release()

	// Both wait out the server's busy timeout (one after the other: the
	// server has one writer at a time); the lock is held until both answered.
	start := time.Now()
	var wg sync.WaitGroup
	var revoked, issued answer
	wg.Go(func() {
		revoked = call(t, l.base+"/revoke", url.Values{"token": {tok.AccessToken}}, app.conf.ClientID, app.conf.ClientSecret, "")
	})
	wg.Go(func() {
		issued = call(t, l.base+"/token", url.Values{"grant_type": {"client_credentials"}}, workerID, workerSecret, "")
	})
	wg.Wait()
	t.Logf("answered after %s under the lock", time.Since(start).Round(time.Second))
	wantUnavailable(t, "revoke", revoked, "temporarily_unavailable")
	wantUnavailable(t, "client_credentials token", issued, "temporarily_unavailable")
	if a := call(t, l.base+"/introspect", url.Values{"token": {tok.AccessToken}}, app.conf.ClientID, app.conf.ClientSecret, ""); a.status != 200 || a.body["active"] != true {
		t.Fatalf("introspection after a revocation that failed: %d %v, want active", a.status, a.body)
	}
	release()

	if a := call(t, l.base+"/revoke", url.Values{"token": {tok.AccessToken}}, app.conf.ClientID, app.conf.ClientSecret, ""); a.status != 200 {
		t.Fatalf("revoke after the lock: %d %v", a.status, a.body)
	}
	if a := call(t, l.base+"/introspect", url.Values{"token": {tok.AccessToken}}, app.conf.ClientID, app.conf.ClientSecret, ""); a.status != 200 || a.body["active"] != false {
		t.Fatalf("introspection after the revocation: %d %v", a.status, a.body)
	}
	// The revocation took the grant's refresh token too.
	if a := call(t, l.base+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, app.conf.ClientID, app.conf.ClientSecret, ""); a.status != 400 || a.body["error"] != "invalid_grant" {
		t.Fatalf("refresh after the revocation: %d %v", a.status, a.body)
	}
	if a := call(t, l.base+"/token", url.Values{"grant_type": {"client_credentials"}}, workerID, workerSecret, ""); a.status != 200 {
		t.Fatalf("client_credentials after the lock: %d %v", a.status, a.body)
	}
}

// pgAdmin connects to the server of dsn's database, as the superuser the
// tests run as, and returns the connection and the database's name.
func pgAdmin(t *testing.T, dsn string) (*pgx.Conn, string) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	u.Path = "/postgres"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c, name
}

// terminate ends every server connection to the database (the admin's is
// to another one).
func terminate(ctx context.Context, admin *pgx.Conn, name string) error {
	_, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, name)
	return err
}

// TestAckOutagePostgres: while the database refuses connections, the token,
// introspection, revocation and UserInfo endpoints answer 503 with
// Retry-After, never 401 (invalid_client for a valid client, invalid_token
// for a valid token) nor 200 for a revocation that did not happen, and a
// refresh is not answered invalid_grant (which would make the client drop
// its refresh token). Once the database is back, they work again.
func TestAckOutagePostgres(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := startLive(t, postgresEnv(t))
	l.env.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--password-stdin")
	app := newRP(t, l, "ack-pg", nil)
	tok := personToken(t, newBrowser(t), app)
	workerID, workerSecret := cliClient(t, l, "--name", "worker", "--grant", "client_credentials")
	admin, name := pgAdmin(t, l.env["COMMONSID_DB"])

	if _, err := admin.Exec(ctx, `ALTER DATABASE `+pgx.Identifier{name}.Sanitize()+` ALLOW_CONNECTIONS false`); err != nil {
		t.Fatal(err)
	}
	back := func() {
		if _, err := admin.Exec(ctx, `ALTER DATABASE `+pgx.Identifier{name}.Sanitize()+` ALLOW_CONNECTIONS true`); err != nil {
			t.Fatal(err)
		}
	}
	restored := false
	defer func() {
		if !restored {
			back()
		}
	}()
	if err := terminate(ctx, admin, name); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // past the access-token cache (1 s)

	wantUnavailable(t, "client_credentials token", call(t, l.base+"/token", url.Values{"grant_type": {"client_credentials"}}, workerID, workerSecret, ""), "temporarily_unavailable")
	wantUnavailable(t, "refresh", call(t, l.base+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, app.conf.ClientID, app.conf.ClientSecret, ""), "temporarily_unavailable")
	wantUnavailable(t, "introspect", call(t, l.base+"/introspect", url.Values{"token": {tok.AccessToken}}, workerID, workerSecret, ""), "temporarily_unavailable")
	wantUnavailable(t, "revoke", call(t, l.base+"/revoke", url.Values{"token": {tok.AccessToken}}, app.conf.ClientID, app.conf.ClientSecret, ""), "temporarily_unavailable")
	wantUnavailable(t, "userinfo", call(t, l.base+"/userinfo", nil, "", "", tok.AccessToken), "server_error")
	back()
	restored = true

	// The pool reconnects; a request that meets a connection killed
	// during the outage may still answer 503 once.
	var a answer
	for range 50 {
		if a = call(t, l.base+"/revoke", url.Values{"token": {tok.AccessToken}}, app.conf.ClientID, app.conf.ClientSecret, ""); a.status != 503 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if a.status != 200 {
		t.Fatalf("revoke once the database is back: %d %v", a.status, a.body)
	}
	if a := call(t, l.base+"/introspect", url.Values{"token": {tok.AccessToken}}, app.conf.ClientID, app.conf.ClientSecret, ""); a.status != 200 || a.body["active"] != false {
		t.Fatalf("introspection after the revocation: %d %v", a.status, a.body)
	}
}

// TestAckRevocationsUnderTermination: 300 revocations run while the
// server's PostgreSQL connections are terminated again and again. Each is
// answered 200 or 503 (never 401 or 500), and every one answered 200 is
// revoked: acknowledged means stored.
func TestAckRevocationsUnderTermination(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := startLive(t, postgresEnv(t))
	id, secret := cliClient(t, l, "--name", "worker", "--grant", "client_credentials")
	admin, name := pgAdmin(t, l.env["COMMONSID_DB"])

	const n = 300
	tokens := make([]string, n)
	for i := range tokens {
		a := call(t, l.base+"/token", url.Values{"grant_type": {"client_credentials"}}, id, secret, "")
		tok, _ := a.body["access_token"].(string)
		if a.status != 200 || tok == "" {
			t.Fatalf("token %d: %d %v", i, a.status, a.body)
		}
		tokens[i] = tok
	}

	stop := make(chan struct{})
	var kills atomic.Int32
	var killer sync.WaitGroup
	killer.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(250 * time.Millisecond):
			}
			if terminate(ctx, admin, name) == nil {
				kills.Add(1)
			}
		}
	})
	statuses := make([]int, n)
	var next atomic.Int32
	var workers sync.WaitGroup
	for range 16 {
		workers.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				a := call(t, l.base+"/revoke", url.Values{"token": {tokens[i]}}, id, secret, "")
				statuses[i] = a.status
				if a.status != 200 && (a.status != 503 || a.body["error"] != "temporarily_unavailable" || a.header.Get("Retry-After") == "") {
					t.Errorf("revocation %d: %d %v", i, a.status, a.body)
				}
			}
		})
	}
	workers.Wait()
	close(stop)
	killer.Wait()

	acked, failed := 0, 0
	for i, st := range statuses {
		if st != 200 {
			failed++
			continue
		}
		acked++
		var a answer
		for range 50 {
			if a = call(t, l.base+"/introspect", url.Values{"token": {tokens[i]}}, id, secret, ""); a.status != 503 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if a.status != 200 || a.body["active"] != false {
			t.Errorf("revocation %d answered 200, but the token introspects as %d %v", i, a.status, a.body)
		}
	}
	t.Logf("%d terminations: %d revocations acknowledged (all revoked), %d answered 503", kills.Load(), acked, failed)
	if acked == 0 {
		t.Fatal("no revocation succeeded: the test did not exercise acknowledgements")
	}
}
