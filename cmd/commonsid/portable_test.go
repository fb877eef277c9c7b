package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/onecommons/commonsid/portable"
)

// newRPAt registers a relying party with a chosen redirect URI, so that the
// same service can be registered on two clouds with the same sector.
func newRPAt(t *testing.T, l *live, name, redirect string) *rp {
	t.Helper()
	app := newRP(t, l, name, map[string]any{"redirect_uris": []string{redirect}})
	app.redirect, app.conf.RedirectURL = redirect, redirect
	return app
}

// subAt signs alice in to app through b and returns the sub, and whether a
// consent page was shown.
func subAt(t *testing.T, b *browser, app *rp, password string) (string, bool) {
	t.Helper()
	b.pages = nil
	v := oauth2.GenerateVerifier()
	p := b.authorize(app.conf.AuthCodeURL(randString(12), oauth2.S256ChallengeOption(v)), "alice", password, nil)
	code := p.url.Query().Get("code")
	if code == "" {
		t.Fatalf("no code: %d %s\n%s", p.status, p.url, p.body)
	}
	tok, err := app.conf.Exchange(context.Background(), code, oauth2.VerifierOption(v))
	if err != nil {
		t.Fatal(err)
	}
	idt, err := app.provider.Verifier(&oidc.Config{ClientID: app.conf.ClientID}).Verify(context.Background(), tok.Extra("id_token").(string))
	if err != nil {
		t.Fatal(err)
	}
	return idt.Subject, strings.Contains(strings.Join(b.pages, " "), "/consent")
}

