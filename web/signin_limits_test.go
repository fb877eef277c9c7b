package web

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/pquerna/otp/totp"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/internal/limits"
	"github.com/onecommons/commonsid/internal/testdb"
	"github.com/onecommons/commonsid/keys"
)

type limitPages struct {
	h      *Handler
	router http.Handler
}

func newLimitPages(t *testing.T, handles ...string) *limitPages {
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
	acc := identity.NewService(db, kek, "https://cloud.example")
	for _, hd := range handles {
		if _, err := acc.Create(context.Background(), identity.CreateParams{Handle: hd, Password: "correct horse battery"}); err != nil {
			t.Fatal(err)
		}
	}
	frozen := time.Now()
	h := &Handler{
		Accounts: acc, Sessions: &identity.Sessions{Store: db, Accounts: db, Now: time.Now}, Privacy: db,
		Templates: tmpl, Log: slog.New(slog.DiscardHandler), SecureCookies: true, Now: time.Now,
		// The failure budgets' clock stands still: a delay a test starts
		// lasts however slowly the test runs (a busy machine).
		Limits: &limits.Limits{Scale: 1, Failures: db, Now: func() time.Time { return frozen }}, DeviceKey: []byte("test device key"), Ceremonies: db,
	}
	r := chi.NewRouter()
	h.Mount(r)
	return &limitPages{h: h, router: r}
}

func (p *limitPages) login(user, password string, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	form := url.Values{"username": {user}, "password": {password}}
	req := httptest.NewRequest(http.MethodPost, "https://cloud.example/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.RemoteAddr = "192.0.2.1:1234"
	for _, c := range cookies {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	p.router.ServeHTTP(rec, req)
	return rec
}

func deviceCookieOf(t *testing.T, rec *httptest.ResponseRecorder) *http.Cookie {
	t.Helper()
	for _, c := range rec.Result().Cookies() {
		if c.Name == DeviceCookieName(true) {
			return c
		}
	}
	t.Fatalf("no device cookie in %v", rec.Result().Cookies())
	return nil
}

// TestTooManyPage: the 429 page says the wait in words, carries
// Retry-After, links back to the sign-in page (keeping return_to) and to the
// password reset when there is one; a JSON client gets the JSON error.
func TestTooManyPage(t *testing.T) {
	p := newLimitPages(t)
	p.h.ResetPath = "/login/forgot"
	req := httptest.NewRequest(http.MethodPost, "https://cloud.example/login", strings.NewReader("return_to=%2Fauthorize%3Fx%3D1"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	p.h.TooManyPage(rec, req, 90*time.Second)
	body := rec.Body.String()
	for _, want := range []string{"Try again in 2 minutes.", `href="/login?return_to=%2Fauthorize%3Fx%3D1"`, `href="/login/forgot"`} {
		if !strings.Contains(body, want) {
			t.Errorf("429 page lacks %q:\n%s", want, body)
		}
	}
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "90" || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("429 page: %d Retry-After=%q %q", rec.Code, rec.Header().Get("Retry-After"), rec.Header().Get("Content-Type"))
	}
	req = httptest.NewRequest(http.MethodPost, "https://cloud.example/login", nil)
	req.Header.Set("Accept", "application/json")
	rec = httptest.NewRecorder()
	p.h.TooManyPage(rec, req, 3*time.Second)
	var out map[string]string
	if rec.Code != http.StatusTooManyRequests || json.Unmarshal(rec.Body.Bytes(), &out) != nil || out["error"] != "slow_down" || rec.Header().Get("Retry-After") != "3" {
		t.Fatalf("JSON 429: %d %s", rec.Code, rec.Body)
	}
}

func TestTryAgainIn(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{1500 * time.Millisecond, "Try again in 2 seconds"},
		{time.Second, "Try again in 1 second"},
		{time.Minute, "Try again in 1 minute"},
		{61 * time.Second, "Try again in 2 minutes"},
		{15 * time.Minute, "Try again in 15 minutes"},
		{2 * time.Hour, "Try again in 2 hours"},
	} {
		if got := TryAgainIn(c.d); got != c.want {
			t.Errorf("TryAgainIn(%v) = %q, want %q", c.d, got, c.want)
		}
	}
}

// TestDeviceCookieBoundToAccount: a device cookie earned by signing in to
// one's own account, or one with a forged MAC, is no known device for
// another account: its budget still holds.
func TestDeviceCookieBoundToAccount(t *testing.T) {
	p := newLimitPages(t, "alice", "mallory")
	own := deviceCookieOf(t, p.login("mallory", "correct horse battery"))
	for range 5 {
		p.login("alice", "wrong password", own)
	}
	if rec := p.login("alice", "correct horse battery", own); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("another account's device cookie passed the delay: %d", rec.Code)
	}
	forged := *own
	id, _, _ := strings.Cut(own.Value, "~")
	forged.Value = id + "~" + strings.Repeat("A", 12) + "~" + strings.Repeat("A", 24)
	if rec := p.login("alice", "correct horse battery", &forged); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("a forged device cookie passed the delay: %d", rec.Code)
	}
	// One device cookie remembers several accounts signed in from it.
	q := newLimitPages(t, "alice", "bob")
	c := deviceCookieOf(t, q.login("alice", "correct horse battery"))
	c2 := deviceCookieOf(t, q.login("bob", "correct horse battery", c))
	for range 6 {
		q.login("alice", "wrong password")
	}
	if rec := q.login("alice", "correct horse battery", c2); rec.Code != http.StatusSeeOther {
		t.Fatalf("a device that signed in to alice, then bob: alice's right password %d, want 303", rec.Code)
	}
}

