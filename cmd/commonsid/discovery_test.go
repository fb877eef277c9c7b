package main

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestDiscovery checks the discovery document against OIDC Discovery 1.0
// and what the provider supports, and how it and the JWKS are served.
func TestDiscovery(t *testing.T) {
	t.Parallel()
	l := startLive(t, sqliteEnv(t))
	base := l.base

	resp, body := get(t, base+"/.well-known/openid-configuration")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("discovery: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if cl := resp.Header.Get("Content-Length"); cl != strconv.Itoa(len(body)) || len(resp.TransferEncoding) != 0 {
		t.Errorf("discovery Content-Length %q for %d bytes, transfer encoding %v", cl, len(body), resp.TransferEncoding)
	}
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "max-age=") || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("discovery Cache-Control %q, CORS %q", cc, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	var d map[string]any
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatalf("discovery is not JSON: %v", err)
	}
	if d["issuer"] != base {
		t.Fatalf("issuer %v, want %s", d["issuer"], base)
	}
	endpoints := map[string]string{
		"authorization_endpoint": "/authorize", "token_endpoint": "/token", "userinfo_endpoint": "/userinfo",
		"jwks_uri": "/jwks.json", "registration_endpoint": "/register", "end_session_endpoint": "/logout",
		"revocation_endpoint": "/revoke", "introspection_endpoint": "/introspect",
	}
	for field, path := range endpoints {
		if d[field] != base+path {
			t.Errorf("%s = %v, want %s", field, d[field], base+path)
		}
	}
	strs := func(field string) []string {
		raw, _ := d[field].([]any)
		var out []string
		for _, v := range raw {
			s, _ := v.(string)
			out = append(out, s)
		}
		return out
	}
	exactly := map[string][]string{
		"response_types_supported":         {"code"},
		"code_challenge_methods_supported": {"S256"},
		"grant_types_supported":            {"authorization_code", "refresh_token", "client_credentials"},
		"response_modes_supported":         {"query", "form_post"},
	}
	for field, want := range exactly {
		if got := strs(field); !slices.Equal(got, want) {
			t.Errorf("%s = %v, want %v", field, got, want)
		}
	}
	atLeast := map[string][]string{
		"subject_types_supported":               {"pairwise", "public"},
		"scopes_supported":                      {"openid", "profile", "email", "did", "offline_access"},
		"token_endpoint_auth_methods_supported": {"client_secret_basic", "client_secret_post", "private_key_jwt", "none"},
		"id_token_signing_alg_values_supported": {"ES256", "EdDSA", "RS256"},
		"claims_supported":                      {"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "name", "email", "email_verified", "did", "preferred_username"},
		"prompt_values_supported":               {"none", "login", "consent"},
	}
	for field, want := range atLeast {
		got := strs(field)
		for _, w := range want {
			if !slices.Contains(got, w) {
				t.Errorf("%s = %v lacks %s", field, got, w)
			}
		}
	}
	if d["claims_parameter_supported"] != true {
		t.Errorf("claims_parameter_supported = %v", d["claims_parameter_supported"])
	}

	// HEAD answers as GET does, without the body.
	hr, err := http.Head(base + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	hr.Body.Close()
	if hr.StatusCode != http.StatusOK || hr.ContentLength != int64(len(body)) {
		t.Errorf("HEAD discovery: %d, length %d, want 200 and %d", hr.StatusCode, hr.ContentLength, len(body))
	}
	// Other methods are refused.
	pr, err := http.Post(base+"/.well-known/openid-configuration", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	pr.Body.Close()
	if pr.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST discovery: %d, want 405", pr.StatusCode)
	}

	resp, body = get(t, base+"/jwks.json")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/jwk-set+json" {
		t.Fatalf("jwks: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if cl := resp.Header.Get("Content-Length"); cl != strconv.Itoa(len(body)) {
		t.Errorf("jwks Content-Length %q for %d bytes", cl, len(body))
	}
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "max-age=") {
		t.Errorf("jwks Cache-Control %q", cc)
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil || len(set.Keys) == 0 {
		t.Fatalf("jwks %s: %v", body, err)
	}
	for _, k := range set.Keys {
		if k["kid"] == nil || k["alg"] == nil || k["d"] != nil {
			t.Errorf("published key %v: needs kid and alg, and no private part", k)
		}
	}
	hr, err = http.Head(base + "/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	hr.Body.Close()
	if hr.StatusCode != http.StatusOK || hr.ContentLength != int64(len(body)) {
		t.Errorf("HEAD jwks: %d, length %d, want 200 and %d", hr.StatusCode, hr.ContentLength, len(body))
	}
}
