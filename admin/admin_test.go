package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/onecommons/commonsid/admin"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/internal/testdb"
	"github.com/onecommons/commonsid/internal/testpg"
	"github.com/onecommons/commonsid/store"
	"github.com/onecommons/commonsid/store/sqlstore"
)

const token = "0123456789abcdef0123456789abcdef-admin"

// accounts is a Backend over a real store and identity service for the
// account routes; the other resources answer 404.
type accounts struct {
	admin.Backend // nil: the routes not listed here are not called
	db            *sqlstore.DB
	svc           *identity.Service
}

func (b *accounts) lookup(ctx context.Context, ref string) (*identity.Account, error) {
	a, err := b.svc.Lookup(ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		return nil, admin.NotFound("no account %q", ref)
	}
	return a, err
}

func (b *accounts) ListAccounts(ctx context.Context, after string, limit int) (*admin.AccountPage, error) {
	page, err := b.db.ListAccounts(ctx, after, limit)
	if err != nil {
		return nil, err
	}
	out := &admin.AccountPage{}
	for _, a := range page {
		out.Accounts = append(out.Accounts, map[string]string{"handle": a.Handle, "status": a.Status})
	}
	if len(page) == limit {
		out.NextAfter = page[len(page)-1].Handle
	}
	return out, nil
}

func (b *accounts) ShowAccount(ctx context.Context, ref string) (any, error) {
	a, err := b.lookup(ctx, ref)
	if err != nil {
		return nil, err
	}
	return map[string]string{"handle": a.Handle, "did": a.DID, "status": a.Status}, nil
}

func (b *accounts) DisableAccount(ctx context.Context, ref string) (any, error) {
	a, err := b.lookup(ctx, ref)
	if err != nil {
		return nil, err
	}
	if err := b.svc.SetStatus(ctx, a.DID, identity.StatusDisabled); err != nil {
		if errors.Is(err, identity.ErrBadTransition) {
			return nil, admin.Conflict("%v", err)
		}
		return nil, err
	}
	return b.ShowAccount(ctx, ref)
}

func (b *accounts) ResetPassword(ctx context.Context, ref, password string) (*admin.PasswordReset, error) {
	a, err := b.lookup(ctx, ref)
	if err != nil {
		return nil, err
	}
	if err := identity.ValidatePassword(password); err != nil {
		return nil, admin.BadRequest("%v", err)
	}
	if err := b.svc.SetPassword(ctx, a.DID, password); err != nil {
		if errors.Is(err, identity.ErrBadTransition) {
			return nil, admin.Conflict("%v", err)
		}
		return nil, err
	}
	return &admin.PasswordReset{Handle: a.Handle}, nil
}

func (b *accounts) ListClients(context.Context) ([]any, error) { return nil, nil }

func (b *accounts) CreateClient(_ context.Context, md []byte) (any, error) {
	return json.RawMessage(md), nil
}

func (b *accounts) RemovePeer(context.Context, string) error { return admin.NotFound("not a peer") }

// clientTokens stands for the provider's check: "read" and "all" are
// live tokens with admin:read and admin, "none" one without an admin
// scope, "down" a failing database.
func clientTokens(_ context.Context, tok string) (string, []string, error) {
	switch tok {
	case "read":
		return "c1", []string{"admin:read"}, nil
	case "all":
		return "c2", []string{"openid", "admin"}, nil
	case "none":
		return "c3", []string{"profile"}, nil
	case "down":
		return "", nil, errors.New("connection refused")
	}
	return "", nil, admin.ErrInvalidToken
}

type fixture struct {
	srv *httptest.Server
	svc *identity.Service
}

