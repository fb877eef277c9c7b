package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onecommons/commonsid/did"
)

func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
}

func waitReady(t testing.TB, base string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s/readyz not ready after %s", base, d)
}

func get(t *testing.T, u string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// TestServe runs the server in-process on SQLite and PostgreSQL and checks
// its operational endpoints, its did:web document, key rotation overlap and
// sign-up.
func TestServe(t *testing.T) {
	t.Parallel()
	for name, mk := range map[string]func(testing.TB) env{"sqlite": sqliteEnv, "postgres": postgresEnv} {
		t.Run(name, func(t *testing.T) {
			e := mk(t)
			e["COMMONSID_PUBLIC_METRICS"] = "on" // scraped below
			l := startLive(t, e)
			base := l.base

			resp, body := get(t, base+"/healthz")
			if resp.StatusCode != 200 || string(body) != "ok\n" {
				t.Fatalf("healthz: %d %q", resp.StatusCode, body)
			}
			wantDID, _ := did.WebDID(base)
			resp, body = get(t, base+"/.well-known/did.json")
			var doc did.Document
			if err := json.Unmarshal(body, &doc); err != nil || doc.ID != wantDID {
				t.Fatalf("did.json id = %q (%v), want %q", doc.ID, err, wantDID)
			}
			if resp.Header.Get("Content-Type") != "application/did+json" || len(doc.VerificationMethod) != 1 {
				t.Fatalf("did.json: %s %s", resp.Header.Get("Content-Type"), body)
			}
			// The project's resolver accepts the served document.
			var r did.Resolver
			resolved, err := r.Resolve(context.Background(), wantDID)
			if err != nil || len(resolved.VerificationMethod) != 1 {
				t.Fatalf("resolve %s: %v", wantDID, err)
			}
			// A rotation made by the CLI while the server runs: both keys published.
			e.must(t, "", "keys", "rotate")
			_, body = get(t, base+"/.well-known/did.json")
			json.Unmarshal(body, &doc)
			if len(doc.VerificationMethod) != 2 {
				t.Fatalf("after rotate, %d keys published, want 2", len(doc.VerificationMethod))
			}

			// Sign-up through the page.
			form := url.Values{"handle": {"Carol"}, "email": {"carol@example.org"}, "name": {"Carol"}, "password": {"correct horse battery"}}
			resp, err = http.PostForm(base+"/signup", form)
			if err != nil {
				t.Fatal(err)
			}
			page, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(page), "did:key:z6Mk") {
				t.Fatalf("signup: %d %s", resp.StatusCode, page)
			}
			for _, h := range []string{"Content-Security-Policy", "Referrer-Policy", "X-Content-Type-Options"} {
				if resp.Header.Get(h) == "" {
					t.Errorf("signup page lacks %s", h)
				}
			}
			if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") {
				t.Errorf("CSP %q", csp)
			}
			resp, _ = http.PostForm(base+"/signup", form)
			if resp.StatusCode != http.StatusConflict {
				t.Fatalf("duplicate signup: %d, want 409", resp.StatusCode)
			}
			bad := url.Values{"handle": {"x"}, "email": {"nope"}, "password": {"short"}}
			resp, err = http.PostForm(base+"/signup", bad)
			if err != nil {
				t.Fatal(err)
			}
			page, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 400 || !strings.Contains(string(page), "Handle must be") || !strings.Contains(string(page), "Password must be") || !strings.Contains(string(page), "not an email address") {
				t.Fatalf("invalid signup: %d %s", resp.StatusCode, page)
			}
			// Cross-origin form posts are refused.
			req, _ := http.NewRequest("POST", base+"/signup", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", "https://evil.example")
			req.Header.Set("Sec-Fetch-Site", "cross-site")
			resp, err = http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("cross-site signup: %d, want 403", resp.StatusCode)
			}
			if lines := e.must(t, "", "user", "list"); strings.Count(lines, "\n") != 2 {
				t.Fatalf("accounts after signups: %s", lines)
			}

			_, body = get(t, base+"/metrics")
			if !strings.Contains(string(body), `commonsid_http_requests_total{code="200",method="GET",route="/healthz"} 1`) {
				t.Fatalf("metrics lack the healthz count:\n%s", grepLines(string(body), "commonsid_http"))
			}

		})
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestServeRefusesBusyPort: a taken address is one clear error.
func TestServeRefusesBusyPort(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	e := sqliteEnv(t)
	e["COMMONSID_DATA"] = filepath.Join(t.TempDir(), "d")
	r := e.run(t, "", "serve", "--addr", ln.Addr().String())
	if r.code != 1 || !strings.Contains(r.stderr, "listen on "+ln.Addr().String()) {
		t.Fatalf("busy port: %+v", r)
	}
}

// TestServeWarnsWithoutAutovacuum: serve on PostgreSQL says at start when
// autovacuum is off (the purge's freed space would never be reused), and
// says nothing when it is on; on SQLite it never says it.
func TestServeWarnsWithoutAutovacuum(t *testing.T) {
	t.Parallel()
	const warning = "autovacuum is off"
	pg := startCloud(t, postgresEnv(t))
	var setting string
	if err := openTestCloud(t, pg.live()).db.SQL().QueryRow(`SHOW autovacuum`).Scan(&setting); err != nil {
		t.Fatal(err)
	}
	if got := strings.Contains(pg.logs.String(), warning); got != (setting == "off") {
		t.Errorf("autovacuum %s, warned %v; log:\n%s", setting, got, pg.logs.String())
	}
	lite := startCloud(t, sqliteEnv(t))
	if strings.Contains(lite.logs.String(), warning) {
		t.Errorf("warned on SQLite:\n%s", lite.logs.String())
	}
}
