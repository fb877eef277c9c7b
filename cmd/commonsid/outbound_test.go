package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/onecommons/commonsid/internal/testnet"
)

// mysqlGreeting is what the stand-in internal service writes: a guarded
// fetch must neither reach it nor repeat it.
const mysqlGreeting = "MYSQL-GREETING 5.7.42-log\r\n"

// redirector answers every request with a redirect to target, counting
// requests.
func redirector(t *testing.T, target string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Redirect(w, r, target, http.StatusFound)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// postRegistration sends a raw registration body.
func postRegistration(t *testing.T, method, u, token, body string) (int, map[string]any, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(method, u, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out, resp.Header
}

func denyLoopback(e env) env {
	e["COMMONSID_OUTBOUND_LOOPBACK"] = "deny"
	return e
}

// TestOutboundSectorIdentifier: a sector_identifier_uri that redirects to
// an internal port is refused with invalid_client_metadata whose text says
// nothing of what listens there, and the internal port gets no connection:
// on a cloud that denies loopback (nothing local is fetched), and on a
// loopback test cloud (the redirect to another origin is refused).
func TestOutboundSectorIdentifier(t *testing.T) {
	t.Parallel()
	for name, mk := range map[string]func(*testing.T) env{
		"loopback denied":  func(t *testing.T) env { return denyLoopback(sqliteEnv(t)) },
		"loopback allowed": func(t *testing.T) env { return sqliteEnv(t) },
	} {
		t.Run(name, func(t *testing.T) {
			l := startLive(t, mk(t))
			internal, conns := testnet.Internal(t, mysqlGreeting)
			front, _ := redirector(t, "http://"+internal+"/sector.json")
			body, _ := json.Marshal(map[string]any{"client_name": "s", "redirect_uris": []string{"https://a.example/cb"},
				"sector_identifier_uri": front.URL + "/sector.json"})
			st, out, _ := postRegistration(t, "POST", l.base+"/register", "", string(body))
			desc, _ := out["error_description"].(string)
			if st != 400 || out["error"] != "invalid_client_metadata" {
				t.Fatalf("register: %d %v", st, out)
			}
			for _, leak := range []string{"MYSQL", "malformed", "EOF", "connection", "5.7"} {
				if strings.Contains(desc, leak) {
					t.Fatalf("error_description %q tells what answered (%q)", desc, leak)
				}
			}
			if want := "could not fetch " + front.URL + "/sector.json"; !strings.Contains(desc, want) {
				t.Fatalf("error_description %q, want it to say %q", desc, want)
			}
			if n := conns.Load(); n != 0 {
				t.Fatalf("the internal port got %d connections", n)
			}
		})
	}
}

// TestOutboundImportDIDWeb: /signup/import of an export whose cloud is a
// did:web on 127.0.0.1 makes no connection there when loopback is denied.
func TestOutboundImportDIDWeb(t *testing.T) {
	t.Parallel()
	internal, conns := testnet.Internal(t, mysqlGreeting)
	// The exporting cloud's issuer is the internal port itself: its
	// did:web names 127.0.0.1:PORT.
	a := sqliteEnv(t)
	a["COMMONSID_ISSUER"] = "http://" + internal
	const pw = "correct horse battery"
	a.must(t, pw+"\n", "user", "create", "--username", "alice", "--email", "alice@example.org", "--password-stdin")
	file := filepath.Join(t.TempDir(), "alice.json")
	a.must(t, "a long passphrase here\n", "export", "alice", "--out", file, "--passphrase-stdin")
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b := startLive(t, denyLoopback(sqliteEnv(t)))
	p := newBrowser(t).importForm(b.base, raw, "a long passphrase here", "")
	if p.status < 400 {
		t.Fatalf("import verified against a did:web it must not fetch: %d", p.status)
	}
	if strings.Contains(p.body, "MYSQL") {
		t.Fatal("the import page shows what answered")
	}
	if n := conns.Load(); n != 0 {
		t.Fatalf("the did:web host on 127.0.0.1 got %d connections", n)
	}
}

// TestOutboundJWKSURI: a private_key_jwt client whose jwks_uri is on
// loopback: /token refuses the client without fetching it.
func TestOutboundJWKSURI(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	keys := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte(`{"keys":[]}`))
	}))
	defer keys.Close()
	l := startLive(t, denyLoopback(sqliteEnv(t)))
	reg := register(t, context.Background(), l.base, map[string]any{"client_name": "pkjwt", "grant_types": []string{"client_credentials"},
		"token_endpoint_auth_method": "private_key_jwt", "token_endpoint_auth_signing_alg": "ES256", "jwks_uri": keys.URL + "/jwks.json"})
	id := reg["client_id"].(string)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "k1").WithType("JWT"))
	assertion, _ := jwt.Signed(s).Claims(jwt.Claims{Issuer: id, Subject: id, Audience: jwt.Audience{l.base + "/token"},
		ID: randString(12), Expiry: jwt.NewNumericDate(time.Now().Add(time.Minute)), IssuedAt: jwt.NewNumericDate(time.Now())}).Serialize()
	st, out := postForm(t, l.base+"/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {id},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}}, "", "")
	if st == 200 || st >= 500 {
		t.Fatalf("token: %d %v", st, out)
	}
	if hits.Load() != 0 {
		t.Fatalf("jwks_uri on loopback fetched %d times", hits.Load())
	}
}

