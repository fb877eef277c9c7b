package oidc_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/onecommons/commonsid/internal/testdb"
	"github.com/onecommons/commonsid/oidc"
)

func TestPairwiseSubject(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	a := oidc.PairwiseSubject(secret, "notes.example")
	if a != oidc.PairwiseSubject(secret, "notes.example") {
		t.Fatal("not deterministic")
	}
	if a == oidc.PairwiseSubject(secret, "calendar.example") {
		t.Fatal("two sectors share a sub")
	}
	if a == oidc.PairwiseSubject([]byte("another secret, another person.."), "notes.example") {
		t.Fatal("two people share a sub")
	}
	// A fixed vector (computed independently: Python hmac + base64url): the
	// value must never change, or every service would
	// see every person as new.
	if got, want := oidc.PairwiseSubject([]byte("k"), "s"), "p1T0BZsKTApKv2Vo6hhlOLfy3CNro839kkkuN_Bm_o0"; got != want {
		t.Fatalf("PairwiseSubject(k, s) = %s, want %s", got, want)
	}
}

func registrar(t *testing.T, client *http.Client) *oidc.Registrar {
	t.Helper()
	db, _ := testdb.SQLite(t)
	return &oidc.Registrar{Store: db, Issuer: "https://id.example", Now: time.Now}
}

func TestRegisterValidation(t *testing.T) {
	sector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode([]string{"https://a.example/cb", "https://b.example/cb"})
	}))
	defer sector.Close()
	g := registrar(t, sector.Client())
	ctx := context.Background()
	md := func(f func(*oidc.Metadata)) *oidc.RegisterRequest {
		r := &oidc.RegisterRequest{Metadata: oidc.Metadata{RedirectURIs: []string{"https://a.example/cb"}}}
		f(&r.Metadata)
		return r
	}
	cases := []struct {
		name string
		req  *oidc.RegisterRequest
		code string // "" means accepted
	}{
		{"defaults", md(func(*oidc.Metadata) {}), ""},
		{"loopback http", md(func(m *oidc.Metadata) { m.RedirectURIs = []string{"http://127.0.0.1:8000/cb"} }), ""},
		{"localhost http", md(func(m *oidc.Metadata) { m.RedirectURIs = []string{"http://localhost:8000/cb"} }), ""},
		{"http elsewhere", md(func(m *oidc.Metadata) { m.RedirectURIs = []string{"http://a.example/cb"} }), "invalid_redirect_uri"},
		{"custom scheme", md(func(m *oidc.Metadata) { m.RedirectURIs = []string{"com.example.app:/cb"} }), "invalid_redirect_uri"},
		{"relative", md(func(m *oidc.Metadata) { m.RedirectURIs = []string{"/cb"} }), "invalid_redirect_uri"},
		{"fragment", md(func(m *oidc.Metadata) { m.RedirectURIs = []string{"https://a.example/cb#f"} }), "invalid_redirect_uri"},
		{"user info", md(func(m *oidc.Metadata) { m.RedirectURIs = []string{"https://u:p@a.example/cb"} }), "invalid_redirect_uri"},
		{"implicit grant", md(func(m *oidc.Metadata) { m.GrantTypes = []string{"implicit"} }), "invalid_client_metadata"},
		{"password grant", md(func(m *oidc.Metadata) { m.GrantTypes = []string{"password"} }), "invalid_client_metadata"},
		{"token response", md(func(m *oidc.Metadata) { m.ResponseTypes = []string{"code id_token"} }), "invalid_client_metadata"},
		{"public client credentials", md(func(m *oidc.Metadata) {
			m.TokenEndpointAuthMethod, m.GrantTypes = "none", []string{"client_credentials"}
		}), "invalid_client_metadata"},
		{"unknown auth method", md(func(m *oidc.Metadata) { m.TokenEndpointAuthMethod = "tls_client_auth" }), "invalid_client_metadata"},
		{"bad subject type", md(func(m *oidc.Metadata) { m.SubjectType = "random" }), "invalid_client_metadata"},
		{"HS256", md(func(m *oidc.Metadata) { m.IDTokenSignedResponseAlg = "HS256" }), "invalid_client_metadata"},
		{"http policy uri", md(func(m *oidc.Metadata) { m.PolicyURI = "http://a.example/policy" }), "invalid_client_metadata"},
		{"bad scope token", md(func(m *oidc.Metadata) { m.Scope = "ok bad\"scope" }), "invalid_client_metadata"},
		{"two hosts", md(func(m *oidc.Metadata) { m.RedirectURIs = []string{"https://a.example/cb", "https://b.example/cb"} }), "invalid_client_metadata"},
		{"two hosts public", md(func(m *oidc.Metadata) {
			m.RedirectURIs, m.SubjectType = []string{"https://a.example/cb", "https://b.example/cb"}, "public"
		}), ""},
		{"cross-cloud fork", md(func(m *oidc.Metadata) { m.ForkedFrom = "https://other.example#abc" }), "invalid_client_metadata"},
		{"short secret", &oidc.RegisterRequest{Metadata: oidc.Metadata{RedirectURIs: []string{"https://a.example/cb"}}, ClientSecret: "too short"}, "invalid_client_metadata"},
		{"secret for a public client", &oidc.RegisterRequest{Metadata: oidc.Metadata{RedirectURIs: []string{"https://a.example/cb"}, TokenEndpointAuthMethod: "none"},
			ClientSecret: "0123456789012345678901234567890123456789"}, "invalid_client_metadata"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := g.Register(ctx, c.req)
			var me *oidc.MetadataError
			switch {
			case c.code == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.code != "" && (!errors.As(err, &me) || me.Code != c.code):
				t.Fatalf("err = %v, want %s", err, c.code)
			}
		})
	}
	// A long enough supplied secret is kept; the answer holds it once.
	out, err := g.Register(ctx, &oidc.RegisterRequest{Metadata: oidc.Metadata{RedirectURIs: []string{"https://a.example/cb"}},
		ClientSecret: "0123456789012345678901234567890123456789"})
	if err != nil || out.ClientSecret != "0123456789012345678901234567890123456789" || out.RegistrationAccessToken == "" {
		t.Fatalf("supplied secret: %+v %v", out, err)
	}
	sc, _ := g.Store.GetClient(ctx, out.ClientID)
	if sc.SecretHash == out.ClientSecret || len(sc.SecretHash) != 64 {
		t.Fatalf("secret stored as %q: want its SHA-256", sc.SecretHash)
	}
	// Defaults are filled.
	out, _ = g.Register(ctx, md(func(*oidc.Metadata) {}))
	if out.TokenEndpointAuthMethod != "client_secret_basic" || out.SubjectType != "pairwise" || out.IDTokenSignedResponseAlg != "ES256" ||
		len(out.ResponseTypes) != 1 || out.ResponseTypes[0] != "code" {
		t.Fatalf("defaults: %+v", out.Metadata)
	}
}
