package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/internal/limits"
	"github.com/onecommons/commonsid/internal/testdb"
	"github.com/onecommons/commonsid/keys"
)

// switchStore fails every account read while down is set, as a database
// that cannot be reached.
type switchStore struct {
	identity.Store
	down *atomic.Bool
}

var errStoreDown = errors.New("connection refused")

func (s switchStore) GetAccountByHandle(ctx context.Context, h string) (*identity.Account, error) {
	if s.down.Load() {
		return nil, fmt.Errorf("account %s: %w", h, errStoreDown)
	}
	return s.Store.GetAccountByHandle(ctx, h)
}

type testPages struct {
	router http.Handler
	down   *atomic.Bool
	log    *strings.Builder
}

func newTestPages(t *testing.T, secure bool) *testPages {
	t.Helper()
	db, _ := testdb.SQLite(t)
	kek, err := keys.NewKEK(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := ParseTemplates("")
	if err != nil {
		t.Fatal(err)
	}
	down := &atomic.Bool{}
	acc := identity.NewService(switchStore{db, down}, kek, "https://cloud.example")
	if _, err := acc.Create(context.Background(), identity.CreateParams{Handle: "alice", Password: "correct horse battery"}); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	h := &Handler{
		Accounts: acc, Sessions: &identity.Sessions{Store: db, Accounts: db, Now: time.Now}, Privacy: db,
		Templates: tmpl, Log: slog.New(slog.NewTextHandler(&logs, nil)), SecureCookies: secure, Now: time.Now,
		Limits: &limits.Limits{Scale: 1},
	}
	r := chi.NewRouter()
	r.Use(middleware.RequestID)
	h.Mount(r)
	return &testPages{router: r, down: down, log: &logs}
}

func (p *testPages) login(password string) *http.Response {
	form := url.Values{"username": {"alice"}, "password": {password}}
	req := httptest.NewRequest(http.MethodPost, "https://cloud.example/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.RemoteAddr = "192.0.2.1:1234"
	rec := httptest.NewRecorder()
	p.router.ServeHTTP(rec, req)
	return rec.Result()
}

// TestSessionCookieName: under https the sign-on cookie is a __Host- cookie
// (Secure, Path=/, no Domain), and it is the one read back; over http it
// keeps the plain name.
func TestSessionCookieName(t *testing.T) {
	for _, c := range []struct {
		secure bool
		name   string
	}{{true, "__Host-commonsid_session"}, {false, "commonsid_session"}} {
		t.Run(c.name, func(t *testing.T) {
			p := newTestPages(t, c.secure)
			resp := p.login("correct horse battery")
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("login: %d", resp.StatusCode)
			}
			// The sign-on cookie, and the device cookie of the budgets
			// (signin_limits.go), under the same rules.
			cookies := resp.Cookies()
			if len(cookies) != 2 || cookies[1].Name != DeviceCookieName(c.secure) || cookies[1].Secure != c.secure || !cookies[1].HttpOnly || cookies[1].Path != "/" {
				t.Fatalf("cookies %v, want the session's and the device's", cookies)
			}
			ck := cookies[0]
			if ck.Name != c.name || ck.Path != "/" || ck.Domain != "" || ck.Secure != c.secure || !ck.HttpOnly {
				t.Fatalf("cookie %q Path=%q Domain=%q Secure=%v HttpOnly=%v; want %s, Path=/, no Domain, Secure=%v",
					ck.Name, ck.Path, ck.Domain, ck.Secure, ck.HttpOnly, c.name, c.secure)
			}
			req := httptest.NewRequest(http.MethodGet, "https://cloud.example/account/profile", nil)
			req.AddCookie(ck)
			rec := httptest.NewRecorder()
			p.router.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				t.Fatalf("/account/profile with the cookie: %d, want 200", rec.Code)
			}
		})
	}
}

// TestLoginStoreDown: while the accounts cannot be read, every sign-in —
// right or wrong password — answers 503 with Retry-After and a page that
// says to try again, logs the cause with the request id and without the
// handle, and does not count against the account: once the store is back
// the right password signs in at once, though far more attempts than the
// per-account limit (10 in 5 minutes) were made.
func TestLoginStoreDown(t *testing.T) {
	p := newTestPages(t, true)
	p.down.Store(true)
	for i := range 12 {
		pw := "correct horse battery"
		if i%2 == 1 {
			pw = "wrong password"
		}
		resp := p.login(pw)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
			!strings.Contains(string(body), "temporarily unavailable") || !strings.Contains(string(body), "try again") {
			t.Fatalf("attempt %d during the outage: %d Retry-After=%q\n%s", i, resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
		if len(resp.Cookies()) != 0 {
			t.Fatalf("attempt %d set a cookie during the outage", i)
		}
	}
	logs := p.log.String()
	if !strings.Contains(logs, "request_id=") || !strings.Contains(logs, errStoreDown.Error()) || strings.Contains(logs, "alice") {
		t.Fatalf("outage log lines want the request id and the cause, without the handle:\n%s", logs)
	}
	p.down.Store(false)
	if resp := p.login("correct horse battery"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("right password after the outage: %d, want 303 (the outage counted against the account?)", resp.StatusCode)
	}
	// Real failures still count: the limit is reached and then refused.
	var last int
	for range 11 {
		last = p.login("wrong password").StatusCode
	}
	if last != http.StatusTooManyRequests {
		t.Fatalf("after 12 wrong passwords: %d, want 429", last)
	}
}
