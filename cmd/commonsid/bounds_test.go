package main

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// multipartPost posts a form with a file part of fileBytes bytes and
// returns the status and body.
func multipartPost(t *testing.T, u string, fields url.Values, fileBytes int) (int, string) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, vs := range fields {
		for _, v := range vs {
			mw.WriteField(k, v)
		}
	}
	fw, _ := mw.CreateFormFile("file", "big.bin")
	fw.Write(bytes.Repeat([]byte{'a'}, fileBytes))
	mw.Close()
	req, _ := http.NewRequest("POST", u, &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// noRedirects is a client that returns redirects instead of following them
// (to a relying party that is not there).
var noRedirects = &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func oauthError(body string) (code, desc string) {
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	json.Unmarshal([]byte(body), &e)
	return e.Error, e.Description
}

// TestBoundedInput: what an anonymous request sends stays within bounds.
// Multipart bodies leave no temporary file behind, at any form endpoint;
// oversized bodies, long queries and long headers are refused; OAuth
// parameters may be given once; an http cloud sends no HSTS.
func TestBoundedInput(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // where Go's multipart parser spills file parts
	l := startLive(t, sqliteEnv(t))
	app := newRP(t, l, "bounds", nil)
	id, secret := app.conf.ClientID, app.conf.ClientSecret

	t.Run("multipart leaves no temp file", func(t *testing.T) {
		fields := url.Values{"token": {"x"}, "grant_type": {"authorization_code"}, "code": {"x"}, "client_id": {id},
			"response_type": {"code"}, "redirect_uri": {app.redirect}, "username": {"alice"}, "password": {"x"},
			"handle": {"mallory"}, "challenge": {"x"}, "decision": {"allow"}, "passphrase": {"x"}}
		for _, path := range []string{"/token", "/revoke", "/introspect", "/authorize", "/login", "/signup", "/signup/import", "/consent", "/logout", "/userinfo"} {
			status, body := multipartPost(t, l.base+path, fields, 2<<20)
			if status < 400 || status >= 500 {
				t.Errorf("multipart to %s: %d, want 4xx: %.200s", path, status, body)
			}
			if ents, _ := os.ReadDir(tmp); len(ents) > 0 {
				t.Errorf("multipart to %s left %d files in the temp folder, first %s", path, len(ents), ents[0].Name())
				for _, e := range ents {
					os.RemoveAll(filepath.Join(tmp, e.Name()))
				}
			}
		}
		// At the OAuth endpoints the refusal is an OAuth error.
		for _, path := range []string{"/token", "/revoke", "/introspect"} {
			status, body := multipartPost(t, l.base+path, fields, 1<<10)
			if code, _ := oauthError(body); status != 400 || code != "invalid_request" {
				t.Errorf("small multipart to %s: %d %s, want 400 invalid_request", path, status, body)
			}
		}
	})

	t.Run("oversized form bodies", func(t *testing.T) {
		big := strings.Repeat("x", 1<<20)
		for _, path := range []string{"/token", "/revoke", "/introspect"} {
			status, out := postForm(t, l.base+path, url.Values{"token": {big}, "grant_type": {"client_credentials"}}, id, secret)
			if status != http.StatusRequestEntityTooLarge || out["error"] != "invalid_request" {
				t.Errorf("1 MiB form to %s: %d %v, want 413 invalid_request", path, status, out)
			}
		}
		// Just under the limit is still read (and answered on its merits).
		status, out := postForm(t, l.base+"/revoke", url.Values{"token": {strings.Repeat("x", 60<<10)}}, id, secret)
		if status == http.StatusRequestEntityTooLarge {
			t.Errorf("60 KiB revoke: %d %v", status, out)
		}
	})

	t.Run("duplicate parameters", func(t *testing.T) {
		base := url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "client_id": {id}, "redirect_uri": {app.redirect}}
		for _, dup := range []string{"client_id", "code", "grant_type", "redirect_uri"} {
			form := url.Values{}
			for k, v := range base {
				form[k] = append([]string{}, v...)
			}
			form.Add(dup, form.Get(dup))
			status, out := postForm(t, l.base+"/token", form, id, secret)
			desc, _ := out["error_description"].(string)
			if status != 400 || out["error"] != "invalid_request" || !strings.Contains(desc, "'"+dup+"'") {
				t.Errorf("%s twice at /token: %d %v, want 400 invalid_request naming it", dup, status, out)
			}
		}
		status, out := postForm(t, l.base+"/revoke", url.Values{"token": {"a", "b"}}, id, secret)
		if status != 400 || out["error"] != "invalid_request" {
			t.Errorf("token twice at /revoke: %d %v", status, out)
		}
		status, out = postForm(t, l.base+"/introspect", url.Values{"token": {"a", "b"}}, id, secret)
		if status != 400 || out["error"] != "invalid_request" {
			t.Errorf("token twice at /introspect: %d %v", status, out)
		}
		// At /authorize the redirect_uri cannot be trusted: a page, no redirect.
		q := url.Values{"client_id": {id}, "response_type": {"code"}, "scope": {"openid"}, "state": {"a-long-enough-state"},
			"redirect_uri": {app.redirect, "http://127.0.0.1:9/evil"}}
		resp, body := noRedirectGet(t, l.base+"/authorize?"+q.Encode())
		if resp.StatusCode != 400 || resp.Header.Get("Location") != "" || !strings.Contains(body, "redirect_uri") {
			t.Errorf("redirect_uri twice at /authorize: %d %q %s", resp.StatusCode, resp.Header.Get("Location"), body)
		}
	})

	t.Run("long query and headers", func(t *testing.T) {
		q := url.Values{"client_id": {app.conf.ClientID}, "response_type": {"code"}, "scope": {"openid"},
			"redirect_uri": {app.redirect}, "state": {strings.Repeat("s", 20<<10)}}
		resp, _ := noRedirectGet(t, l.base+"/authorize?"+q.Encode())
		if resp.StatusCode != http.StatusRequestURITooLong {
			t.Errorf("20 KiB query at /authorize: %d, want 414", resp.StatusCode)
		}
		req, _ := http.NewRequest("GET", l.base+"/healthz", nil)
		req.Header.Set("X-Filler", strings.Repeat("h", 100<<10))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("100 KiB header: %d, want 431", resp.StatusCode)
		}
		if resp.Header.Get("Strict-Transport-Security") != "" {
			t.Error("an http cloud sent HSTS")
		}
	})
}