func newFixture(t *testing.T, db *sqlstore.DB) *fixture {
	t.Helper()
	_, kek := testdb.Keys(t, db)
	svc := &identity.Service{Store: db, Sealer: kek, Issuer: "http://localhost:8080", Now: time.Now,
		Argon2: identity.Argon2Params{Time: 1, Memory: 8 * 1024, Threads: 1, SaltLen: 16, KeyLen: 32}}
	for _, h := range []string{"alice", "bob", "carol"} {
		if _, err := svc.Create(context.Background(), identity.CreateParams{Handle: h, Password: "correct horse battery"}); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "commonsid_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Inc()
	api, err := admin.New(admin.Config{Token: token, ClientTokens: clientTokens, Backend: &accounts{db: db, svc: svc},
		Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), Realm: "http://localhost:8080/admin"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	return &fixture{srv: srv, svc: svc}
}

func (f *fixture) do(t *testing.T, method, path, tok, ctype string, body []byte) (int, http.Header, map[string]any, string) {
	t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, bytes.NewReader(body))
	if body == nil {
		req.Body = nil
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	json.Unmarshal(raw, &m)
	return resp.StatusCode, resp.Header, m, string(raw)
}

func stores(t *testing.T) map[string]func(t *testing.T) *sqlstore.DB {
	return map[string]func(t *testing.T) *sqlstore.DB{
		"sqlite": func(t *testing.T) *sqlstore.DB { db, _ := testdb.SQLite(t); return db },
		"postgres": func(t *testing.T) *sqlstore.DB {
			ctx := context.Background()
			db, err := sqlstore.Open(ctx, testpg.DSN(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			if _, err := db.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			return db
		},
	}
}

func TestAuthentication(t *testing.T) {
	f := newFixture(t, func() *sqlstore.DB { db, _ := testdb.SQLite(t); return db }())
	for _, c := range []struct {
		name, method, path, auth string
		status                   int
		code                     string
	}{
		{"no token", "GET", "/admin/v1/accounts", "", 401, "invalid_request"},
		{"no token metrics", "GET", "/metrics", "", 401, "invalid_request"},
		{"no token pprof", "GET", "/debug/pprof/", "", 401, "invalid_request"},
		{"basic scheme", "GET", "/admin/v1/accounts", "Basic " + token, 401, "invalid_request"},
		{"wrong token", "GET", "/admin/v1/accounts", "Bearer " + token[:len(token)-1] + "X", 401, "invalid_token"},
		{"prefix of the token", "GET", "/admin/v1/accounts", "Bearer " + token[:len(token)-1], 401, "invalid_token"},
		{"admin token", "GET", "/admin/v1/accounts", "Bearer " + token, 200, ""},
		{"lower-case scheme", "GET", "/admin/v1/accounts", "bearer " + token, 200, ""},
		{"admin:read reads", "GET", "/admin/v1/accounts", "Bearer read", 200, ""},
		{"admin:read cannot change", "POST", "/admin/v1/accounts/alice/disable", "Bearer read", 403, "insufficient_scope"},
		{"admin changes", "POST", "/admin/v1/accounts/bob/disable", "Bearer all", 200, ""},
		{"no admin scope", "GET", "/admin/v1/accounts", "Bearer none", 403, "insufficient_scope"},
		{"no admin scope metrics", "GET", "/metrics", "Bearer none", 403, "insufficient_scope"},
		{"database down", "GET", "/admin/v1/accounts", "Bearer down", 503, "temporarily_unavailable"},
		{"metrics", "GET", "/metrics", "Bearer " + token, 200, ""},
		{"pprof needs admin", "GET", "/debug/pprof/cmdline", "Bearer read", 403, "insufficient_scope"},
		{"pprof", "GET", "/debug/pprof/heap?debug=1", "Bearer all", 200, ""},
		{"metrics with admin:read", "GET", "/metrics", "Bearer read", 200, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, f.srv.URL+c.path, nil)
			if c.auth != "" {
				req.Header.Set("Authorization", c.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.status {
				t.Fatalf("%d %s, want %d", resp.StatusCode, raw, c.status)
			}
			var m map[string]any
			json.Unmarshal(raw, &m)
			if c.code != "" && m["error"] != c.code {
				t.Fatalf("error %v, want %s", m["error"], c.code)
			}
			if c.status == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), `Bearer realm="http://localhost:8080/admin"`) {
				t.Fatalf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
			}
			if c.status == 403 && !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
				t.Fatalf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
			}
			if c.path == "/metrics" && c.status == 200 && !strings.Contains(string(raw), "commonsid_test_total 1") {
				t.Fatalf("metrics: %s", raw)
			}
		})
	}
}

func TestNewRefusesWeakToken(t *testing.T) {
	for _, tok := range []string{"short", strings.Repeat("a", 31), strings.Repeat("a", 31) + " ", strings.Repeat("é", 20)} {
		if _, err := admin.New(admin.Config{Token: tok, Backend: &accounts{}}); err == nil {
			t.Errorf("token %q accepted", tok)
		}
	}
	api, err := admin.New(admin.Config{Backend: &accounts{}})
	if err != nil || api.HasToken() {
		t.Fatalf("no token: %v %v", err, api.HasToken())
	}
	// Without an admin token nor client tokens, every request is 401.
	srv := httptest.NewServer(api.Handler())
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/admin/v1/accounts", nil)
	req.Header.Set("Authorization", "Bearer anything")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("%d, want 401", resp.StatusCode)
	}
}

