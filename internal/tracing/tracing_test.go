package tracing_test

import (
	"context"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/onecommons/commonsid/internal/httpx"
	"github.com/onecommons/commonsid/internal/tracing"
	"github.com/onecommons/commonsid/internal/tracing/otlptest"
)

// TestEndpoint: which variable names the collector, how a base URL gets
// /v1/traces, "off", and refusals that name the variable.
func TestEndpoint(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		env        map[string]string
		want, from string
		err        string
	}{
		{env: nil},
		{env: map[string]string{"COMMONSID_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, want: "http://127.0.0.1:4318/v1/traces", from: "COMMONSID_OTLP_ENDPOINT"},
		{env: map[string]string{"COMMONSID_OTLP_ENDPOINT": "https://otel.example/base/"}, want: "https://otel.example/base/v1/traces", from: "COMMONSID_OTLP_ENDPOINT"},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, want: "http://collector:4318/v1/traces", from: "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://b:4318/custom"}, want: "http://b:4318/custom", from: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "COMMONSID_OTLP_ENDPOINT": "off"}, from: "COMMONSID_OTLP_ENDPOINT"},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_SDK_DISABLED": "true"}},
		{env: map[string]string{"COMMONSID_OTLP_ENDPOINT": "127.0.0.1:4318"}, err: "COMMONSID_OTLP_ENDPOINT"},
		{env: map[string]string{"COMMONSID_OTLP_ENDPOINT": "ftp://h/x"}, err: "COMMONSID_OTLP_ENDPOINT"},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://user:pw@h:4318"}, err: "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http:///v1/traces"}, err: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"},
		{env: map[string]string{"COMMONSID_OTLP_ENDPOINT": "http://h:4318?x=1"}, err: "COMMONSID_OTLP_ENDPOINT"},
	} {
		got, from, err := tracing.Endpoint(func(k string) string { return c.env[k] })
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%v: error %v, want one naming %s", c.env, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want || from != c.from {
			t.Errorf("%v: %q from %q (%v), want %q from %q", c.env, got, from, err, c.want, c.from)
		}
	}
}

// TestMiddlewareSpans: each request is one server span named after its
// route pattern (never the path), with method, route, status and request
// id; a 5xx is an error; a traceparent makes the span its child but
// cannot turn sampling off; Shutdown sends what is left.
func TestMiddlewareSpans(t *testing.T) {
	t.Parallel()
	rcv := otlptest.New(t)
	tr, err := tracing.New(tracing.Options{Endpoint: rcv.URL() + tracing.TracesPath, ServiceVersion: "v9", Instance: "https://id.example", BatchTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.Use(httpx.RequestID, tr.Middleware)
	r.Get("/users/{handle}", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hi")) })
	r.Post("/boom", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusInternalServerError) })
	srv := httptest.NewServer(r)
	defer srv.Close()

	do := func(method, path string, hdr map[string]string) {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	do("GET", "/users/alice-secret?code=abc", map[string]string{"X-Request-Id": "req-1"})
	do("POST", "/boom", nil)
	do("GET", "/nowhere", nil)
	parent := "0af7651916cd43dd8448eb211c80319c"
	// Flags 00: the caller asks not to sample; the span is kept anyway.
	do("GET", "/users/bob", map[string]string{"traceparent": "00-" + parent + "-b7ad6b7169203331-00"})
	if ok, _ := rcv.Requests(); ok != 0 {
		t.Fatalf("%d exports before the batch timeout or shutdown", ok)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	spans := rcv.Spans()
	if len(spans) != 4 {
		t.Fatalf("%d spans, want 4", len(spans))
	}
	first := spans[0]
	if first.GetName() != "GET /users/{handle}" || first.Attr("http.route") != "/users/{handle}" ||
		first.Attr("http.response.status_code") != "200" || first.Attr("http.request.method") != "GET" ||
		first.Attr("commonsid.request_id") != "req-1" || first.GetKind() != tracepb.Span_SPAN_KIND_SERVER {
		t.Fatalf("first span: %v", first.Span)
	}
	if first.Resource["service.name"] != "commonsid" || first.Resource["service.version"] != "v9" || first.Resource["service.instance.id"] != "https://id.example" {
		t.Fatalf("resource: %v", first.Resource)
	}
	for _, s := range spans {
		for _, kv := range s.GetAttributes() {
			if v := kv.GetValue().GetStringValue(); strings.Contains(v, "alice-secret") || strings.Contains(v, "code=abc") {
				t.Fatalf("span %q carries the path or query: %s=%s", s.GetName(), kv.GetKey(), v)
			}
		}
		if strings.Contains(s.GetName(), "alice") {
			t.Fatalf("span named after the path: %q", s.GetName())
		}
	}
	if boom := spans[1]; boom.GetName() != "POST /boom" || boom.Attr("http.response.status_code") != "500" || boom.GetStatus().GetCode() != tracepb.Status_STATUS_CODE_ERROR {
		t.Fatalf("5xx span: %v", boom.Span)
	}
	if spans[0].GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR {
		t.Fatal("a 200 marked as an error")
	}
	if un := spans[2]; un.GetName() != "GET unmatched" || un.Attr("http.response.status_code") != "404" {
		t.Fatalf("unmatched span: %v", un.Span)
	}
	child := spans[3]
	if hex.EncodeToString(child.GetTraceId()) != parent || hex.EncodeToString(child.GetParentSpanId()) != "b7ad6b7169203331" {
		t.Fatalf("child of the traceparent: trace %x parent %x", child.GetTraceId(), child.GetParentSpanId())
	}
	if hex.EncodeToString(first.GetTraceId()) == parent || len(first.GetParentSpanId()) != 0 {
		t.Fatal("a request without traceparent joined another trace")
	}
}

// TestCollectorDown: a collector that refuses or is gone does not hold
// requests, and Shutdown returns within its deadline.
func TestCollectorDown(t *testing.T) {
	t.Parallel()
	dead := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	url := dead.URL
	dead.Close()
	tr, err := tracing.New(tracing.Options{Endpoint: url + tracing.TracesPath, BatchTimeout: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	h := tr.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	start := time.Now()
	for range 200 {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("200 requests took %s with the collector down", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start = time.Now()
	tr.Shutdown(ctx)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("shutdown took %s", d)
	}
	var nilTracer *tracing.Tracer
	if err := nilTracer.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}
