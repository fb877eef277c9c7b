package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testAdminToken = "admin-token-for-tests-0123456789abcdef"

// adminCall sends one admin API request with the bearer token tok ("" for
// none) and decodes a JSON answer.
func adminCall(t *testing.T, method, u, tok string, body any) (int, http.Header, map[string]any, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, u, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	json.Unmarshal(raw, &out)
	return resp.StatusCode, resp.Header, out, raw
}

// startAdminLive serves a cloud with the admin API on its own free port.
func startAdminLive(t *testing.T, e env) (*live, string) {
	t.Helper()
	port := freePort(t)
	e["COMMONSID_ADMIN_ADDR"] = "127.0.0.1:" + port
	e["COMMONSID_ADMIN_TOKEN"] = testAdminToken
	return startLive(t, e), "http://127.0.0.1:" + port
}

// TestAdminAPI drives the admin listener of a running serve: refusals
// without a token, with a wrong one and with a client token lacking the
// scope; accounts listed, shown and disabled (the account then cannot sign
// in); clients, keys and peers; pprof and /metrics only there (the public
// listener answers 404 for /metrics by default).
func TestAdminAPI(t *testing.T) {
	t.Parallel()
	for name, mk := range map[string]func(testing.TB) env{"sqlite": sqliteEnv, "postgres": postgresEnv} {
		t.Run(name, func(t *testing.T) {
			l, adm := startAdminLive(t, mk(t))
			e := l.env
			e.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--password-stdin")
			e.must(t, "correct horse battery\n", "user", "create", "--username", "bob", "--password-stdin")

			// No token: 401 with a challenge; a wrong token: 401 invalid_token.
			for _, path := range []string{"/admin/v1/accounts", "/metrics", "/debug/pprof/"} {
				st, h, body, _ := adminCall(t, "GET", adm+path, "", nil)
				if st != 401 || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer ") || body["error"] == nil {
					t.Fatalf("GET %s without a token: %d %q %v", path, st, h.Get("WWW-Authenticate"), body)
				}
			}
			st, h, body, _ := adminCall(t, "GET", adm+"/admin/v1/accounts", testAdminToken+"x", nil)
			if st != 401 || body["error"] != "invalid_token" || !strings.Contains(h.Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Fatalf("wrong token: %d %v %q", st, body, h.Get("WWW-Authenticate"))
			}

			// List with paging, show by handle and by DID.
			st, _, body, raw := adminCall(t, "GET", adm+"/admin/v1/accounts?limit=1", testAdminToken, nil)
			accts, _ := body["accounts"].([]any)
			if st != 200 || len(accts) != 1 || body["next_after"] != "alice" {
				t.Fatalf("page 1: %d %s", st, raw)
			}
			st, _, body, raw = adminCall(t, "GET", adm+"/admin/v1/accounts?limit=1&after=alice", testAdminToken, nil)
			accts, _ = body["accounts"].([]any)
			if st != 200 || len(accts) != 1 || accts[0].(map[string]any)["handle"] != "bob" {
				t.Fatalf("page 2: %d %s", st, raw)
			}
			if st, _, _, raw = adminCall(t, "GET", adm+"/admin/v1/accounts?limit=501", testAdminToken, nil); st != 400 {
				t.Fatalf("limit 501: %d %s", st, raw)
			}
			st, _, body, raw = adminCall(t, "GET", adm+"/admin/v1/accounts/alice", testAdminToken, nil)
			aliceDID, _ := body["did"].(string)
			if st != 200 || aliceDID == "" || body["status"] != "active" || body["password_hash"] != nil {
				t.Fatalf("show alice: %d %s", st, raw)
			}
			if st, _, body, _ = adminCall(t, "GET", adm+"/admin/v1/accounts/"+url.PathEscape(aliceDID), testAdminToken, nil); st != 200 || body["handle"] != "alice" {
				t.Fatalf("show by DID: %d %v", st, body)
			}
			if st, _, body, _ = adminCall(t, "GET", adm+"/admin/v1/accounts/nobody", testAdminToken, nil); st != 404 || body["error"] != "not_found" {
				t.Fatalf("show nobody: %d %v", st, body)
			}

			// Alice signs in; disabled through the API, her session ends and
			// she cannot sign in again.
			_, _, sess := signIn(t, l.base, "alice", "correct horse battery")
			if sess == "" || !signedIn(t, l.base, sess) {
				t.Fatal("alice could not sign in before being disabled")
			}
			st, _, body, raw = adminCall(t, "POST", adm+"/admin/v1/accounts/alice/disable", testAdminToken, nil)
			if st != 200 || body["status"] != "disabled" {
				t.Fatalf("disable: %d %s", st, raw)
			}
			if signedIn(t, l.base, sess) {
				t.Fatal("alice's session outlived disable")
			}
			if _, _, sess = signIn(t, l.base, "alice", "correct horse battery"); sess != "" {
				t.Fatal("a disabled account signed in")
			}
			if out := e.must(t, "", "user", "show", "alice"); !strings.Contains(out, `"status": "disabled"`) {
				t.Fatalf("the CLI does not see the change: %s", out)
			}
			if st, _, body, _ = adminCall(t, "POST", adm+"/admin/v1/accounts/alice/enable", testAdminToken, nil); st != 200 || body["status"] != "active" {
				t.Fatalf("enable: %d %v", st, body)
			}

			// Password reset: a too short one is refused with the CLI's
			// rule; a generated one signs in.
			if st, _, body, _ = adminCall(t, "POST", adm+"/admin/v1/accounts/bob/reset-password", testAdminToken, map[string]string{"password": "short"}); st != 400 {
				t.Fatalf("short password: %d %v", st, body)
			}
			if st, _, body, _ = adminCall(t, "POST", adm+"/admin/v1/accounts/bob/reset-password", testAdminToken, map[string]string{"pasword": "x"}); st != 400 {
				t.Fatalf("unknown key: %d %v", st, body)
			}
			st, _, body, raw = adminCall(t, "POST", adm+"/admin/v1/accounts/bob/reset-password", testAdminToken, map[string]string{})
			pw, _ := body["password"].(string)
			if st != 200 || pw == "" || body["generated"] != true {
				t.Fatalf("generated reset: %d %s", st, raw)
			}
			if _, _, s := signIn(t, l.base, "bob", pw); s == "" {
				t.Fatal("bob cannot sign in with the generated password")
			}
			if _, _, s := signIn(t, l.base, "bob", "correct horse battery"); s != "" {
				t.Fatal("bob's old password still works")
			}

			// Clients: created through the API with the registrar's checks.
			st, _, body, raw = adminCall(t, "POST", adm+"/admin/v1/clients", testAdminToken, map[string]any{
				"client_name": "Reader", "grant_types": []string{"client_credentials"}, "scope": "admin:read"})
			readerID, _ := body["client_id"].(string)
			readerSecret, _ := body["client_secret"].(string)
			if st != 201 || readerID == "" || readerSecret == "" {
				t.Fatalf("create client: %d %s", st, raw)
			}
			if st, _, body, _ = adminCall(t, "POST", adm+"/admin/v1/clients", testAdminToken, map[string]any{
				"client_name": "Bad", "redirect_uris": []string{"http://evil.example/cb"}}); st != 400 || body["error"] == nil {
				t.Fatalf("bad redirect: %d %v", st, body)
			}
			st, _, body, _ = adminCall(t, "POST", adm+"/admin/v1/clients", testAdminToken, map[string]any{
				"client_name": "Plain", "grant_types": []string{"client_credentials"}})
			plainID, _ := body["client_id"].(string)
			plainSecret, _ := body["client_secret"].(string)
			if st != 201 {
				t.Fatalf("create plain client: %d %v", st, body)
			}
			if st, _, body, _ = adminCall(t, "GET", adm+"/admin/v1/clients/"+readerID, testAdminToken, nil); st != 200 || body["client_name"] != "Reader" {
				t.Fatalf("show client: %d %v", st, body)
			}

			// Anyone may register at the public endpoint: not with an admin
			// scope, which only the operators grant.
			for _, scope := range []string{"admin", "admin:read", "openid admin"} {
				b, _ := json.Marshal(map[string]any{"client_name": "Sneak", "grant_types": []string{"client_credentials"}, "scope": scope})
				resp, err := http.Post(l.base+"/register", "application/json", bytes.NewReader(b))
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != 400 {
					t.Fatalf("public registration with scope %q: %d, want 400", scope, resp.StatusCode)
				}
			}

			// Client credentials tokens: admin:read reads but does not
			// change; a token without an admin scope is 403.
			tok := call(t, l.base+"/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"admin:read"}}, readerID, readerSecret, "")
			readTok, _ := tok.body["access_token"].(string)
			if tok.status != 200 || readTok == "" {
				t.Fatalf("token admin:read: %d %v", tok.status, tok.body)
			}
			if st, _, _, raw = adminCall(t, "GET", adm+"/admin/v1/accounts", readTok, nil); st != 200 {
				t.Fatalf("admin:read list: %d %s", st, raw)
			}
			st, h, body, _ = adminCall(t, "POST", adm+"/admin/v1/accounts/bob/disable", readTok, nil)
			if st != 403 || body["error"] != "insufficient_scope" || !strings.Contains(h.Get("WWW-Authenticate"), `scope="admin"`) {
				t.Fatalf("admin:read disable: %d %v %q", st, body, h.Get("WWW-Authenticate"))
			}
			tok = call(t, l.base+"/token", url.Values{"grant_type": {"client_credentials"}}, plainID, plainSecret, "")
			plainTok, _ := tok.body["access_token"].(string)
			if tok.status != 200 || plainTok == "" {
				t.Fatalf("plain token: %d %v", tok.status, tok.body)
			}
			if st, _, body, _ = adminCall(t, "GET", adm+"/admin/v1/accounts", plainTok, nil); st != 403 || body["error"] != "insufficient_scope" {
				t.Fatalf("token without admin scope: %d %v", st, body)
			}
			// A revoked token is refused.
			if a := call(t, l.base+"/revoke", url.Values{"token": {readTok}}, readerID, readerSecret, ""); a.status != 200 {
				t.Fatalf("revoke: %d %v", a.status, a.body)
			}
			if st, _, body, _ = adminCall(t, "GET", adm+"/admin/v1/accounts", readTok, nil); st != 401 {
				t.Fatalf("revoked token: %d %v", st, body)
			}
			if st, _, _, _ = adminCall(t, "DELETE", adm+"/admin/v1/clients/"+plainID, testAdminToken, nil); st != 204 {
				t.Fatalf("delete client: %d", st)
			}
			if st, _, _, _ = adminCall(t, "DELETE", adm+"/admin/v1/clients/"+plainID, testAdminToken, nil); st != 404 {
				t.Fatalf("delete client again: %d", st)
			}

			// Keys: list and rotate; a bad algorithm is refused.
			st, _, _, raw = adminCall(t, "POST", adm+"/admin/v1/keys/rotate", testAdminToken, map[string]string{"alg": "EdDSA"})
			if st != 201 || !strings.Contains(string(raw), `"alg": "EdDSA"`) {
				t.Fatalf("rotate: %d %s", st, raw)
			}
			if st, _, _, _ = adminCall(t, "POST", adm+"/admin/v1/keys/rotate", testAdminToken, map[string]string{"alg": "HS256"}); st != 400 {
				t.Fatalf("rotate HS256: %d", st)
			}
			var ks []keyJSON
			_, _, _, raw = adminCall(t, "GET", adm+"/admin/v1/keys", testAdminToken, nil)
			if json.Unmarshal(raw, &ks); len(ks) != 2 {
				t.Fatalf("keys after rotate: %s", raw)
			}
			// Peers: an empty list, a bad issuer refused, removing a
			// stranger is 404.
			if st, _, _, raw = adminCall(t, "GET", adm+"/admin/v1/peers", testAdminToken, nil); st != 200 || strings.TrimSpace(string(raw)) != "[]" {
				t.Fatalf("peers: %d %s", st, raw)
			}
			if st, _, _, _ = adminCall(t, "POST", adm+"/admin/v1/peers", testAdminToken, map[string]string{"issuer": "ftp://x"}); st != 400 {
				t.Fatalf("bad peer: %d", st)
			}
			if st, _, _, _ = adminCall(t, "DELETE", adm+"/admin/v1/peers?issuer="+url.QueryEscape("https://stranger.example"), testAdminToken, nil); st != 404 {
				t.Fatalf("remove a stranger: %d", st)
			}

			// pprof and /metrics on the admin listener; the public
			// listener has neither by default.
			if st, _, _, raw = adminCall(t, "GET", adm+"/debug/pprof/goroutine?debug=1", testAdminToken, nil); st != 200 || !strings.Contains(string(raw), "goroutine") {
				t.Fatalf("admin pprof: %d", st)
			}
			if resp, _ := get(t, l.base+"/debug/pprof/"); resp.StatusCode == 200 {
				t.Fatal("pprof is served on the public listener")
			}
			_, _, _, raw = adminCall(t, "GET", adm+"/metrics", testAdminToken, nil)
			if !strings.Contains(string(raw), `commonsid_http_requests_total{code="200",method="POST",route="/token"}`) {
				t.Fatalf("admin /metrics lacks the public listener's counts:\n%s", grepLines(string(raw), "commonsid_http_requests_total"))
			}
			if resp, body := get(t, l.base+"/metrics"); resp.StatusCode != 404 || strings.Contains(string(body), "commonsid_") {
				t.Fatalf("public /metrics by default: %d %.200s", resp.StatusCode, body)
			}

			// Delete through the API.
			if st, _, _, _ = adminCall(t, "DELETE", adm+"/admin/v1/accounts/bob", testAdminToken, nil); st != 204 {
				t.Fatalf("delete bob: %d", st)
			}
			if _, _, body, _ = adminCall(t, "GET", adm+"/admin/v1/accounts/bob", testAdminToken, nil); body["status"] != "deleted" {
				t.Fatalf("bob after delete: %v", body)
			}
		})
	}
}

