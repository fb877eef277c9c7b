// Package server assembles the cloud's HTTP surface: operational endpoints
// (/healthz, /readyz, /metrics), the cloud's did:web document, and the
// protocol and page handlers of the other packages.
package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/onecommons/commonsid/did"
	"github.com/onecommons/commonsid/internal/httpx"
	appmetrics "github.com/onecommons/commonsid/internal/metrics"
	"github.com/onecommons/commonsid/keys"
)

// Pinger reports whether the database answers.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Mounter is a handler area that adds its routes to a router.
type Mounter interface {
	Mount(r chi.Router)
}

// Server holds what the HTTP surface needs.
type Server struct {
	Issuer string
	DB     Pinger
	Keys   *keys.Manager
	Log    *slog.Logger
	Areas  []Mounter
	// Collectors are further metrics served on /metrics.
	Collectors []prometheus.Collector
	// TrustedProxies are the reverse proxies whose forwarding headers
	// name the client (httpx.TrustProxies); nil trusts none.
	TrustedProxies []netip.Prefix
	// Registry holds the metrics; nil: Handler makes one and sets it here,
	// so that another listener (the admin API) can serve the same.
	Registry *prometheus.Registry
	// NoPublicMetrics leaves /metrics out of this handler (the default
	// of serve, unless COMMONSID_PUBLIC_METRICS=on: only the admin
	// listener serves it).
	NoPublicMetrics bool
	// Trace, when set, makes a span of every request (internal/tracing);
	// nil when tracing is off.
	Trace func(http.Handler) http.Handler
}

// Handler builds the router.
func (s *Server) Handler() (http.Handler, error) {
	cloudDID, err := did.WebDID(s.Issuer)
	if err != nil {
		return nil, err
	}
	docPath, err := did.WebDocumentPath(s.Issuer)
	if err != nil {
		return nil, err
	}
	reg := s.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		s.Registry = reg
	}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := newMetrics(reg)
	reg.MustRegister(s.Collectors...)
	reg.MustRegister(appmetrics.Collectors()...)
	if s.Keys != nil {
		reg.MustRegister(newKeyAgeCollector(s.Keys))
	}

	r := chi.NewRouter()
	r.Use(httpx.TrustProxies(s.TrustedProxies), httpx.RequestID)
	if s.Trace != nil {
		r.Use(s.Trace)
	}
	r.Use(s.logRequests, m.middleware, middleware.Recoverer)
	if strings.HasPrefix(s.Issuer, "https://") {
		r.Use(hsts)
	}
	r.Use(httpx.Bound(limitFor))
	r.Get("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	r.Get("/readyz", s.ready)
	if !s.NoPublicMetrics {
		r.Handle("/metrics", MetricsHandler(reg))
	}
	r.Get(docPath, s.didDocument(cloudDID))
	for _, a := range s.Areas {
		a.Mount(r)
	}
	return r, nil
}

// MetricsHandler serves the metrics of reg in the Prometheus formats.
func MetricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := s.DB.Ping(r.Context()); err != nil {
		s.Log.WarnContext(r.Context(), "not ready", "err", err)
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte("database unreachable\n"))
		return
	}
	w.Write([]byte("ready\n"))
}

// didDocument serves the cloud's did:web document: every published signing
// key (active and rotated-out, not retired) as a JsonWebKey2020 method.
func (s *Server) didDocument(cloudDID string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		doc, err := CloudDocument(r.Context(), cloudDID, s.Keys)
		if err != nil {
			s.Log.ErrorContext(r.Context(), "did document", "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/did+json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		w.Header().Set("Access-Control-Allow-Origin", "*")
		json.NewEncoder(w).Encode(doc)
	}
}

// CloudDocument builds the did:web document of the cloud.
func CloudDocument(ctx context.Context, cloudDID string, km *keys.Manager) (*did.Document, error) {
	pub, err := km.Published(ctx)
	if err != nil {
		return nil, err
	}
	doc := &did.Document{Context: []string{did.ContextV1, did.ContextJWS2020}, ID: cloudDID, VerificationMethod: []did.VerificationMethod{}}
	for i := range pub {
		id := cloudDID + "#" + pub[i].KeyID
		doc.VerificationMethod = append(doc.VerificationMethod, did.VerificationMethod{
			ID: id, Type: "JsonWebKey2020", Controller: cloudDID, PublicKeyJWK: &pub[i],
		})
		doc.AssertionMethod = append(doc.AssertionMethod, id)
		doc.Authentication = append(doc.Authentication, id)
	}
	return doc, nil
}

func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		level := slog.LevelInfo
		if ww.Status() >= 500 {
			level = slog.LevelError
		}
		if s.Log.Enabled(r.Context(), level) {
			// The route pattern, never the path or the query: they can
			// carry handles, codes and tokens.
			s.Log.Log(r.Context(), level, "request", "method", r.Method, "route", routeOf(r),
				"status", ww.Status(), "duration", time.Since(start), "request_id", middleware.GetReqID(r.Context()))
		}
	})
}

type metrics struct {
	inFlight prometheus.Gauge
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "commonsid_http_requests_in_flight", Help: "HTTP requests being served now.",
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "commonsid_http_requests_total", Help: "HTTP requests by route, method and status.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "commonsid_http_request_duration_seconds", Help: "HTTP request latency by route pattern, method and status class (2xx, 4xx, 5xx).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route", "method", "status"}),
	}
	reg.MustRegister(m.inFlight, m.requests, m.duration)
	return m
}

func (m *metrics) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		m.inFlight.Inc()
		defer m.inFlight.Dec()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		route := routeOf(r)
		m.requests.WithLabelValues(route, r.Method, strconv.Itoa(ww.Status())).Inc()
		m.duration.WithLabelValues(route, r.Method, statusClass(ww.Status())).Observe(time.Since(start).Seconds())
	})
}