// TestLockoutNotice: the failure that starts an account's delay calls
// OnLockout once; failures on a name that is no account call nothing.
func TestLockoutNotice(t *testing.T) {
	p := newLimitPages(t, "alice")
	var mu sync.Mutex
	var got []LockoutNotice
	done := make(chan struct{}, 10)
	p.h.OnLockout = func(_ context.Context, a *identity.Account, n LockoutNotice) {
		mu.Lock()
		if a.Handle == "alice" {
			got = append(got, n)
		}
		mu.Unlock()
		done <- struct{}{}
	}
	for range 8 {
		p.login("alice", "wrong password")
		p.login("nobody", "wrong password")
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("no lockout notice")
	}
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0].Failures != 5 || got[0].IP != "192.0.2.1" || !got[0].Until.After(got[0].At) {
		t.Fatalf("notices %+v, want one after 5 failures", got)
	}
	if len(done) != 0 {
		t.Fatalf("%d more notices (an unknown name?)", len(done))
	}
}

// TestSecondFactorPassesLockout: when an attacker's failures have spent the
// budget of an account with a second factor, the right password from a new
// device is still taken and leads to the second factor, never to a session;
// passing it signs the owner in. Without a second factor the same sign-in
// gets 429.
func TestSecondFactorPassesLockout(t *testing.T) {
	p := newLimitPages(t, "alice", "bob")
	m := p.h.mfa()
	if m == nil {
		t.Fatal("no second factors in the test store")
	}
	ctx := context.Background()
	a, err := p.h.Accounts.Lookup(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	en, err := m.BeginTOTP(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	code, _ := totp.GenerateCode(en.Secret, time.Now())
	if err := m.ConfirmTOTP(ctx, a.DID, code); err != nil {
		t.Fatal(err)
	}
	for range 6 {
		p.login("alice", "wrong password")
		p.login("bob", "wrong password")
	}
	if rec := p.login("bob", "correct horse battery"); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("bob (no second factor) during the delay: %d, want 429", rec.Code)
	}
	rec := p.login("alice", "wrong password")
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("alice's wrong password during the delay: %d, want 401", rec.Code)
	}
	rec = p.login("alice", "correct horse battery")
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != secondFactorPath {
		t.Fatalf("alice's right password during the delay: %d %q, want the second factor", rec.Code, rec.Header().Get("Location"))
	}
	for _, c := range rec.Result().Cookies() {
		if c.Name == SessionCookieName(true) {
			t.Fatal("a session before the second factor")
		}
	}
	// The second factor: a code of the next time step (the one above is
	// spent).
	next, _ := totp.GenerateCode(en.Secret, time.Now().Add(30*time.Second))
	req := httptest.NewRequest(http.MethodPost, "https://cloud.example"+secondFactorPath, strings.NewReader(url.Values{"code": {next}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range rec.Result().Cookies() {
		req.AddCookie(c)
	}
	out := httptest.NewRecorder()
	p.router.ServeHTTP(out, req)
	signedIn := false
	for _, c := range out.Result().Cookies() {
		signedIn = signedIn || c.Name == SessionCookieName(true) && c.Value != ""
	}
	if out.Code != http.StatusSeeOther || !signedIn {
		t.Fatalf("second factor: %d signed in %v\n%s", out.Code, signedIn, out.Body)
	}
}

// TestPerIPLimitPage: a browser over a per-IP request limit (sign-up: 20 an
// hour) gets the same 429 page, with the wait.
func TestPerIPLimitPage(t *testing.T) {
	p := newLimitPages(t)
	var rec *httptest.ResponseRecorder
	for range 21 {
		req := httptest.NewRequest(http.MethodPost, "https://cloud.example/signup", strings.NewReader("handle=x"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.RemoteAddr = "192.0.2.9:1"
		rec = httptest.NewRecorder()
		p.router.ServeHTTP(rec, req)
	}
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" ||
		!strings.Contains(rec.Body.String(), "Try again in") || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("21st sign-up from one IP: %d Retry-After=%q %q\n%s", rec.Code, rec.Header().Get("Retry-After"), rec.Header().Get("Content-Type"), rec.Body)
	}
}
