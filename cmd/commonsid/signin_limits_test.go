package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"
)

// limitsEnv is an environment with the limits on (the test default is off).
//
// Tests with the limits on count requests and failures within time windows
// and delays: they do not call t.Parallel, so that the other tests of the
// package, which do, cannot stretch their requests past a window.
func limitsEnv(e env) env {
	e["COMMONSID_RATE_LIMIT"] = "on"
	return e
}

// postLogin posts the sign-in form with client c and the given headers.
func postLogin(t *testing.T, c *http.Client, base, user, password string, header map[string]string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/login", strings.NewReader(url.Values{"username": {user}, "password": {password}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

// noRedirect is a client that keeps the 303 of a sign-in, with a jar of
// its own (a browser: a device).
func noRedirect() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 20 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// TestSignInOwnerNotLockedOut: an attacker's wrong passwords from one
// address slow every device the account does not know (the right password
// too: 429 with Retry-After and the page that says how long), but the owner
// on a device they signed in from before signs in at once; and failures
// from that device count for it alone.
func TestSignInOwnerNotLockedOut(t *testing.T) {
	l := startLive(t, limitsEnv(sqliteEnv(t)))
	l.env.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--password-stdin")
	owner := noRedirect()
	if st, _, _ := postLogin(t, owner, l.base, "alice", "correct horse battery", nil); st != http.StatusSeeOther {
		t.Fatalf("first sign-in: %d", st)
	}
	attacker := noRedirect()
	var codes []int
	for range 10 {
		st, _, _ := postLogin(t, attacker, l.base, "alice", "wrong password", nil)
		codes = append(codes, st)
	}
	if codes[0] != http.StatusUnauthorized || codes[9] != http.StatusTooManyRequests {
		t.Fatalf("attacker's 10 wrong passwords: %v, want 401 first and 429 last", codes)
	}
	st, hd, body := postLogin(t, noRedirect(), l.base, "alice", "correct horse battery", nil)
	if st != http.StatusTooManyRequests || hd.Get("Retry-After") == "" || !strings.Contains(body, "Try again in") || !strings.Contains(body, `href="/login"`) {
		t.Fatalf("right password from a new device during the delay: %d Retry-After=%q\n%s", st, hd.Get("Retry-After"), body)
	}
	if st, _, _ := postLogin(t, owner, l.base, "alice", "correct horse battery", nil); st != http.StatusSeeOther {
		t.Fatalf("the owner on a known device after the attack: %d, want 303", st)
	}
	// The known device's own budget: its failures count, for it.
	for range 5 {
		postLogin(t, owner, l.base, "alice", "wrong password", nil)
	}
	if st, _, _ := postLogin(t, owner, l.base, "alice", "correct horse battery", nil); st != http.StatusTooManyRequests {
		t.Fatalf("known device after 5 of its own failures: %d, want 429", st)
	}
}

// TestSignInDIDSharesHandleBudget: the account's DID typed as the user name
// spends the same budget as its handle.
func TestSignInDIDSharesHandleBudget(t *testing.T) {
	l := startLive(t, limitsEnv(sqliteEnv(t)))
	id := lastLine(l.env.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--password-stdin"))
	if !strings.HasPrefix(id, "did:") {
		t.Fatalf("user create printed %q", id)
	}
	c := noRedirect()
	for i := range 5 {
		if st, _, _ := postLogin(t, c, l.base, "alice", "wrong password", nil); st != http.StatusUnauthorized {
			t.Fatalf("wrong password %d by handle: %d", i+1, st)
		}
	}
	if st, _, _ := postLogin(t, c, l.base, id, "wrong password", nil); st != http.StatusTooManyRequests {
		t.Fatalf("the DID after 5 failures by handle: %d, want 429 (a fresh budget?)", st)
	}
	if st, _, _ := postLogin(t, c, l.base, " ALICE ", "correct horse battery", nil); st != http.StatusTooManyRequests {
		t.Fatalf("the handle in other case: %d, want 429", st)
	}
}

// TestSessionPasswordChecksLimited: the current password asked again behind
// a session is limited: 25 wrong ones to /account/api/password end in 429
// with Retry-After (JSON), and then even the right one waits.
func TestSessionPasswordChecksLimited(t *testing.T) {
	l := startLive(t, limitsEnv(sqliteEnv(t)))
	l.env.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--password-stdin")
	b := newBrowser(t)
	if p := b.signIn(l.base, "alice", "correct horse battery"); p.url.Path != "/account" {
		t.Fatalf("sign-in: %d %s", p.status, p.url)
	}
	seen := map[int]int{}
	var last map[string]any
	for range 25 {
		st, out, _ := b.api("POST", l.base+"/account/api/password", map[string]string{"current_password": "wrong password", "new_password": "another good passphrase"})
		seen[st]++
		last = out
	}
	if seen[http.StatusForbidden] != 5 || seen[http.StatusTooManyRequests] != 20 || last["error"] != "slow_down" {
		t.Fatalf("25 wrong current passwords: %v (last %v), want 5×403 then 429 slow_down", seen, last)
	}
	req, _ := http.NewRequest("POST", l.base+"/account/api/delete", strings.NewReader(`{"password":"correct horse battery"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("delete with the right password during the delay: %d Retry-After=%q, want 429 (one budget for every check)", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

// TestTrustedProxies: behind a trusted proxy each forwarded client has a
// budget of its own; from a peer that is not trusted the header is ignored
// and every "client" shares the peer's.
func TestTrustedProxies(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted string
		shared  bool
	}{{"trusted", "127.0.0.0/8", false}, {"untrusted", "10.0.0.0/8", true}} {
		t.Run(tc.name, func(t *testing.T) {
			e := limitsEnv(sqliteEnv(t))
			e["COMMONSID_TRUSTED_PROXIES"] = tc.trusted
			l := startLive(t, e)
			a := map[string]string{"X-Forwarded-For": "198.51.100.7, 203.0.113.1"}
			b := map[string]string{"X-Forwarded-For": "203.0.113.2"}
			c := noRedirect()
			// 20 failures from client a, each on a name of its own (no
			// account budget is spent twice): the source budget.
			for i := range 20 {
				if st, _, _ := postLogin(t, c, l.base, "nobody"+string(rune('a'+i)), "wrong password", a); st != http.StatusUnauthorized {
					t.Fatalf("failure %d from a: %d", i+1, st)
				}
			}
			if st, _, _ := postLogin(t, c, l.base, "someone", "wrong password", a); st != http.StatusTooManyRequests {
				t.Fatalf("21st failure from a: %d, want 429", st)
			}
			want := http.StatusUnauthorized
			if tc.shared {
				want = http.StatusTooManyRequests
			}
			if st, _, _ := postLogin(t, c, l.base, "someone", "wrong password", b); st != want {
				t.Fatalf("first failure from b: %d, want %d", st, want)
			}
		})
	}
}

// TestSignInLimitsAcrossReplicas: two serve processes on one PostgreSQL
// share the account's budget: failures on one count on the other.
func TestSignInLimitsAcrossReplicas(t *testing.T) {
	e := limitsEnv(postgresEnv(t))
	a := startLive(t, e)
	a.env.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--password-stdin")
	e2 := env{}
	for k, v := range e {
		e2[k] = v
	}
	port := freePort(t)
	e2["COMMONSID_ADDR"] = "127.0.0.1:" + port
	b := serveInProcess(t, e2, "http://127.0.0.1:"+port) // same issuer, same database
	c := noRedirect()
	for i := range 5 {
		base := a.base
		if i%2 == 1 {
			base = b.base
		}
		if st, _, _ := postLogin(t, c, base, "alice", "wrong password", nil); st != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i+1, st)
		}
	}
	for _, base := range []string{a.base, b.base} {
		st, hd, _ := postLogin(t, c, base, "alice", "correct horse battery", map[string]string{"Accept": "application/json"})
		if st != http.StatusTooManyRequests || hd.Get("Retry-After") == "" {
			t.Fatalf("after 5 failures across both replicas, %s: %d, want 429", base, st)
		}
	}
	// A JSON client gets the JSON error.
	st, hd, body := postLogin(t, c, b.base, "alice", "wrong password", map[string]string{"Accept": "application/json"})
	var out map[string]string
	if st != http.StatusTooManyRequests || !strings.HasPrefix(hd.Get("Content-Type"), "application/json") || json.Unmarshal([]byte(body), &out) != nil || out["error"] != "slow_down" {
		t.Fatalf("JSON client: %d %q %s", st, hd.Get("Content-Type"), body)
	}
}

// TestTrustedProxiesConfig: a range that does not parse stops serve at
// start, naming the variable.
func TestTrustedProxiesConfig(t *testing.T) {
	e := sqliteEnv(t)
	e["COMMONSID_TRUSTED_PROXIES"] = "10.0.0.0/8,not-a-range"
	r := e.run(t, "", "serve")
	if r.code == 0 || !strings.Contains(r.stderr, "COMMONSID_TRUSTED_PROXIES") || !strings.Contains(r.stderr, "not-a-range") {
		t.Fatalf("serve with a bad range: %d\n%s", r.code, r.stderr)
	}
}
