package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/onecommons/commonsid/internal/tracing"
)

// tracingFlags registers --otlp-endpoint (serveFlags). The standard
// OTEL_EXPORTER_OTLP_ENDPOINT and OTEL_EXPORTER_OTLP_TRACES_ENDPOINT are
// read when it is not set (package tracing).
func (c *Config) tracingFlags(fs *flag.FlagSet, env func(string) string) {
	c.stringVar(fs, env, &c.OTLPEndpoint, "otlp-endpoint", "COMMONSID_OTLP_ENDPOINT", "",
		"OpenTelemetry collector (OTLP/HTTP) to send request traces to, such as http://127.0.0.1:4318, or off (default: OTEL_EXPORTER_OTLP_ENDPOINT, else no tracing)")
	c.tracingEnv = env
}

// tracesEndpoint is the traces URL of the configuration ("" when off),
// the flag's value standing for COMMONSID_OTLP_ENDPOINT.
func (c *Config) tracesEndpoint() (string, error) {
	env := c.tracingEnv
	if env == nil {
		env = func(string) string { return "" }
	}
	u, _, err := tracing.Endpoint(func(k string) string {
		if k == "COMMONSID_OTLP_ENDPOINT" {
			return c.OTLPEndpoint
		}
		return env(k)
	})
	if err != nil && c.flagsGiven["otlp-endpoint"] && strings.HasPrefix(err.Error(), "COMMONSID_OTLP_ENDPOINT=") {
		// The flag, not the variable, gave the value.
		return "", errors.New("--otlp-endpoint" + strings.TrimPrefix(err.Error(), "COMMONSID_OTLP_ENDPOINT"))
	}
	return u, err
}

// validateTracing checks the collector's URL (Validate, when serving).
func (c *Config) validateTracing() []error {
	if _, err := c.tracesEndpoint(); err != nil {
		return []error{err}
	}
	return nil
}

// startTracing builds the cloud's tracer when a collector is configured;
// nil (no middleware, no exporter) when not.
func startTracing(cfg *Config, log *slog.Logger) (*tracing.Tracer, error) {
	u, err := cfg.tracesEndpoint()
	if err != nil || u == "" {
		return nil, err
	}
	ver := version
	if bi, ok := debug.ReadBuildInfo(); ok {
		ver = buildVersion(bi, version).Version
	}
	t, err := tracing.New(tracing.Options{Endpoint: u, ServiceVersion: ver, Instance: cfg.Issuer, Log: log})
	if err != nil {
		return nil, err
	}
	log.Info("tracing", "otlp_endpoint", u)
	return t, nil
}

// stopTracing sends the spans not yet sent (5 s at most).
func stopTracing(t *tracing.Tracer, log *slog.Logger) {
	if t == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := t.Shutdown(ctx); err != nil {
		log.Warn("tracing: spans left unsent at exit", "err", err)
	}
}

// traceMiddleware is the tracer's middleware, nil when tracing is off.
func traceMiddleware(t *tracing.Tracer) func(http.Handler) http.Handler {
	if t == nil {
		return nil
	}
	return t.Middleware
}
