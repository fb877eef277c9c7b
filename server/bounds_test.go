package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
)

type okDB struct{}

func (okDB) Ping(context.Context) error { return nil }

// formArea stands for the handler areas: a protocol endpoint and a page
// that parse their form, and an upload.
type formArea struct{}

func (formArea) Mount(r chi.Router) {
	parse := func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		io.WriteString(w, "ok")
	}
	r.Post("/token", parse)
	r.Post("/par", parse)
	r.Post("/consent", parse)
	r.Post("/signup/import", parse)
	r.Get("/authorize", parse)
}

func newTestHandler(t *testing.T, issuer string) http.Handler {
	t.Helper()
	s := &Server{Issuer: issuer, DB: okDB{}, Log: slog.New(slog.DiscardHandler), Areas: []Mounter{formArea{}}}
	h, err := s.Handler()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestHSTS: every answer of an https cloud carries Strict-Transport-Security,
// refusals and 404s included; an http cloud sends none.
func TestHSTS(t *testing.T) {
	for _, tc := range []struct {
		issuer string
		want   string
	}{
		{"https://id.example.org", HSTS},
		{"http://127.0.0.1:8080", ""},
	} {
		h := newTestHandler(t, tc.issuer)
		for _, req := range []*http.Request{
			httptest.NewRequest("GET", "/healthz", nil),
			httptest.NewRequest("GET", "/nowhere", nil),
			httptest.NewRequest("GET", "/authorize?state="+strings.Repeat("x", 20<<10), nil),
		} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if got := rec.Header().Get("Strict-Transport-Security"); got != tc.want {
				t.Errorf("%s %s: Strict-Transport-Security %q, want %q", tc.issuer, req.URL.Path, got, tc.want)
			}
		}
	}
	if HSTS != "max-age=63072000; includeSubDomains" {
		t.Fatalf("HSTS = %q", HSTS)
	}
}

// TestRouteBounds: the router applies each family's limits.
func TestRouteBounds(t *testing.T) {
	h := newTestHandler(t, "https://id.example.org")
	const form = "application/x-www-form-urlencoded"
	tests := []struct {
		name, method, path, ctype, body string
		want                            int
		wantJSON                        bool
	}{
		{"token form", "POST", "/token", form, "grant_type=x", 200, false},
		{"token over 64 KiB", "POST", "/token", form, "a=" + strings.Repeat("x", FormBodyBytes), 413, true},
		{"token duplicate", "POST", "/token", form, "grant_type=x&grant_type=y", 400, true},
		{"token multipart", "POST", "/token", "multipart/form-data; boundary=b", "--b--\r\n", 400, true},
		{"pushed request of 20 KiB", "POST", "/par", form, "state=" + strings.Repeat("x", 20<<10), 200, false},
		{"pushed request duplicate", "POST", "/par", form, "scope=a&scope=b", 400, true},
		{"consent repeats claim", "POST", "/consent", form, "claim=a&claim=b", 200, false},
		{"consent over 64 KiB", "POST", "/consent", form, "a=" + strings.Repeat("x", FormBodyBytes), 413, false},
		{"consent multipart", "POST", "/consent", "multipart/form-data; boundary=b", "--b--\r\n", 415, false},
		{"import takes more than a form", "POST", "/signup/import", "multipart/form-data; boundary=b", "--b--\r\n" + strings.Repeat("x", FormBodyBytes), 200, false},
		{"authorize query 12 KiB", "GET", "/authorize?state=" + strings.Repeat("x", 12<<10), "", "", 200, false},
		{"authorize query 17 KiB", "GET", "/authorize?state=" + strings.Repeat("x", 17<<10), "", "", 414, false},
		{"authorize duplicate", "GET", "/authorize?redirect_uri=a&redirect_uri=b", "", "", 400, false},
		{"authorize resource repeats", "GET", "/authorize?resource=a&resource=b", "", "", 200, false},
		{"other query 9 KiB", "GET", "/healthz?x=" + strings.Repeat("x", 9<<10), "", "", 414, false},
		{"other body 9 KiB", "POST", "/nowhere", form, strings.Repeat("x", 9<<10), 413, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req := httptest.NewRequest(tc.method, tc.path, body)
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.want, rec.Body)
			}
			if isJSON := strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json"); isJSON != tc.wantJSON {
				t.Fatalf("JSON answer = %v, want %v: %s", isJSON, tc.wantJSON, rec.Body)
			}
		})
	}
}