// TestRegistrationStrictJSON: duplicated and differently-cased keys are
// refused by registration (POST and PUT) with invalid_client_metadata
// naming the key, and by the dashboard JSON API with 400.
func TestRegistrationStrictJSON(t *testing.T) {
	t.Parallel()
	l := startLive(t, sqliteEnv(t))
	for name, body := range map[string]string{
		"duplicate":    `{"redirect_uris":["https://a.example/cb"],"redirect_uris":["https://evil.example/cb"]}`,
		"case variant": `{"redirect_uris":["https://a.example/cb"],"Redirect_URIs":["https://evil.example/cb"]}`,
		"nested":       `{"grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt","jwks":{"keys":[],"keys":[]}}`,
	} {
		st, out, _ := postRegistration(t, "POST", l.base+"/register", "", body)
		desc, _ := out["error_description"].(string)
		if st != 400 || out["error"] != "invalid_client_metadata" || !strings.Contains(desc, "JSON key") {
			t.Errorf("%s: %d %v", name, st, out)
		}
	}
	reg := register(t, context.Background(), l.base, map[string]any{"client_name": "x", "redirect_uris": []string{"https://a.example/cb"}})
	id, tok := reg["client_id"].(string), reg["registration_access_token"].(string)
	st, out, _ := postRegistration(t, "PUT", l.base+"/register/"+id, tok,
		`{"client_id":"`+id+`","redirect_uris":["https://a.example/cb"],"REDIRECT_URIS":["https://evil.example/cb"]}`)
	if st != 400 || out["error"] != "invalid_client_metadata" || !strings.Contains(out["error_description"].(string), "REDIRECT_URIS") {
		t.Fatalf("PUT with a case variant: %d %v", st, out)
	}

	const pw = "correct horse battery"
	l.env.must(t, pw+"\n", "user", "create", "--username", "alice", "--email", "alice@example.org", "--password-stdin")
	br := newBrowser(t)
	br.signIn(l.base, "alice", pw)
	if st, _, _ := br.api("PUT", l.base+"/account/api/profile", json.RawMessage(`{"name":"Alice"}`)); st != 200 {
		t.Fatalf("profile update: %d", st)
	}
	for _, body := range []string{`{"name":"Alice","Name":"Mallory"}`, `{"name":"Alice","name":"Mallory"}`} {
		if st, out, _ := br.api("PUT", l.base+"/account/api/profile", json.RawMessage(body)); st != 400 || out["error"] != "invalid_request" {
			t.Fatalf("profile %s: %d %v", body, st, out)
		}
	}
	if _, prof, _ := br.api("GET", l.base+"/account/api/profile", nil); prof["name"] != "Alice" {
		t.Fatalf("profile after refused updates: %v", prof)
	}
}

