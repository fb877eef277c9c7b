// Package otlptest is an OTLP/HTTP traces receiver for tests: a real HTTP
// server on 127.0.0.1 that accepts POST /v1/traces in protobuf (gzip or
// not), decodes each request with the OTLP protobuf definitions and keeps
// the spans.
package otlptest

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// maxBody bounds what one export may send.
const maxBody = 8 << 20

// Span is one received span with its resource's attributes.
type Span struct {
	*tracepb.Span
	Resource map[string]string
}

// Attr is the span's attribute k as a string ("" when absent); integers
// are formatted in decimal.
func (s Span) Attr(k string) string { return attrOf(s.GetAttributes(), k) }

// Receiver collects the spans exported to it.
type Receiver struct {
	srv      *httptest.Server
	mu       sync.Mutex
	spans    []Span
	requests int
	bad      int
}

// New starts a receiver, closed when the test ends.
func New(t testing.TB) *Receiver {
	rc := &Receiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

// URL is the receiver's base URL (without /v1/traces).
func (rc *Receiver) URL() string { return rc.srv.URL }

func (rc *Receiver) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
		http.NotFound(w, r)
		return
	}
	var body io.Reader = http.MaxBytesReader(w, r.Body, maxBody)
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(body)
		if err != nil {
			rc.refuse(w)
			return
		}
		body = io.LimitReader(zr, maxBody)
	}
	raw, err := io.ReadAll(body)
	var req collectortrace.ExportTraceServiceRequest
	if err != nil || r.Header.Get("Content-Type") != "application/x-protobuf" || proto.Unmarshal(raw, &req) != nil {
		rc.refuse(w)
		return
	}
	rc.mu.Lock()
	rc.requests++
	for _, rs := range req.GetResourceSpans() {
		res := map[string]string{}
		for _, kv := range rs.GetResource().GetAttributes() {
			res[kv.GetKey()] = attrOf(rs.GetResource().GetAttributes(), kv.GetKey())
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				rc.spans = append(rc.spans, Span{Span: sp, Resource: res})
			}
		}
	}
	rc.mu.Unlock()
	out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}

func (rc *Receiver) refuse(w http.ResponseWriter) {
	rc.mu.Lock()
	rc.bad++
	rc.mu.Unlock()
	http.Error(w, "bad export", http.StatusBadRequest)
}

// Spans are the spans received so far.
func (rc *Receiver) Spans() []Span {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]Span(nil), rc.spans...)
}

// Requests is how many exports were accepted, and Bad how many refused.
func (rc *Receiver) Requests() (ok, bad int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.requests, rc.bad
}

// Wait returns the first span match accepts, failing the test after limit.
func (rc *Receiver) Wait(t testing.TB, limit time.Duration, match func(Span) bool) Span {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		for _, s := range rc.Spans() {
			if match(s) {
				return s
			}
		}
		if time.Now().After(deadline) {
			var names []string
			for _, s := range rc.Spans() {
				names = append(names, s.GetName())
			}
			t.Fatalf("no matching span within %s; received %q", limit, names)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func attrOf(kvs []*commonpb.KeyValue, k string) string {
	for _, kv := range kvs {
		if kv.GetKey() != k {
			continue
		}
		switch v := kv.GetValue().GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			return v.StringValue
		case *commonpb.AnyValue_IntValue:
			return strconv.FormatInt(v.IntValue, 10)
		}
	}
	return ""
}
