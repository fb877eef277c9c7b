package httpx

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// echo is a handler that parses the request as fosite does and reports
// what it got.
func echo(t *testing.T, called *bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*called = true
		if err := r.ParseMultipartForm(1 << 20); err != nil && !errors.Is(err, http.ErrNotMultipart) {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		json.NewEncoder(w).Encode(r.Form)
	})
}

func multipartBody(t *testing.T, fileBytes int) (*bytes.Buffer, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	mw.WriteField("token", "x")
	fw, _ := mw.CreateFormFile("f", "big.bin")
	fw.Write(bytes.Repeat([]byte{'a'}, fileBytes))
	mw.Close()
	return &b, mw.FormDataContentType()
}

func TestBound(t *testing.T) {
	oauth := Limit{Body: 1 << 10, Query: 100, Unique: true, Repeatable: []string{"resource"}, JSON: true}
	page := Limit{Body: 1 << 10, Query: 100}
	upload := Limit{Body: 4 << 10, Query: 100, Multipart: true}
	const form = "application/x-www-form-urlencoded"
	mp, mpType := multipartBody(t, 2<<10)
	tests := []struct {
		name        string
		lim         Limit
		method, url string
		ctype, body string
		chunked     bool // hide the length, as a chunked body does
		wantStatus  int
		wantJSON    bool   // an OAuth error object
		wantIn      string // in the answer's body
		wantCalled  bool
	}{
		{name: "small form passes", lim: oauth, method: "POST", url: "/token", ctype: form,
			body: "grant_type=code&resource=a&resource=b", wantStatus: 200, wantCalled: true, wantIn: `"resource":["a","b"]`},
		{name: "oversized declared", lim: oauth, method: "POST", url: "/token", ctype: form,
			body: "a=" + strings.Repeat("x", 2<<10), wantStatus: 413, wantJSON: true, wantIn: "larger than 1 KiB"},
		{name: "oversized chunked", lim: oauth, method: "POST", url: "/token", ctype: form, chunked: true,
			body: "a=" + strings.Repeat("x", 2<<10), wantStatus: 413, wantJSON: true},
		{name: "oversized page", lim: page, method: "POST", url: "/login", ctype: form, chunked: true,
			body: "a=" + strings.Repeat("x", 2<<10), wantStatus: 413, wantIn: "Request Entity Too Large"},
		{name: "duplicate in body", lim: oauth, method: "POST", url: "/token", ctype: form,
			body: "client_id=a&code=1&client_id=b", wantStatus: 400, wantJSON: true, wantIn: "'client_id' is given more than once"},
		{name: "duplicate across query and body", lim: oauth, method: "POST", url: "/token?code=1", ctype: form,
			body: "code=2", wantStatus: 400, wantJSON: true, wantIn: "'code'"},
		{name: "duplicate without value", lim: oauth, method: "POST", url: "/token", ctype: form,
			body: "grant_type=&grant_type=authorization_code", wantStatus: 400, wantJSON: true, wantIn: "'grant_type'"},
		{name: "duplicate in query", lim: oauth, method: "GET", url: "/authorize?redirect_uri=a&redirect_uri=b",
			wantStatus: 400, wantJSON: true, wantIn: "'redirect_uri'"},
		{name: "duplicate name escaped", lim: oauth, method: "GET", url: "/authorize?state=a&st%61te=b",
			wantStatus: 400, wantJSON: true, wantIn: "'state'"},
		{name: "malformed", lim: oauth, method: "GET", url: "/authorize?state=%zz",
			wantStatus: 400, wantJSON: true, wantIn: "not valid"},
		{name: "duplicates allowed where not unique", lim: page, method: "POST", url: "/consent", ctype: form,
			body: "claim=a&claim=b", wantStatus: 200, wantCalled: true},
		{name: "long query", lim: oauth, method: "GET", url: "/authorize?state=" + strings.Repeat("x", 200),
			wantStatus: 414, wantJSON: true, wantIn: "longer than 100 bytes"},
		{name: "multipart refused at oauth", lim: oauth, method: "POST", url: "/revoke", ctype: mpType,
			body: mp.String(), wantStatus: 400, wantJSON: true, wantIn: "multipart"},
		{name: "multipart refused at page", lim: page, method: "POST", url: "/login", ctype: mpType,
			body: mp.String(), wantStatus: 415},
		{name: "malformed multipart type refused", lim: page, method: "POST", url: "/login", ctype: "Multipart/Form-Data; boundary",
			body: "x", wantStatus: 415},
		{name: "multipart where expected", lim: upload, method: "POST", url: "/signup/import", ctype: mpType,
			body: mp.String(), wantStatus: 200, wantCalled: true, wantIn: `"token":["x"]`},
		{name: "multipart too large where expected", lim: Limit{Body: 1 << 10, Multipart: true}, method: "POST", url: "/signup/import",
			ctype: mpType, body: mp.String(), wantStatus: 413},
		{name: "json body passes", lim: Limit{Body: 1 << 10, JSON: true}, method: "POST", url: "/register", ctype: "application/json",
			body: `{"a":1}`, wantStatus: 200, wantCalled: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			called := false
			h := Bound(func(*http.Request) Limit { return tc.lim })(echo(t, &called))
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
				if tc.chunked {
					body = io.MultiReader(body) // hides the length from NewRequest
				}
			}
			req := httptest.NewRequest(tc.method, tc.url, body)
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			if tc.chunked {
				req.ContentLength = -1
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.wantStatus, rec.Body)
			}
			if called != tc.wantCalled {
				t.Fatalf("handler called = %v, want %v", called, tc.wantCalled)
			}
			if tc.wantJSON {
				var e struct{ Error, ErrorDescription string }
				if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error != "invalid_request" {
					t.Fatalf("body %q is not an invalid_request error (%v)", rec.Body, err)
				}
				if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
					t.Fatalf("Content-Type %q", ct)
				}
			}
			if !strings.Contains(rec.Body.String(), tc.wantIn) {
				t.Fatalf("body %q lacks %q", rec.Body, tc.wantIn)
			}
		})
	}
}

