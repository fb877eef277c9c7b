package main

import (
	"database/sql"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/onecommons/commonsid/oidc"
)

// anonClient sends requests as a browser without a session would, and stops
// at the first answer.
var anonClient = &http.Client{Timeout: 20 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
	return http.ErrUseLastResponse
}}

func anonGet(t *testing.T, u string) *http.Response {
	t.Helper()
	resp, err := anonClient.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// anonPost posts an authorization request's parameters as a form body
// (POST /authorize, OpenID Connect Core §3.1.2.1).
func anonPost(t *testing.T, base string, form url.Values) *http.Response {
	t.Helper()
	resp, err := anonClient.PostForm(base+"/authorize", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// authorizeForm is the query of an authorization URL, as a form.
func authorizeForm(t *testing.T, u string) url.Values {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return p.Query()
}

// challengeRows returns the number of stored challenges and the size of the
// largest stored form.
func challengeRows(t *testing.T, db *sql.DB) (n, largest int) {
	t.Helper()
	if err := db.QueryRow(`SELECT COUNT(*), COALESCE(MAX(LENGTH(form)), 0) FROM auth_challenges`).Scan(&n, &largest); err != nil {
		t.Fatal(err)
	}
	return n, largest
}

// withParam returns u with a parameter set (replacing any of that name).
func withParam(t *testing.T, u, k, v string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	q := p.Query()
	q.Set(k, v)
	p.RawQuery = q.Encode()
	return p.String()
}

// TestChallengeBounds: an anonymous authorization request stores only what
// resumes it, within bounds; oversized requests are refused and store
// nothing; malformed PKCE challenges are refused with invalid_request.
func TestChallengeBounds(t *testing.T) {
	t.Parallel()
	for name, mk := range map[string]func(testing.TB) env{"sqlite": sqliteEnv, "postgres": postgresEnv} {
		t.Run(name, func(t *testing.T) {
			l := startLive(t, mk(t))
			l.env.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--password-stdin")
			app := newRP(t, l, "bounded", nil)
			db := openTestCloud(t, l).db.SQL()
			authURL := func(state string) string {
				return app.conf.AuthCodeURL(state, oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
			}

			// 30 requests with a 900 KB state, in the query or the body:
			// refused, nothing stored.
			t.Run("oversized", func(t *testing.T) {
				before, _ := challengeRows(t, db)
				huge := strings.Repeat("s", 900<<10)
				for i := range 30 {
					var resp *http.Response
					if i%2 == 0 {
						resp = anonGet(t, authURL(huge))
					} else {
						resp = anonPost(t, l.base, authorizeForm(t, authURL(huge)))
					}
					if resp.StatusCode < 400 || resp.StatusCode >= 500 {
						t.Fatalf("request %d with a 900 KB state: %d (Location %.80q), want a 4xx refusal", i, resp.StatusCode, resp.Header.Get("Location"))
					}
				}
				if n, _ := challengeRows(t, db); n != before {
					t.Fatalf("oversized requests stored %d challenges", n-before)
				}

				// A state just over its bound is refused with a page (the
				// redirect would have to carry it back), a nonce over its bound
				// with invalid_request at the client, state included.
				resp := anonGet(t, authURL(strings.Repeat("s", oidc.MaxStateBytes+1)))
				if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
					t.Fatalf("state over %d bytes: %d Location %q, want 400 without redirect", oidc.MaxStateBytes, resp.StatusCode, resp.Header.Get("Location"))
				}
				resp = anonGet(t, withParam(t, authURL("state-nonce"), "nonce", strings.Repeat("n", oidc.MaxNonceBytes+1)))
				loc, _ := url.Parse(resp.Header.Get("Location"))
				if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc.String(), app.redirect) ||
					loc.Query().Get("error") != "invalid_request" || loc.Query().Get("state") != "state-nonce" {
					t.Fatalf("nonce over its bound: %d %s, want invalid_request with the state at the client", resp.StatusCode, loc)
				}
				if n, _ := challengeRows(t, db); n != before {
					t.Fatalf("refused requests stored %d challenges", n-before)
				}
			})

			// A normal request with 40 junk parameters of 1 KB each (a
			// form body: it is longer than a query may be): stored, without
			// the junk.
			t.Run("junk not kept", func(t *testing.T) {
				before, _ := challengeRows(t, db)
				junk := authorizeForm(t, authURL("state-junk"))
				for i := range 40 {
					junk.Set("junk"+strconv.Itoa(i), strings.Repeat("j", 1024))
				}
				resp := anonPost(t, l.base, junk)
				if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
					t.Fatalf("request with junk parameters: %d %q, want the login page", resp.StatusCode, resp.Header.Get("Location"))
				}
				n, largest := challengeRows(t, db)
				if n != before+1 {
					t.Fatalf("stored %d challenges, want 1", n-before)
				}
				if largest > 1024 || largest > oidc.MaxChallengeFormBytes {
					t.Fatalf("stored form of %d bytes: the junk parameters were kept", largest)
				}
				var form string
				if err := db.QueryRow(`SELECT form FROM auth_challenges WHERE form LIKE '%state-junk%'`).Scan(&form); err != nil {
					t.Fatal(err)
				}
				kept, _ := url.ParseQuery(form)
				for _, k := range []string{"client_id", "redirect_uri", "response_type", "scope", "state", "code_challenge", "code_challenge_method"} {
					if kept.Get(k) == "" {
						t.Errorf("stored form lacks %s: %s", k, form)
					}
				}
				if kept.Has("junk0") {
					t.Errorf("stored form keeps junk: %.200s", form)
				}

				// The trimmed request still completes: sign in, consent, code.
				b := newBrowser(t)
				p := b.post(l.base+"/authorize", junk)
				if p.url.Path != "/login" {
					t.Fatalf("POST /authorize with junk: %d %s", p.status, p.url)
				}
				login := formValues(p.body)
				login.Set("username", "alice")
				login.Set("password", "correct horse battery")
				p = b.answerConsent(b.post(l.base+"/login", login), nil)
				if p.url.Query().Get("code") == "" || p.url.Query().Get("state") != "state-junk" {
					t.Fatalf("sign-in with junk parameters did not end with a code: %d %s", p.status, p.url)
				}
				if n, _ := challengeRows(t, db); n != before+1 {
					// The browser's challenge was used up by its code; the
					// anonymous one above is left to expire.
					t.Errorf("challenges left after the flows: %d, want %d", n-before, 1)
				}
			})

			// PKCE: an S256 challenge is exactly 43 base64url characters.
			t.Run("code_challenge", func(t *testing.T) {
				b := newBrowser(t)
				before, _ := challengeRows(t, db)
				good := oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())
				for name, c := range map[string]string{
					"42 chars":      good[:42],
					"44 chars":      good + "A",
					"not base64url": good[:42] + "+",
					"128 chars":     strings.Repeat("A", 128),
				} {
					u := app.conf.AuthCodeURL("state-pkce", oauth2.SetAuthURLParam("code_challenge", c), oauth2.SetAuthURLParam("code_challenge_method", "S256"))
					p := b.get(u)
					if !strings.HasPrefix(p.url.String(), app.redirect) || p.url.Query().Get("error") != "invalid_request" || p.url.Query().Get("state") != "state-pkce" {
						t.Errorf("code_challenge %s: %d %s, want invalid_request at the client", name, p.status, p.url)
					}
				}
				if n, _ := challengeRows(t, db); n != before {
					t.Errorf("refused code challenges stored %d challenges", n-before)
				}
			})

			// The verifier at /token: 43..128 characters of the unreserved
			// set (fosite checks it; this guards that it stays so).
			t.Run("code_verifier", func(t *testing.T) {
				b := newBrowser(t)
				for name, v := range map[string]string{
					"42 chars":  strings.Repeat("v", 42),
					"129 chars": strings.Repeat("v", 129),
					"bad chars": strings.Repeat("v", 42) + "+",
				} {
					good := oauth2.GenerateVerifier()
					code := codeFor(t, b, app, good)
					st, e := exchange(t, l, app, url.Values{"code": {code}, "code_verifier": {v}})
					if st != 400 || e["error"] != "invalid_grant" {
						t.Errorf("code_verifier %s: %d %v, want invalid_grant", name, st, e)
					}
				}
			})
		})
	}
}