func TestAccounts(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, open(t))
			st, _, m, raw := f.do(t, "GET", "/admin/v1/accounts?limit=2", token, "", nil)
			if st != 200 || m["next_after"] != "bob" || len(m["accounts"].([]any)) != 2 {
				t.Fatalf("page 1: %d %s", st, raw)
			}
			st, _, m, raw = f.do(t, "GET", "/admin/v1/accounts?limit=2&after=bob", token, "", nil)
			if st != 200 || m["next_after"] != nil || len(m["accounts"].([]any)) != 1 {
				t.Fatalf("page 2: %d %s", st, raw)
			}
			st, _, _, raw = f.do(t, "GET", "/admin/v1/accounts?after=zzz", token, "", nil)
			if st != 200 || !strings.Contains(raw, `"accounts": []`) {
				t.Fatalf("past the end: %d %s", st, raw)
			}
			for _, q := range []string{"limit=0", "limit=501", "limit=x", "limit=1&limit=2", "status=active"} {
				if st, _, m, _ = f.do(t, "GET", "/admin/v1/accounts?"+q, token, "", nil); st != 400 || m["error"] != "invalid_request" {
					t.Errorf("?%s: %d %v", q, st, m)
				}
			}
			st, h, m, _ := f.do(t, "GET", "/admin/v1/accounts/alice", token, "", nil)
			if st != 200 || m["handle"] != "alice" || h.Get("Cache-Control") != "no-store" || h.Get("Content-Type") != "application/json" {
				t.Fatalf("show: %d %v %v", st, m, h)
			}
			did := m["did"].(string)
			if st, _, m, _ = f.do(t, "GET", "/admin/v1/accounts/"+did, token, "", nil); st != 200 || m["handle"] != "alice" {
				t.Fatalf("show by DID: %d %v", st, m)
			}
			if st, _, m, _ = f.do(t, "GET", "/admin/v1/accounts/nobody", token, "", nil); st != 404 || m["error"] != "not_found" {
				t.Fatalf("nobody: %d %v", st, m)
			}
			if st, _, m, _ = f.do(t, "POST", "/admin/v1/accounts/alice/disable", token, "", nil); st != 200 || m["status"] != "disabled" {
				t.Fatalf("disable: %d %v", st, m)
			}
			if _, err := f.svc.Authenticate(context.Background(), "alice", "correct horse battery"); err == nil {
				t.Fatal("a disabled account authenticates")
			}
			// Reset on a disabled account: the service refuses, 409.
			body := []byte(`{"password":"another good password"}`)
			if st, _, m, _ = f.do(t, "POST", "/admin/v1/accounts/alice/reset-password", token, "application/json", body); st != 409 || m["error"] != "conflict" {
				t.Fatalf("reset disabled: %d %v", st, m)
			}
			if st, _, m, _ = f.do(t, "POST", "/admin/v1/accounts/bob/reset-password", token, "application/json", body); st != 200 || m["handle"] != "bob" || m["password"] != nil {
				t.Fatalf("reset: %d %v", st, m)
			}
			if _, err := f.svc.Authenticate(context.Background(), "bob", "another good password"); err != nil {
				t.Fatalf("bob with the new password: %v", err)
			}
		})
	}
}

