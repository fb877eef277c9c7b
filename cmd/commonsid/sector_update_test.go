package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// TestSectorUpdate: an RFC 7592 update that moves a pairwise client's
// redirect URIs to another host is refused with invalid_client_metadata
// saying why, and changes nothing; so is a sector_identifier_uri on the new
// host. A sector_identifier_uri on the old host listing both hosts' URIs is
// accepted, and the person keeps the same sub at the new redirect URI.
func TestSectorUpdate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := startLive(t, sqliteEnv(t))
	l.env.must(t, "correct horse battery\n", "user", "create", "--username", "alice", "--email", "alice@example.org", "--password-stdin")
	const newRedirect = "http://127.0.0.7:9/cb"
	var oldRedirect string
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/sector.json":
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode([]string{oldRedirect, newRedirect})
		case "/cb":
			w.Write([]byte("signed in"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer site.Close()
	oldRedirect = site.URL + "/cb"

	reg := register(t, ctx, l.base, map[string]any{"client_name": "moving", "redirect_uris": []string{oldRedirect}})
	id, tok := reg["client_id"].(string), reg["registration_access_token"].(string)
	secret := reg["client_secret"].(string)
	prov, err := oidc.NewProvider(ctx, l.base)
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t)
	subAt := func(redirect string) string {
		t.Helper()
		conf := &oauth2.Config{ClientID: id, ClientSecret: secret, Endpoint: prov.Endpoint(), RedirectURL: redirect, Scopes: []string{"openid"}}
		verifier := oauth2.GenerateVerifier()
		p := b.authorize(conf.AuthCodeURL(randString(16), oauth2.S256ChallengeOption(verifier)), "alice", "correct horse battery", nil)
		code := p.url.Query().Get("code")
		if code == "" || !strings.HasPrefix(p.url.String(), redirect) {
			t.Fatalf("no code at %s: %d %s", redirect, p.status, p.url)
		}
		tk, err := conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := tk.Extra("id_token").(string)
		idt, err := prov.Verifier(&oidc.Config{ClientID: id}).Verify(ctx, raw)
		if err != nil {
			t.Fatal(err)
		}
		return idt.Subject
	}
	sub := subAt(oldRedirect)

	put := func(meta map[string]any) (int, map[string]any) {
		meta["client_id"] = id
		meta["client_name"] = "moving"
		j, _ := json.Marshal(meta)
		st, out, _ := postRegistration(t, "PUT", l.base+"/register/"+id, tok, string(j))
		return st, out
	}
	st, out := put(map[string]any{"redirect_uris": []string{newRedirect}})
	desc, _ := out["error_description"].(string)
	if st != http.StatusBadRequest || out["error"] != "invalid_client_metadata" || !strings.Contains(desc, "sector") ||
		!strings.Contains(desc, "sector_identifier_uri") {
		t.Fatalf("moving the redirect URIs to another host: %d %v", st, out)
	}
	// A sector document on the new host moves the sector too.
	st, out = put(map[string]any{"redirect_uris": []string{newRedirect}, "sector_identifier_uri": "http://127.0.0.7:9/sector.json"})
	if st != http.StatusBadRequest || out["error"] != "invalid_client_metadata" {
		t.Fatalf("a sector_identifier_uri on the new host: %d %v", st, out)
	}
	st, out, _ = postRegistration(t, "GET", l.base+"/register/"+id, tok, "")
	if ru, _ := out["redirect_uris"].([]any); st != 200 || len(ru) != 1 || ru[0] != oldRedirect {
		t.Fatalf("a refused update changed the registration: %d %v", st, out)
	}

	st, out = put(map[string]any{"redirect_uris": []string{oldRedirect, newRedirect}, "sector_identifier_uri": site.URL + "/sector.json"})
	if st != http.StatusOK {
		t.Fatalf("a sector_identifier_uri keeping the sector: %d %v", st, out)
	}
	if got := subAt(newRedirect); got != sub {
		t.Fatalf("sub at the new redirect URI is %q, was %q", got, sub)
	}
	// The same host, another path: the sector does not move.
	if st, out = put(map[string]any{"redirect_uris": []string{site.URL + "/other"}}); st != http.StatusOK {
		t.Fatalf("moving within the host: %d %v", st, out)
	}
}
