package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// corsDo sends a request as a browser page at origin would, and returns
// the status, headers and body.
func corsDo(t *testing.T, method, u, origin string, hdr map[string]string, body string) (int, http.Header, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, u, rd)
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func preflight(t *testing.T, u, origin, method string) (int, http.Header) {
	t.Helper()
	st, h, _ := corsDo(t, http.MethodOptions, u, origin, map[string]string{
		"Access-Control-Request-Method": method, "Access-Control-Request-Headers": "authorization, content-type, dpop"}, "")
	return st, h
}

// TestCORS: a browser app (a public client with PKCE) registered with a
// redirect URI on its origin gets its origin echoed at token, UserInfo and
// revocation, for the preflight and for the request itself; an origin no
// client registered, and a registered origin of another client, get no
// Access-Control-Allow-Origin; the credentialed endpoints never answer "*";
// discovery and the JWKS do; introspection has no CORS; and a malformed
// allowed_cors_origins is refused at registration.
func TestCORS(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := startLive(t, sqliteEnv(t))
	l.env.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--email", "alice@example.org", "--password-stdin")
	app := newRP(t, l, "spa", map[string]any{"token_endpoint_auth_method": "none",
		"allowed_cors_origins": []string{"https://app.example.org"}})
	other := newRP(t, l, "other", nil)
	u, _ := url.Parse(app.redirect)
	origin := "http://" + u.Host
	ou, _ := url.Parse(other.redirect)
	otherOrigin := "http://" + ou.Host
	const stranger = "https://evil.example.net"

	for _, ep := range []struct{ path, method string }{{"/token", "POST"}, {"/userinfo", "GET"}, {"/revoke", "POST"}} {
		st, h := preflight(t, l.base+ep.path, origin, ep.method)
		if st != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != origin {
			t.Fatalf("preflight %s from %s: %d ACAO %q", ep.path, origin, st, h.Get("Access-Control-Allow-Origin"))
		}
		if !strings.Contains(h.Get("Access-Control-Allow-Methods"), ep.method) || h.Get("Access-Control-Max-Age") == "" ||
			!strings.Contains(h.Get("Vary"), "Origin") {
			t.Fatalf("preflight %s headers %v", ep.path, h)
		}
		for _, want := range []string{"Authorization", "Content-Type", "DPoP"} {
			if !strings.Contains(h.Get("Access-Control-Allow-Headers"), want) {
				t.Fatalf("preflight %s: Allow-Headers %q lacks %s", ep.path, h.Get("Access-Control-Allow-Headers"), want)
			}
		}
		if st, h := preflight(t, l.base+ep.path, "https://app.example.org", ep.method); st != http.StatusNoContent ||
			h.Get("Access-Control-Allow-Origin") != "https://app.example.org" {
			t.Fatalf("preflight %s from an allowed_cors_origins origin: %d %q", ep.path, st, h.Get("Access-Control-Allow-Origin"))
		}
		if _, h := preflight(t, l.base+ep.path, stranger, ep.method); h.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("preflight %s from an unregistered origin answered ACAO %q", ep.path, h.Get("Access-Control-Allow-Origin"))
		}
	}
	if _, h := preflight(t, l.base+"/introspect", origin, "POST"); h.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("introspection answered a preflight with ACAO %q", h.Get("Access-Control-Allow-Origin"))
	}
	for _, p := range []string{"/.well-known/openid-configuration", "/jwks.json"} {
		if _, h, _ := corsDo(t, "GET", l.base+p, stranger, nil, ""); h.Get("Access-Control-Allow-Origin") != "*" {
			t.Fatalf("GET %s: ACAO %q, want *", p, h.Get("Access-Control-Allow-Origin"))
		}
		if st, h := preflight(t, l.base+p, stranger, "GET"); st != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != "*" {
			t.Fatalf("preflight %s: %d ACAO %q", p, st, h.Get("Access-Control-Allow-Origin"))
		}
	}

	// The actual requests of the browser app, in the order it makes them.
	b := newBrowser(t)
	verifier := oauth2.GenerateVerifier()
	p := b.authorize(app.conf.AuthCodeURL(randString(16), oauth2.S256ChallengeOption(verifier)), "alice", "correct horse battery", nil)
	code := p.url.Query().Get("code")
	if code == "" {
		t.Fatalf("no code: %d %s", p.status, p.url)
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {app.redirect},
		"client_id": {app.conf.ClientID}, "code_verifier": {verifier}}
	formHdr := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	// Another client's registered origin is not this client's.
	st, h, body := corsDo(t, "POST", l.base+"/token", otherOrigin, formHdr, url.Values{"grant_type": {"authorization_code"},
		"code": {"not-a-code"}, "client_id": {app.conf.ClientID}, "redirect_uri": {app.redirect}, "code_verifier": {verifier}}.Encode())
	if st == http.StatusOK || h.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("token from another client's origin: %d ACAO %q %s", st, h.Get("Access-Control-Allow-Origin"), body)
	}
	st, h, body = corsDo(t, "POST", l.base+"/token", origin, formHdr, form.Encode())
	if st != http.StatusOK || h.Get("Access-Control-Allow-Origin") != origin {
		t.Fatalf("token: %d ACAO %q %s", st, h.Get("Access-Control-Allow-Origin"), body)
	}
	var tok struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	json.Unmarshal([]byte(body), &tok)
	bearer := map[string]string{"Authorization": "Bearer " + tok.AccessToken}
	st, h, body = corsDo(t, "GET", l.base+"/userinfo", origin, bearer, "")
	if st != http.StatusOK || h.Get("Access-Control-Allow-Origin") != origin || !strings.Contains(h.Get("Vary"), "Origin") {
		t.Fatalf("userinfo: %d ACAO %q %s", st, h.Get("Access-Control-Allow-Origin"), body)
	}
	if _, h, _ = corsDo(t, "GET", l.base+"/userinfo", stranger, bearer, ""); h.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("userinfo from an unregistered origin: ACAO %q", h.Get("Access-Control-Allow-Origin"))
	}
	if _, h, _ = corsDo(t, "GET", l.base+"/userinfo", otherOrigin, bearer, ""); h.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("userinfo from another client's origin: ACAO %q", h.Get("Access-Control-Allow-Origin"))
	}
	st, h, body = corsDo(t, "POST", l.base+"/revoke", origin, formHdr,
		url.Values{"token": {tok.AccessToken}, "client_id": {app.conf.ClientID}}.Encode())
	if st != http.StatusOK || h.Get("Access-Control-Allow-Origin") != origin {
		t.Fatalf("revoke: %d ACAO %q %s", st, h.Get("Access-Control-Allow-Origin"), body)
	}
	if _, h, _ = corsDo(t, "POST", l.base+"/revoke", stranger, formHdr,
		url.Values{"token": {tok.AccessToken}, "client_id": {app.conf.ClientID}}.Encode()); h.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("revoke from an unregistered origin: ACAO %q", h.Get("Access-Control-Allow-Origin"))
	}
	// A confidential client at its own origin, authenticated with Basic.
	_, h, _ = corsDo(t, "POST", l.base+"/revoke", otherOrigin, map[string]string{"Content-Type": "application/x-www-form-urlencoded",
		"Authorization": basicAuth(other.conf.ClientID, other.conf.ClientSecret)}, url.Values{"token": {"x"}}.Encode())
	if h.Get("Access-Control-Allow-Origin") != otherOrigin {
		t.Fatalf("revoke with Basic from the client's origin: ACAO %q", h.Get("Access-Control-Allow-Origin"))
	}
	// Never "*" where credentials are taken, whoever asks.
	for _, o := range []string{origin, stranger, "null"} {
		for _, path := range []string{"/token", "/userinfo", "/revoke"} {
			_, h := preflight(t, l.base+path, o, "POST")
			_, h2, _ := corsDo(t, "POST", l.base+path, o, formHdr, "client_id="+url.QueryEscape(app.conf.ClientID))
			if h.Get("Access-Control-Allow-Origin") == "*" || h2.Get("Access-Control-Allow-Origin") == "*" {
				t.Fatalf("%s answered * to %s", path, o)
			}
		}
	}
	_, h, _ = corsDo(t, "POST", l.base+"/introspect", otherOrigin, map[string]string{"Content-Type": "application/x-www-form-urlencoded",
		"Authorization": basicAuth(other.conf.ClientID, other.conf.ClientSecret)}, url.Values{"token": {"x"}}.Encode())
	if h.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("introspection answered ACAO %q", h.Get("Access-Control-Allow-Origin"))
	}

	for _, bad := range []string{"https://app.example.org/", "https://app.example.org/path", "http://app.example.org",
		"https://*.example.org", "https://App.example.org", "https://app.example.org:443", "null"} {
		b, _ := json.Marshal(map[string]any{"redirect_uris": []string{"https://app.example.org/cb"}, "allowed_cors_origins": []string{bad}})
		resp, err := http.Post(l.base+"/register", "application/json", strings.NewReader(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || out["error"] != "invalid_client_metadata" {
			t.Fatalf("allowed_cors_origins %q: %d %v", bad, resp.StatusCode, out)
		}
	}
	_ = ctx
}

func basicAuth(user, pass string) string {
	r, _ := http.NewRequest("GET", "http://x", nil)
	r.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	return r.Header.Get("Authorization")
}
