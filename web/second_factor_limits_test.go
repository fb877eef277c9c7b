package web

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/pquerna/otp/totp"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/internal/limits"
	"github.com/onecommons/commonsid/internal/testdb"
	"github.com/onecommons/commonsid/internal/testpg"
	"github.com/onecommons/commonsid/keys"
	"github.com/onecommons/commonsid/store/sqlstore"
)

// clock is a shared, movable clock of the failure budgets.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// replica is one serving process's pages over a shared database.
type replica struct {
	h      *Handler
	router http.Handler
}

// newReplicas makes n sets of pages on db, as n replicas behind a load
// balancer: their own Limits (and memory), one database, one device key,
// and the failure budgets' clock c.
func newReplicas(t *testing.T, db *sqlstore.DB, c *clock, n int) []*replica {
	t.Helper()
	kek, err := keys.NewKEK(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := ParseTemplates("")
	if err != nil {
		t.Fatal(err)
	}
	var out []*replica
	for range n {
		acc := identity.NewService(db, kek, "https://cloud.example")
		h := &Handler{
			Accounts: acc, Sessions: &identity.Sessions{Store: db, Accounts: db, Now: time.Now}, Privacy: db,
			Templates: tmpl, Log: slog.New(slog.DiscardHandler), SecureCookies: true, Now: time.Now,
			Limits: &limits.Limits{Scale: 1, Failures: db, Now: c.Now}, DeviceKey: []byte("test device key"), Ceremonies: db,
			Issuer: "https://cloud.example",
		}
		r := chi.NewRouter()
		h.Mount(r)
		out = append(out, &replica{h: h, router: r})
	}
	return out
}

// do posts form to path from the address ip with cookies.
func (p *replica) do(path, ip string, form url.Values, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "https://cloud.example"+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.RemoteAddr = ip + ":1234"
	for _, c := range cookies {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	p.router.ServeHTTP(rec, req)
	return rec
}

func cookieOf(rec *httptest.ResponseRecorder, name string) *http.Cookie {
	var last *http.Cookie
	for _, c := range rec.Result().Cookies() {
		if c.Name == name {
			last = c
		}
	}
	if last == nil || last.Value == "" || last.MaxAge < 0 {
		return nil
	}
	return last
}

func hasSession(rec *httptest.ResponseRecorder) bool {
	return cookieOf(rec, SessionCookieName(true)) != nil
}

// withTOTP creates handle with an authenticator app and returns its secret.
func withTOTP(t *testing.T, h *Handler, handle string) string {
	t.Helper()
	ctx := context.Background()
	a, err := h.Accounts.Create(ctx, identity.CreateParams{Handle: handle, Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	m := h.mfa()
	en, err := m.BeginTOTP(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	code, _ := totp.GenerateCode(en.Secret, time.Now())
	if err := m.ConfirmTOTP(ctx, a.DID, code); err != nil {
		t.Fatal(err)
	}
	if err := m.SetRequired(ctx, a.DID, true); err != nil {
		t.Fatal(err)
	}
	return en.Secret
}

// wrongCode is a six-digit code the app does not show around now.
func wrongCode(secret string) string {
	for _, c := range []string{"000000", "999999", "123456"} {
		ok := true
		for _, d := range []time.Duration{-30 * time.Second, 0, 30 * time.Second, 60 * time.Second} {
			if g, _ := totp.GenerateCode(secret, time.Now().Add(d)); g == c {
				ok = false
			}
		}
		if ok {
			return c
		}
	}
	panic("no wrong code")
}

// TestSecondFactorCodesLimitedPerAccount: 20 wrong authenticator codes
// for one account, from 20 addresses through two replicas on one database
// (each pending sign-in ends after 5 and the attacker, who knows the
// password, starts again) end in 429 with Retry-After after the account's
// 10 free failures; the right code is then delayed, not refused: after the
// wait it signs the owner in, and the budget starts again.
func TestSecondFactorCodesLimitedPerAccount(t *testing.T) {
	t.Parallel()
	t.Run("SQLite", func(t *testing.T) {
		t.Parallel()
		db, _ := testdb.SQLite(t)
		testSecondFactorCodesLimited(t, db)
	})
	t.Run("PostgreSQL", func(t *testing.T) {
		t.Parallel()
		db, err := sqlstore.Open(context.Background(), testpg.DSN(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		if _, err := db.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		testSecondFactorCodesLimited(t, db)
	})
}

func testSecondFactorCodesLimited(t *testing.T, db *sqlstore.DB) {
	c := &clock{t: time.Now()}
	reps := newReplicas(t, db, c, 2)
	secret := withTOTP(t, reps[0].h, "alice")
	wrong := wrongCode(secret)
	var pending *http.Cookie
	var codes []int
	var last *httptest.ResponseRecorder
	for i := range 20 {
		rep, ip := reps[i%2], "198.51.100."+strconv.Itoa(i+1)
		if pending == nil {
			rec := rep.do("/login", ip, url.Values{"username": {"alice"}, "password": {"correct horse battery"}})
			if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != secondFactorPath || hasSession(rec) {
				t.Fatalf("password %d: %d %q", i, rec.Code, rec.Header().Get("Location"))
			}
			pending = cookieOf(rec, secondFactorCookie)
		}
		last = rep.do(secondFactorPath, ip, url.Values{"code": {wrong}}, pending)
		codes = append(codes, last.Code)
		if hasSession(last) {
			t.Fatalf("a wrong code %d started a session", i)
		}
		pending = cookieOf(last, secondFactorCookie)
	}
	for i, st := range codes {
		want := http.StatusUnauthorized
		if i >= limits.SecondFactor.Free {
			want = http.StatusTooManyRequests
		}
		if st != want {
			t.Fatalf("wrong codes from 20 addresses on 2 replicas: %v, want 10 × 401 then 429", codes)
		}
	}
	ra, _ := strconv.Atoi(last.Header().Get("Retry-After"))
	if ra < 1 || !strings.Contains(last.Body.String(), "Try again in") {
		t.Fatalf("429 without a wait: Retry-After %q\n%s", last.Header().Get("Retry-After"), last.Body)
	}
	// The owner's right code during the wait waits too …
	right, _ := totp.GenerateCode(secret, time.Now().Add(30*time.Second))
	if pending == nil {
		rec := reps[0].do("/login", "203.0.113.5", url.Values{"username": {"alice"}, "password": {"correct horse battery"}})
		pending = cookieOf(rec, secondFactorCookie)
	}
	rec := reps[1].do(secondFactorPath, "203.0.113.5", url.Values{"code": {right}}, pending)
	if rec.Code != http.StatusTooManyRequests || hasSession(rec) {
		t.Fatalf("right code during the wait: %d", rec.Code)
	}
	// … and passes after it, with the pending sign-in kept through the 429.
	c.add(time.Duration(ra) * time.Second)
	rec = reps[0].do(secondFactorPath, "203.0.113.5", url.Values{"code": {right}}, cookieOf(rec, secondFactorCookie))
	if rec.Code != http.StatusSeeOther || !hasSession(rec) {
		t.Fatalf("right code after the wait: %d\n%s", rec.Code, rec.Body)
	}
	// Passing the second factor forgot the account's failures of codes.
	login := reps[1].do("/login", "203.0.113.9", url.Values{"username": {"alice"}, "password": {"correct horse battery"}})
	if rec := reps[1].do(secondFactorPath, "203.0.113.9", url.Values{"code": {wrong}}, cookieOf(login, secondFactorCookie)); rec.Code != http.StatusUnauthorized {
		t.Fatalf("a wrong code after the owner passed: %d, want 401 (budget cleared)", rec.Code)
	}
}

// TestSecondFactorKeepsOtherSourcesBudget: an attacker's address that
// spent its source budget stays slowed after the owner, elsewhere, passes
// the password and the second factor; the owner's success does clear the
// account's own budget.
func TestSecondFactorKeepsOtherSourcesBudget(t *testing.T) {
	t.Parallel()
	db, _ := testdb.SQLite(t)
	c := &clock{t: time.Now()}
	rep := newReplicas(t, db, c, 1)[0]
	secret := withTOTP(t, rep.h, "alice")
	const attacker = "192.0.2.66"
	for i := range limits.Source.Free {
		rep.do("/login", attacker, url.Values{"username": {"nobody" + strconv.Itoa(i)}, "password": {"guess"}})
	}
	for range 6 {
		rep.do("/login", "192.0.2.67", url.Values{"username": {"alice"}, "password": {"guess"}})
	}
	if rec := rep.do("/login", attacker, url.Values{"username": {"alice"}, "password": {"guess"}}); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("attacker's source after %d failures: %d, want 429", limits.Source.Free, rec.Code)
	}
	// The owner, on a new device elsewhere: the account's budget is spent,
	// so the right password leads to the second factor only.
	login := rep.do("/login", "203.0.113.1", url.Values{"username": {"alice"}, "password": {"correct horse battery"}})
	if login.Code != http.StatusSeeOther || login.Header().Get("Location") != secondFactorPath {
		t.Fatalf("owner's password: %d %q", login.Code, login.Header().Get("Location"))
	}
	right, _ := totp.GenerateCode(secret, time.Now().Add(30*time.Second))
	if rec := rep.do(secondFactorPath, "203.0.113.1", url.Values{"code": {right}}, cookieOf(login, secondFactorCookie)); !hasSession(rec) {
		t.Fatalf("owner's second factor: %d", rec.Code)
	}
	if rec := rep.do("/login", attacker, url.Values{"username": {"alice"}, "password": {"guess"}}); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("attacker's source after the owner passed: %d, want 429 still", rec.Code)
	}
	a, _ := rep.h.Accounts.Lookup(context.Background(), "alice")
	at, wait, err := rep.h.Limits.Take(context.Background(), limits.Account, accountKey(a.DID))
	if err != nil || wait != 0 || at.Count != 1 {
		t.Fatalf("the account's budget after the owner passed: %+v %v %v, want a fresh one", at, wait, err)
	}
}

// TestLockoutMailOncePerWindow: the lockout notice goes out when wrong
// passwords start the account's delay, and not again within the hour even
// when the delay starts again (after the window, or after the owner's
// sign-in cleared it); after the hour it goes out again.
func TestLockoutMailOncePerWindow(t *testing.T) {
	t.Parallel()
	db, _ := testdb.SQLite(t)
	c := &clock{t: time.Now()}
	rep := newReplicas(t, db, c, 1)[0]
	if _, err := rep.h.Accounts.Create(context.Background(), identity.CreateParams{Handle: "alice", Password: "correct horse battery"}); err != nil {
		t.Fatal(err)
	}
	notices := make(chan LockoutNotice, 10)
	rep.h.OnLockout = func(_ context.Context, _ *identity.Account, n LockoutNotice) { notices <- n }
	count := func() int {
		time.Sleep(300 * time.Millisecond)
		return len(notices)
	}
	attack := func() {
		for range limits.Account.Free + 1 {
			rep.do("/login", "192.0.2.1", url.Values{"username": {"alice"}, "password": {"guess"}})
		}
	}
	attack()
	if n := count(); n != 1 {
		t.Fatalf("%d notices after the first lockout, want 1", n)
	}
	// The delay and its window pass; the attacker starts again.
	c.add(20 * time.Minute)
	attack()
	if n := count(); n != 1 {
		t.Fatalf("%d notices after a second lockout within the hour, want still 1", n)
	}
	c.add(time.Hour)
	attack()
	if n := count(); n != 2 {
		t.Fatalf("%d notices after a lockout an hour later, want 2", n)
	}
}

func TestOncePolicy(t *testing.T) {
	t.Parallel()
	p := limits.Once("x", time.Hour)
	if p.Delay(0) != 0 || p.Delay(1) != time.Hour || p.Delay(50) != time.Hour {
		t.Fatalf("Once delays %v %v %v", p.Delay(0), p.Delay(1), p.Delay(50))
	}
	if ds := p.Delays(); len(ds) != 2 || ds[1] != time.Hour {
		t.Fatalf("Once Delays %v", ds)
	}
}