// TestRegistrationRedirectURIs: "*" and white space are refused at
// registration; at /authorize a loopback redirect URI may vary only its
// port: user info or a percent-encoded path is refused with an error page,
// not a redirect.
func TestRegistrationRedirectURIs(t *testing.T) {
	t.Parallel()
	l := startLive(t, sqliteEnv(t))
	for _, u := range []string{"https://*.example/cb", "https://a.example/*", "https://a.example/c b", "https://a.example/cb\t", "https://a.example\\@evil.example/"} {
		body, _ := json.Marshal(map[string]any{"redirect_uris": []string{u}})
		if st, out, _ := postRegistration(t, "POST", l.base+"/register", "", string(body)); st != 400 || out["error"] != "invalid_redirect_uri" {
			t.Errorf("redirect_uri %q: %d %v", u, st, out)
		}
	}
	reg := register(t, context.Background(), l.base, map[string]any{"client_name": "native", "redirect_uris": []string{"http://127.0.0.1:8000/cb"}})
	id := reg["client_id"].(string)
	noFollow := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	authorize := func(redirect string) (int, string) {
		q := url.Values{"client_id": {id}, "response_type": {"code"}, "scope": {"openid"}, "state": {"state-0123456789"}, "redirect_uri": {redirect}}
		resp, err := noFollow.Get(l.base + "/authorize?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Location")
	}
	if st, loc := authorize("http://127.0.0.1:54321/cb"); st != http.StatusSeeOther || !strings.HasPrefix(loc, "/login") {
		t.Fatalf("another port: %d %s, want the login page", st, loc)
	}
	for _, bad := range []string{"http://evil@127.0.0.1:54321/cb", "http://127.0.0.1:54321/c%62", "http://127.0.0.1:8000/cb%2F..%2Fadmin", "http://127.0.0.1:8000/c%62"} {
		if st, loc := authorize(bad); st != http.StatusBadRequest || loc != "" {
			t.Errorf("redirect_uri %s: %d %q, want 400 and no redirect", bad, st, loc)
		}
	}
}

// TestRegistrationUpdateLimited: PUT and DELETE on /register/{id} share
// the registration budget: 429 once it is spent.
func TestRegistrationUpdateLimited(t *testing.T) {
	e := sqliteEnv(t)
	e["COMMONSID_RATE_LIMIT"] = "on"
	l := startLive(t, e)
	reg := register(t, context.Background(), l.base, map[string]any{"client_name": "x", "redirect_uris": []string{"https://a.example/cb"}})
	id, tok := reg["client_id"].(string), reg["registration_access_token"].(string)
	body, _ := json.Marshal(map[string]any{"client_id": id, "client_name": "y", "redirect_uris": []string{"https://a.example/cb"}})
	limited := 0
	for i := 1; i <= 25 && limited == 0; i++ {
		st, out, h := postRegistration(t, "PUT", l.base+"/register/"+id, tok, string(bytes.TrimSpace(body)))
		switch st {
		case http.StatusOK:
		case http.StatusTooManyRequests:
			if h.Get("Retry-After") == "" {
				t.Fatal("429 without Retry-After")
			}
			limited = i
		default:
			t.Fatalf("PUT %d: %d %v", i, st, out)
		}
	}
	if limited == 0 || limited < 19 {
		t.Fatalf("PUT limited at request %d, want 429 once the 20 registration writes per hour are spent", limited)
	}
	if st, _, _ := postRegistration(t, "DELETE", l.base+"/register/"+id, tok, ""); st != http.StatusTooManyRequests {
		t.Fatalf("DELETE after the budget is spent: %d", st)
	}
}