// exportedDocument decodes the payload of an export file (no checks).
func exportedDocument(t *testing.T, file []byte) portable.Document {
	t.Helper()
	var jws struct {
		Payload string `json:"payload"`
	}
	if err := json.Unmarshal(file, &jws); err != nil {
		t.Fatal(err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(jws.Payload)
	if err != nil {
		t.Fatal(err)
	}
	var d portable.Document
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestMoveBetweenClouds: an account moves from a SQLite cloud to a
// PostgreSQL cloud through the CLI; a service registered with the same
// sector on both sees the same sub before and after; consents and settings
// carry over; re-exporting gives the same content but for the move; the
// old cloud shows the "moved" page.
func TestMoveBetweenClouds(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := startLive(t, sqliteEnv(t))
	b := startLive(t, postgresEnv(t))
	const pw = "correct horse battery"
	did := lastLine(a.env.must(t, pw+"\n", "user", "create", "--username", "alice", "--email", "alice@example.org", "--name", "Alice", "--password-stdin"))

	redirect := "http://127.0.0.77:9/forum/callback"
	onA, onB := newRPAt(t, a, "forum", redirect), newRPAt(t, b, "forum", redirect)
	br := newBrowser(t)
	subA, _ := subAt(t, br, onA, pw)
	// A setting to carry over.
	st, _, _ := br.api("PUT", a.base+"/account/api/privacy", map[string]any{"subject_mode": "pairwise", "fork_policy": "never",
		"federation_sharing": "all", "activity_retention_days": 730, "consent_lifetime_days": 0, "claim_policy": map[string]string{"did": "never"}})
	if st != 200 {
		t.Fatalf("settings on A: %d", st)
	}
	_, settingsA, _ := br.api("GET", a.base+"/account/api/privacy", nil)

	file := filepath.Join(dir, "alice.json")
	a.env.must(t, "a long passphrase here\n", "export", "alice", "--out", file, "--passphrase-stdin", "--include-password")
	exported, _ := os.ReadFile(file)

	// Bad input first: each refused with its message, nothing written on B.
	bad := func(name string, data []byte, pass, want string) {
		t.Helper()
		p := filepath.Join(dir, name)
		os.WriteFile(p, data, 0o600)
		r := b.env.run(t, pass+"\n", "import", p, "--passphrase-stdin")
		if r.code == 0 || !strings.Contains(r.stderr, want) {
			t.Errorf("%s: exit %d, stderr %q, want %q", name, r.code, r.stderr, want)
		}
	}
	bad("wrong-pass.json", exported, "not the passphrase", "wrong passphrase")
	bad("truncated.json", exported[:len(exported)/2], "a long passphrase here", "not a Commons ID export")
	i := strings.Index(string(exported), `"signature":"`) + len(`"signature":"`)
	tampered := append([]byte{}, exported...)
	// Another base64url letter in the first signature.
	if tampered[i] == 'A' {
		tampered[i] = 'B'
	} else {
		tampered[i] = 'A'
	}
	bad("tampered.json", tampered, "a long passphrase here", "signature")
	bad("dupkey.json", []byte(strings.Replace(string(exported), `{"payload"`, `{"payload":"x","payload"`, 1)), "a long passphrase here", "repeats a JSON key")
	if out := b.env.must(t, "", "user", "list"); strings.Contains(out, "alice") {
		t.Fatalf("a refused import wrote an account: %s", out)
	}

	out := b.env.must(t, "a long passphrase here\n", "import", file, "--passphrase-stdin")
	if lastLine(out) != did || !strings.Contains(out, "1 consents kept") {
		t.Fatalf("import: %s", out)
	}
	if r := b.env.run(t, "a long passphrase here\n", "import", file, "--passphrase-stdin"); r.code == 0 || !strings.Contains(r.stderr, "already on this cloud") {
		t.Fatalf("second import: %+v", r)
	}

	// Re-export on B: the same content but for the move.
	file2 := filepath.Join(dir, "alice-again.json")
	b.env.must(t, "another passphrase!!\n", "export", "alice", "--out", file2, "--passphrase-stdin", "--include-password")
	again, _ := os.ReadFile(file2)
	d1, d2 := exportedDocument(t, exported), exportedDocument(t, again)
	if diff := portable.Compare(d1, d2); len(diff) != 0 {
		t.Fatalf("re-export differs in %v", diff)
	}
	if d2.Account.HomeIssuer != b.base || d2.Issuer != b.base {
		t.Fatalf("re-export: home %s, issuer %s", d2.Account.HomeIssuer, d2.Issuer)
	}

	// The old cloud records the move.
	a.env.must(t, "", "user", "moved", "--statement", file+".move")
	if show := a.env.must(t, "", "user", "show", did); !strings.Contains(show, `"status": "moved"`) || !strings.Contains(show, b.base) || strings.Contains(show, "alice@example.org") {
		t.Fatalf("old cloud after the move: %s", show)
	}
	// Both clouds' view of the account's DID document names the new home.
	for _, c := range []*live{a, b} {
		p := newBrowser(t).get(c.base + "/dids/" + url.PathEscape(did))
		var doc struct {
			ID      string `json:"id"`
			Service []struct {
				Type     string `json:"type"`
				Endpoint string `json:"serviceEndpoint"`
			} `json:"service"`
		}
		json.Unmarshal([]byte(p.body), &doc)
		if p.status != 200 || doc.ID != did || len(doc.Service) != 1 || doc.Service[0].Endpoint != b.base {
			t.Fatalf("%s/dids/%s: %d %s", c.base, did, p.status, p.body)
		}
	}
	p := newBrowser(t).post(a.base+"/login", url.Values{"username": {"alice"}, "password": {pw}})
	if p.status != 410 || !strings.Contains(p.body, b.base) {
		t.Fatalf("login on the old cloud: %d\n%s", p.status, p.body)
	}
	// Same service family, same sub, consent carried over.
	br2 := newBrowser(t)
	subB, asked := subAt(t, br2, onB, pw)
	if subB != subA {
		t.Fatalf("sub on the new cloud %s, on the old %s", subB, subA)
	}
	if asked {
		t.Fatal("the carried-over consent was asked again")
	}
	_, settingsB, _ := br2.api("GET", b.base+"/account/api/privacy", nil)
	if fmt.Sprint(settingsA) != fmt.Sprint(settingsB) {
		t.Fatalf("settings differ:\nA %v\nB %v", settingsA, settingsB)
	}
	st, acts, _ := br2.api("GET", b.base+"/account/api/activity?kind=imported", nil)
	if entries, _ := acts["entries"].([]any); st != 200 || len(entries) != 1 {
		t.Fatalf("no imported entry in the log: %v", acts)
	}
	// A replayed (older) export does not overwrite the account, even with --merge.
	if r := b.env.run(t, "a long passphrase here\n", "import", file, "--passphrase-stdin", "--merge"); r.code == 0 || !strings.Contains(r.stderr, "older than the account") {
		t.Fatalf("merging an older export: %+v", r)
	}
	// Moving back: the old cloud takes the account in again from the new
	// cloud's export, with the same DID, and signs it in.
	back := a.env.must(t, "another passphrase!!\n", "import", file2, "--passphrase-stdin")
	if lastLine(back) != did {
		t.Fatalf("move back: %s", back)
	}
	if show := a.env.must(t, "", "user", "show", did); !strings.Contains(show, `"status": "active"`) || !strings.Contains(show, `"home_cloud": "`+a.base+`"`) {
		t.Fatalf("after moving back: %s", show)
	}
	home := newBrowser(t)
	if p := home.signIn(a.base, "alice", pw); p.url.Path != "/account" {
		t.Fatalf("sign-in after moving back: %d %s", p.status, p.url)
	}
	// A newer export merges into the copy still on B.
	if st, _, _ := home.api("PUT", a.base+"/account/api/profile", map[string]any{"name": "Alice Back"}); st != 200 {
		t.Fatalf("profile edit after moving back: %d", st)
	}
	file3 := filepath.Join(dir, "alice-3.json")
	a.env.must(t, "a third passphrase!\n", "export", "alice", "--out", file3, "--passphrase-stdin")
	if r := b.env.run(t, "a third passphrase!\n", "import", file3, "--passphrase-stdin"); r.code == 0 || !strings.Contains(r.stderr, "merge") {
		t.Fatalf("import over a present account without --merge: %+v", r)
	}
	b.env.must(t, "a third passphrase!\n", "import", file3, "--passphrase-stdin", "--merge")
	if show := b.env.must(t, "", "user", "show", did); !strings.Contains(show, "Alice Back") {
		t.Fatalf("merge did not update the profile: %s", show)
	}
	// A move statement for another cloud is refused.
	if r := b.env.run(t, "", "user", "moved", "--statement", file+".move"); r.code == 0 || !strings.Contains(r.stderr, "not from this cloud") {
		t.Fatalf("move statement applied to the wrong cloud: %+v", r)
	}
}