func noRedirectGet(t *testing.T, u string) (*http.Response, string) {
	t.Helper()
	resp, err := noRedirects.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestImportForm: "Bring my identity" still reads its multipart form (file,
// passphrase, new handle) and refuses a file larger than the documented
// maximum with 413, leaving no temporary file.
func TestImportForm(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	a := startLive(t, sqliteEnv(t))
	b := startLive(t, sqliteEnv(t))
	const pw = "correct horse battery"
	did := lastLine(a.env.must(t, pw+"\n", "user", "create", "--username", "alice", "--email", "alice@example.org", "--password-stdin"))
	// A different account holds the handle on b: the import takes a new one.
	b.env.must(t, pw+"\n", "user", "create", "--username", "alice", "--email", "other@example.org", "--password-stdin")
	file := filepath.Join(t.TempDir(), "alice.json")
	a.env.must(t, "a long passphrase here\n", "export", "alice", "--out", file, "--passphrase-stdin")
	exported, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if p := newBrowser(t).importForm(b.base, exported, "not the passphrase", "alice2"); p.status != 400 || !strings.Contains(p.body, "Wrong passphrase") || !strings.Contains(p.body, `value="alice2"`) {
		t.Fatalf("wrong passphrase: %d %.300s", p.status, p.body)
	}
	if status, _ := multipartPost(t, b.base+"/signup/import", url.Values{"passphrase": {"a long passphrase here"}}, 50<<20+1); status != http.StatusRequestEntityTooLarge {
		t.Fatalf("import of a file over 50 MiB: %d, want 413", status)
	}
	if p := newBrowser(t).importForm(b.base, exported, "a long passphrase here", "alice2"); p.status != 200 {
		t.Fatalf("import: %d %.300s", p.status, p.body)
	}
	out := b.env.must(t, "", "user", "show", did)
	if !strings.Contains(out, `"handle": "alice2"`) {
		t.Fatalf("imported account: %s", out)
	}
	if ents, _ := os.ReadDir(tmp); len(ents) > 0 {
		t.Fatalf("%d files left in the temp folder, first %s", len(ents), ents[0].Name())
	}
}
