package server

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/onecommons/commonsid/internal/httpx"
)

// TestRequestIDAndLog: a sane X-Request-Id is kept and echoed, a missing or
// unsafe one is replaced by a fresh one; every request leaves one info line
// with the method, the route pattern (not the path or its query), the
// status, the duration and the request id.
func TestRequestIDAndLog(t *testing.T) {
	var buf bytes.Buffer
	s := &Server{Issuer: "http://127.0.0.1:1", DB: okDB{}, Log: slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Areas: []Mounter{formArea{}}}
	h, err := s.Handler()
	if err != nil {
		t.Fatal(err)
	}
	do := func(path, id string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", path, nil)
		if id != "" {
			req.Header.Set("X-Request-Id", id)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	if got := do("/healthz", "abc-123_X.y").Header().Get("X-Request-Id"); got != "abc-123_X.y" {
		t.Fatalf("sane id not echoed: %q", got)
	}
	for _, bad := range []string{"", "has space", "new\nline", strings.Repeat("a", 65), "quote\"", "ünï"} {
		got := do("/healthz", bad).Header().Get("X-Request-Id")
		if got == bad || !httpx.SaneRequestID(got) || len(got) != 32 {
			t.Fatalf("id %q: answered %q, want a fresh one", bad, got)
		}
	}
	if !httpx.SaneRequestID(strings.Repeat("a", 64)) {
		t.Fatal("a 64-character id is sane")
	}

	buf.Reset()
	w := do("/authorize?code=secret-code&login_hint=alice", "req-42")
	if w.Code != 200 {
		t.Fatalf("/authorize: %d", w.Code)
	}
	line := strings.TrimSpace(buf.String())
	if strings.Contains(line, "secret-code") || strings.Contains(line, "alice") {
		t.Fatalf("the request log carries the query: %s", line)
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(line), &rec); err != nil {
		t.Fatalf("one JSON line expected: %q", line)
	}
	if rec["level"] != "INFO" || rec["msg"] != "request" || rec["method"] != "GET" || rec["route"] != "/authorize" ||
		rec["status"] != float64(200) || rec["request_id"] != "req-42" || rec["duration"] == nil {
		t.Fatalf("request line: %v", rec)
	}
	if n := strings.Count(buf.String(), "\n"); n != 1 {
		t.Fatalf("%d lines for one request", n)
	}
}

func TestStatusClass(t *testing.T) {
	for code, want := range map[int]string{200: "2xx", 302: "3xx", 429: "4xx", 503: "5xx", 0: "other", 600: "other"} {
		if got := statusClass(code); got != want {
			t.Errorf("statusClass(%d) = %q, want %q", code, got, want)
		}
	}
}