// TestBoundLeavesNoTempFile: a handler that parses a multipart body as
// fosite does (ParseMultipartForm with 1 MiB in memory) on a copy of the
// request spills the file to the temp folder, and net/http removes only
// the original's; behind Bound the body never reaches it.
func TestBoundLeavesNoTempFile(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	body, ctype := multipartBody(t, 2<<20)
	spill := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = r.WithContext(r.Context())
		r.ParseMultipartForm(1 << 20)
	})
	for _, tc := range []struct {
		name  string
		h     http.Handler
		files int
	}{
		{"unbounded", spill, 1},
		{"bounded", Bound(func(*http.Request) Limit { return Limit{Body: 64 << 10, JSON: true} })(spill), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.h)
			defer srv.Close()
			resp, err := http.Post(srv.URL, ctype, bytes.NewReader(body.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			srv.Close()
			ents, _ := os.ReadDir(dir)
			if len(ents) != tc.files {
				t.Fatalf("%d files in the temp folder, want %d", len(ents), tc.files)
			}
			for _, e := range ents {
				os.Remove(dir + "/" + e.Name())
			}
		})
	}
}

// TestBoundRestoresBody: the handler reads the same body the limits read.
func TestBoundRestoresBody(t *testing.T) {
	var got url.Values
	h := Bound(func(*http.Request) Limit { return Limit{Body: 1 << 10, Unique: true} })(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		got = r.PostForm
	}))
	req := httptest.NewRequest("POST", "/token", strings.NewReader("a=1&b=2"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	h.ServeHTTP(httptest.NewRecorder(), req)
	if diff := cmp.Diff(url.Values{"a": {"1"}, "b": {"2"}}, got); diff != "" {
		t.Fatal(diff)
	}
}

func TestDecodeForm(t *testing.T) {
	tests := []struct {
		name, in string
		want     url.Values
		dup      string
		err      error
	}{
		{name: "empty", in: "", want: url.Values{}},
		{name: "plain", in: "a=1&b=&c", want: url.Values{"a": {"1"}, "b": {""}, "c": {""}}},
		{name: "escapes", in: "a+b=%41+c", want: url.Values{"a b": {"A c"}}},
		{name: "empty pairs skipped", in: "&&a=1&", want: url.Values{"a": {"1"}}},
		{name: "repeatable", in: "resource=x&resource=y", want: url.Values{"resource": {"x", "y"}}},
		{name: "duplicate", in: "a=1&a=1", dup: "a"},
		{name: "duplicate bare", in: "a&a", dup: "a"},
		{name: "duplicate after escape", in: "scope=x&%73cope=y", dup: "scope"},
		{name: "semicolon", in: "a=1;b=2", err: ErrMalformedForm},
		{name: "bad escape", in: "a=%g0", err: ErrMalformedForm},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := url.Values{}
			err := DecodeForm(got, tc.in, []string{"resource"})
			var de *DuplicateParamError
			switch {
			case tc.dup != "":
				if !errors.As(err, &de) || de.Name != tc.dup {
					t.Fatalf("err = %v, want duplicate %q", err, tc.dup)
				}
			case tc.err != nil:
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Fatal(diff)
				}
			}
		})
	}
}

func TestQuoteParam(t *testing.T) {
	if got := quoteParam("a\"b\\c\x00é"); got != "'a?b?c???'" {
		t.Fatalf("quoteParam = %q", got)
	}
	if got := quoteParam(strings.Repeat("x", 100)); len(got) != 40+5 {
		t.Fatalf("quoteParam of a long name = %q", got)
	}
}

// FuzzDecodeForm: DecodeForm accepts exactly what url.ParseQuery accepts
// without a repeated name, and then decodes it the same way; its error
// description is always a valid OAuth error_description.
func FuzzDecodeForm(f *testing.F) {
	for _, s := range []string{"", "a=1&b=2", "a=1&a=2", "resource=x&resource=y", "a=%zz", "a;b", "%61=1&a=2", "&&=&"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.Count(s, "&") >= 1000 { // ParseQuery's own cap on parameters
			t.Skip()
		}
		got := url.Values{}
		err := DecodeForm(got, s, []string{"resource"})
		want, werr := url.ParseQuery(s)
		repeated := false
		for k, vs := range want {
			if len(vs) > 1 && k != "resource" {
				repeated = true
			}
		}
		if err == nil {
			if werr != nil || repeated {
				t.Fatalf("DecodeForm(%q) accepted what ParseQuery refuses (%v) or repeats", s, werr)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("DecodeForm(%q): %s", s, diff)
			}
			return
		}
		if werr == nil && !repeated {
			t.Fatalf("DecodeForm(%q) = %v, ParseQuery accepts it", s, err)
		}
		for _, c := range []byte(err.Error()) {
			if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
				t.Fatalf("error %q is not a valid error_description", err)
			}
		}
	})
}