// TestChallengeRateLimit: anonymous authorization requests that store a
// challenge are limited per IP (429 with Retry-After); a signed-in person's
// single sign-on is not.
func TestChallengeRateLimit(t *testing.T) {
	e := sqliteEnv(t)
	e["COMMONSID_RATE_LIMIT"] = "0.1" // challenges: 6 per IP per minute
	l := startLive(t, e)
	l.env.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--password-stdin")
	app := newRP(t, l, "limited", nil)
	db := openTestCloud(t, l).db.SQL()
	allowed := int(oidc.ChallengesPerIP * 0.1)

	// A person signs in (one anonymous challenge) and consents.
	b := newBrowser(t)
	codeFor(t, b, app, oauth2.GenerateVerifier())

	for i := 1; i < allowed; i++ {
		resp := anonGet(t, app.conf.AuthCodeURL(randString(12), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
			t.Fatalf("anonymous request %d of %d: %d %q", i+1, allowed, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	before, _ := challengeRows(t, db)
	for range 3 {
		resp := anonGet(t, app.conf.AuthCodeURL(randString(12), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("anonymous request past the limit: %d %q, want 429", resp.StatusCode, resp.Header.Get("Location"))
		}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s <= 0 {
			t.Fatalf("429 without a Retry-After in seconds: %q", resp.Header.Get("Retry-After"))
		}
	}
	if n, _ := challengeRows(t, db); n != before {
		t.Fatalf("refused requests stored %d challenges", n-before)
	}

	// The signed-in person is not limited: single sign-on issues a code,
	// and a forced consent page (a challenge, but not an anonymous one)
	// still opens.
	for range 3 {
		p := b.get(app.conf.AuthCodeURL(randString(12), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		if p.url.Query().Get("code") == "" {
			t.Fatalf("single sign-on past the anonymous limit: %d %s", p.status, p.url)
		}
	}
	p := b.get(app.conf.AuthCodeURL(randString(12), oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("prompt", "consent")))
	if p.status != 200 || p.url.Path != "/consent" {
		t.Fatalf("prompt=consent for a signed-in person past the anonymous limit: %d %s", p.status, p.url)
	}
}
