package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// TracesPath is what a base endpoint (COMMONSID_OTLP_ENDPOINT,
// OTEL_EXPORTER_OTLP_ENDPOINT) is followed by, as OTLP/HTTP specifies.
const TracesPath = "/v1/traces"

// Endpoint finds the traces endpoint in the configuration env reads:
// COMMONSID_OTLP_ENDPOINT (a base URL; "off" turns tracing off whatever
// the OTEL_* variables say), else OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (the
// full URL), else OTEL_EXPORTER_OTLP_ENDPOINT (a base URL). It returns the
// full URL of the traces endpoint ("" when tracing is off) and the variable
// it came from; an unusable URL is an error that names the variable.
// OTEL_SDK_DISABLED=true turns the OTEL_* variables off.
func Endpoint(env func(string) string) (endpoint, from string, err error) {
	if v := strings.TrimSpace(env("COMMONSID_OTLP_ENDPOINT")); v != "" {
		if strings.EqualFold(v, "off") {
			return "", "COMMONSID_OTLP_ENDPOINT", nil
		}
		u, err := checkURL("COMMONSID_OTLP_ENDPOINT", v)
		if err != nil {
			return "", "COMMONSID_OTLP_ENDPOINT", err
		}
		return withTracesPath(u), "COMMONSID_OTLP_ENDPOINT", nil
	}
	if strings.EqualFold(strings.TrimSpace(env("OTEL_SDK_DISABLED")), "true") {
		return "", "", nil
	}
	if v := strings.TrimSpace(env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")); v != "" {
		u, err := checkURL("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", v)
		if err != nil {
			return "", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", err
		}
		if u.Path == "" {
			u.Path = "/"
		}
		return u.String(), "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", nil
	}
	if v := strings.TrimSpace(env("OTEL_EXPORTER_OTLP_ENDPOINT")); v != "" {
		u, err := checkURL("OTEL_EXPORTER_OTLP_ENDPOINT", v)
		if err != nil {
			return "", "OTEL_EXPORTER_OTLP_ENDPOINT", err
		}
		return withTracesPath(u), "OTEL_EXPORTER_OTLP_ENDPOINT", nil
	}
	return "", "", nil
}

func checkURL(name, v string) (*url.URL, error) {
	u, err := url.Parse(v)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%s=%q: not a URL", name, v)
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("%s=%q: use an http:// or https:// URL of the collector, such as http://127.0.0.1:4318", name, v)
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("%s=%q: the URL names no host", name, v)
	case u.User != nil:
		return nil, fmt.Errorf("%s=%q: put credentials in OTEL_EXPORTER_OTLP_HEADERS, not in the URL", name, v)
	case u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("%s=%q: the URL may not have a query or fragment", name, v)
	}
	return u, nil
}

func withTracesPath(u *url.URL) string {
	u.Path = strings.TrimSuffix(u.Path, "/") + TracesPath
	return u.String()
}

// Options configure New.
type Options struct {
	// Endpoint is the full URL of the collector's traces endpoint
	// (Endpoint's answer).
	Endpoint string
	// ServiceName and ServiceVersion name the program in the resource
	// (service.name, service.version); Instance is service.instance.id
	// (the cloud's issuer).
	ServiceName, ServiceVersion, Instance string
	// Log receives export failures (at most one line a minute).
	Log *slog.Logger
	// BatchTimeout is how long spans wait to be sent together (0: 5 s).
	BatchTimeout time.Duration
}

// Tracer makes the spans of one cloud and sends them to its collector.
type Tracer struct {
	tp     *sdktrace.TracerProvider
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
}

// New builds the exporter and the provider. It does not contact the
// collector: a collector that is down only means failed exports, logged.
func New(o Options) (*Tracer, error) {
	if o.Endpoint == "" {
		return nil, errors.New("tracing: no endpoint")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	exp, err := otlptracehttp.New(context.Background(),
		otlptracehttp.WithEndpointURL(o.Endpoint),
		otlptracehttp.WithCompression(otlptracehttp.GzipCompression),
		otlptracehttp.WithTimeout(10*time.Second),
		otlptracehttp.WithHTTPClient(&http.Client{Timeout: 15 * time.Second}),
	)
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	if o.ServiceName == "" {
		o.ServiceName = "commonsid"
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", o.ServiceName)}
	if o.ServiceVersion != "" {
		attrs = append(attrs, attribute.String("service.version", o.ServiceVersion))
	}
	if o.Instance != "" {
		attrs = append(attrs, attribute.String("service.instance.id", o.Instance))
	}
	bt := o.BatchTimeout
	if bt <= 0 {
		bt = 5 * time.Second
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(&loggingExporter{SpanExporter: exp, log: o.Log},
			sdktrace.WithBatchTimeout(bt), sdktrace.WithMaxQueueSize(4096), sdktrace.WithMaxExportBatchSize(512)),
		sdktrace.WithResource(resource.NewSchemaless(attrs...)),
		// Every request is traced, whatever a traceparent it came with
		// asks: a client cannot take its requests out of the traces.
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
	)
	return &Tracer{tp: tp, tracer: tp.Tracer("github.com/onecommons/commonsid/server"), prop: propagation.TraceContext{}}, nil
}

// Shutdown sends the spans not yet sent, within ctx, and stops the
// exporter. A nil Tracer has nothing to do.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.tp.Shutdown(ctx)
}

// Middleware makes a server span of every request. Mounted before the
// router, it names the span after the route pattern once the router has
// served the request.
func (t *Tracer) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := t.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := t.tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", r.Method)))
		defer span.End()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r.WithContext(ctx))
		route := "unmatched"
		if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
			route = rc.RoutePattern()
		}
		status := ww.Status()
		if status == 0 {
			status = http.StatusOK
		}
		span.SetName(r.Method + " " + route)
		span.SetAttributes(attribute.String("http.route", route), attribute.Int("http.response.status_code", status))
		if id := middleware.GetReqID(r.Context()); id != "" {
			span.SetAttributes(attribute.String("commonsid.request_id", id))
		}
		if status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(status))
		}
	})
}

// loggingExporter logs failed exports itself (one line a minute at most)
// and reports none to the SDK, whose handler is process-wide.
type loggingExporter struct {
	sdktrace.SpanExporter
	log    *slog.Logger
	mu     sync.Mutex
	last   time.Time
	failed int
}

func (e *loggingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.SpanExporter.ExportSpans(ctx, spans)
	if err == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.failed += len(spans)
	if time.Since(e.last) >= time.Minute {
		e.log.Warn("tracing: spans not sent to the collector", "spans", e.failed, "err", err)
		e.last, e.failed = time.Now(), 0
	}
	return nil
}