func TestBodies(t *testing.T) {
	db, _ := testdb.SQLite(t)
	f := newFixture(t, db)
	path := "/admin/v1/accounts/bob/reset-password"
	for _, c := range []struct {
		name, ctype, body string
		status            int
	}{
		{"too short", "application/json", `{"password":"short"}`, 400},
		{"unknown key", "application/json", `{"password":"another good password","admin":true}`, 400},
		{"duplicate key", "application/json", `{"password":"x","password":"another good password"}`, 400},
		{"case-folded key", "application/json", `{"Password":"another good password"}`, 400},
		{"not an object", "application/json", `["x"]`, 400},
		{"trailing data", "application/json", `{"password":"another good password"} {}`, 400},
		{"form body", "application/x-www-form-urlencoded", `password=another+good+password`, 415},
		{"too large", "application/json", `{"password":"` + strings.Repeat("a", admin.MaxBody) + `"}`, 413},
	} {
		t.Run(c.name, func(t *testing.T) {
			st, _, m, raw := f.do(t, "POST", path, token, c.ctype, []byte(c.body))
			if st != c.status || m["error"] == nil || m["error_description"] == nil {
				t.Fatalf("%d %s, want %d with an error object", st, raw, c.status)
			}
		})
	}
	if st, _, _, raw := f.do(t, "POST", "/admin/v1/clients", token, "application/json", []byte(`{"a":1,"a":2}`)); st != 400 {
		t.Fatalf("client metadata with a duplicate key: %d %s", st, raw)
	}
	if st, _, _, raw := f.do(t, "POST", "/admin/v1/clients", token, "application/json", []byte(`{"client_name":"x"}`)); st != 201 || !strings.Contains(raw, `"client_name": "x"`) {
		t.Fatalf("client metadata: %d %s", st, raw)
	}
	if st, _, m, _ := f.do(t, "PUT", "/admin/v1/accounts/bob", token, "", nil); st != 405 || m["error"] != "method_not_allowed" {
		t.Fatalf("PUT: %d %v", st, m)
	}
	if st, _, m, _ := f.do(t, "GET", "/admin/v1/nothing", token, "", nil); st != 404 || m["error"] != "not_found" {
		t.Fatalf("unknown route: %d %v", st, m)
	}
	if st, _, m, _ := f.do(t, "DELETE", "/admin/v1/peers", token, "", nil); st != 400 {
		t.Fatalf("remove peer without issuer: %d %v", st, m)
	}
	if st, _, m, _ := f.do(t, "DELETE", "/admin/v1/peers?issuer=https://x.example", token, "", nil); st != 404 || m["error"] != "not_found" {
		t.Fatalf("remove a stranger: %d %v", st, m)
	}
	if st, _, _, raw := f.do(t, "GET", "/admin/v1/clients", token, "", nil); st != 200 || strings.TrimSpace(raw) != "[]" {
		t.Fatalf("empty list: %d %s", st, raw)
	}
}

// TestChangesLogged: a change is logged with who made it and the route
// pattern, not the path (which names the account); a read is not logged.
func TestChangesLogged(t *testing.T) {
	db, _ := testdb.SQLite(t)
	_, kek := testdb.Keys(t, db)
	svc := &identity.Service{Store: db, Sealer: kek, Issuer: "http://localhost:8080", Now: time.Now,
		Argon2: identity.Argon2Params{Time: 1, Memory: 8 * 1024, Threads: 1, SaltLen: 16, KeyLen: 32}}
	if _, err := svc.Create(context.Background(), identity.CreateParams{Handle: "dora", Password: "correct horse battery"}); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	api, err := admin.New(admin.Config{Token: token, ClientTokens: clientTokens, Backend: &accounts{db: db, svc: svc},
		Log: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.Handler())
	defer srv.Close()
	f := &fixture{srv: srv}
	if st, _, _, _ := f.do(t, "GET", "/admin/v1/accounts/dora", token, "", nil); st != 200 {
		t.Fatal(st)
	}
	if logs.Len() != 0 {
		t.Fatalf("a read was logged: %s", logs.String())
	}
	if st, _, _, _ := f.do(t, "POST", "/admin/v1/accounts/dora/disable", "all", "", nil); st != 200 {
		t.Fatal(st)
	}
	var rec map[string]any
	if err := json.Unmarshal(logs.Bytes(), &rec); err != nil {
		t.Fatalf("log: %v %s", err, logs.String())
	}
	if rec["msg"] != "admin change" || rec["by"] != "client c2" || rec["route"] != "/admin/v1/accounts/{ref}/disable" || rec["status"] != float64(200) {
		t.Fatalf("log record %v", rec)
	}
	if strings.Contains(logs.String(), "dora") {
		t.Fatalf("the log names the account: %s", logs.String())
	}
}