// TestAdminRemoteCLI: the CLI given --url acts on a running cloud through
// its admin API, with the token from a file; a bad token is refused.
func TestAdminRemoteCLI(t *testing.T) {
	t.Parallel()
	l, adm := startAdminLive(t, sqliteEnv(t))
	l.env.must(t, "correct horse battery\n", "user", "create", "--username", "carol", "--password-stdin")
	tf := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tf, []byte(testAdminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A remote environment: no data folder, so nothing local can be used.
	rem := env{}
	remote := func(args ...string) result {
		return rem.run(t, "", append([]string{"--url", adm, "--admin-token-file", tf}, args...)...)
	}
	if r := remote("user", "list"); r.code != 0 || !strings.Contains(r.stdout, "carol") || !strings.Contains(r.stdout, "active") {
		t.Fatalf("remote user list: %d %s %s", r.code, r.stdout, r.stderr)
	}
	r := remote("user", "list", "--json")
	var as []accountJSON
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &as) != nil || len(as) != 1 || as[0].Handle != "carol" {
		t.Fatalf("remote user list --json: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := remote("user", "show", "carol"); r.code != 0 || !strings.Contains(r.stdout, `"handle": "carol"`) {
		t.Fatalf("remote user show: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := remote("user", "disable", "carol"); r.code != 0 || r.stdout != "disabled account carol\n" {
		t.Fatalf("remote user disable: %d %q %s", r.code, r.stdout, r.stderr)
	}
	if out := l.env.must(t, "", "user", "show", "carol"); !strings.Contains(out, `"status": "disabled"`) {
		t.Fatalf("not disabled: %s", out)
	}
	if r := remote("user", "enable", "carol"); r.code != 0 || r.stdout != "enabled account carol\n" {
		t.Fatalf("remote user enable: %d %q %s", r.code, r.stdout, r.stderr)
	}
	if r := remote("user", "show", "nobody"); r.code != 1 || !strings.Contains(r.stderr, "no account") {
		t.Fatalf("remote show nobody: %d %s", r.code, r.stderr)
	}
	if r := remote("client", "list"); r.code != 0 || !strings.HasPrefix(r.stdout, "CLIENT_ID") {
		t.Fatalf("remote client list: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := remote("peer", "list", "--json"); r.code != 0 || strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("remote peer list: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := remote("keys", "list"); r.code != 0 || !strings.Contains(r.stdout, "active") {
		t.Fatalf("remote keys list: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := remote("user", "create"); r.code != exitUsage {
		t.Fatalf("remote user create: %d %s", r.code, r.stderr)
	}
	// With the environment instead of flags, and a wrong token.
	bad := env{"COMMONSID_ADMIN_URL": adm, "COMMONSID_ADMIN_TOKEN": "wrong-token"}
	if r := bad.run(t, "", "user", "list"); r.code != 1 || !strings.Contains(r.stderr, "401") {
		t.Fatalf("wrong token: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := (env{"COMMONSID_ADMIN_URL": "http://admin.example.org:8090", "COMMONSID_ADMIN_TOKEN": testAdminToken}).run(t, "", "user", "list"); r.code != exitUsage {
		t.Fatalf("plain http to a remote host: %d %s", r.code, r.stderr)
	}
}

// TestAdminConfig: a non-loopback admin address needs a token; a short
// token is refused; off starts none; COMMONSID_PUBLIC_METRICS=on brings
// /metrics back on the public listener.
func TestAdminConfig(t *testing.T) {
	t.Parallel()
	e := sqliteEnv(t)
	e["COMMONSID_ADMIN_ADDR"] = "0.0.0.0:" + freePort(t)
	if r := e.run(t, "", "serve"); r.code != exitUsage || !strings.Contains(r.stderr, "COMMONSID_ADMIN_ADDR") || !strings.Contains(r.stderr, "COMMONSID_ADMIN_TOKEN") {
		t.Fatalf("non-loopback without token: %d %s", r.code, r.stderr)
	}
	e["COMMONSID_ADMIN_TOKEN"] = "short"
	if r := e.run(t, "", "serve"); r.code != exitUsage || !strings.Contains(r.stderr, "at least 32") {
		t.Fatalf("short token: %d %s", r.code, r.stderr)
	}
	e["COMMONSID_ADMIN_ADDR"] = "127.0.0.1"
	delete(e, "COMMONSID_ADMIN_TOKEN")
	if r := e.run(t, "", "serve"); r.code != exitUsage || !strings.Contains(r.stderr, "host:port or off") {
		t.Fatalf("no port: %d %s", r.code, r.stderr)
	}
	e["COMMONSID_PUBLIC_METRICS"] = "perhaps"
	e["COMMONSID_ADMIN_ADDR"] = "off"
	if r := e.run(t, "", "serve"); r.code != exitUsage || !strings.Contains(r.stderr, "COMMONSID_PUBLIC_METRICS") {
		t.Fatalf("bad COMMONSID_PUBLIC_METRICS: %d %s", r.code, r.stderr)
	}
	// The admin listener off, and /metrics asked for on the public one.
	e["COMMONSID_PUBLIC_METRICS"] = "on"
	l := startLive(t, e)
	if resp, body := get(t, l.base+"/metrics"); resp.StatusCode != 200 || !strings.Contains(string(body), "commonsid_http_requests_total") {
		t.Fatalf("public /metrics with COMMONSID_PUBLIC_METRICS=on: %d", resp.StatusCode)
	}
}
