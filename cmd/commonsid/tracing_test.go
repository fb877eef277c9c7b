package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/onecommons/commonsid/internal/tracing/otlptest"
)

// TestTracingSignIn: with COMMONSID_OTLP_ENDPOINT naming an OTLP/HTTP
// receiver, a complete sign-in is exported as server spans named after
// their routes (GET /authorize, POST /login, POST /token) with status and
// request id, and none carries the handle, the password or the code.
func TestTracingSignIn(t *testing.T) {
	t.Parallel()
	rcv := otlptest.New(t)
	e := sqliteEnv(t)
	e["COMMONSID_OTLP_ENDPOINT"] = rcv.URL()
	c := startCloud(t, e)
	l := c.live()
	e.must(t, "correct horse battery\n", "user", "create", "--username", "tracey", "--password-stdin")
	app := newRP(t, l, "traced", nil)
	b := newBrowser(t)
	verifier := oauth2.GenerateVerifier()
	p := b.authorize(app.conf.AuthCodeURL(randString(16), oauth2.S256ChallengeOption(verifier), oidc.Nonce(randString(16))),
		"tracey", "correct horse battery", nil)
	code := p.url.Query().Get("code")
	if code == "" {
		t.Fatalf("no code: %d %s", p.status, p.url)
	}
	if _, err := app.conf.Exchange(t.Context(), code, oauth2.VerifierOption(verifier)); err != nil {
		t.Fatal(err)
	}
	// A request id given by a proxy is the span's.
	req, _ := http.NewRequest("GET", c.base+"/healthz", nil)
	req.Header.Set("X-Request-Id", "trace-me-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	c.stop() // sends the spans left
	spans := rcv.Spans()
	byName := map[string]otlptest.Span{}
	for _, s := range spans {
		byName[s.GetName()] = s
		for _, kv := range s.GetAttributes() {
			v := kv.GetValue().GetStringValue()
			if strings.Contains(v, "tracey") || strings.Contains(v, "correct horse") || strings.Contains(v, code) {
				t.Fatalf("span %q carries request data: %s=%q", s.GetName(), kv.GetKey(), v)
			}
		}
	}
	for _, want := range []string{"GET /authorize", "POST /login", "POST /token"} {
		if _, ok := byName[want]; !ok {
			names := make([]string, 0, len(byName))
			for n := range byName {
				names = append(names, n)
			}
			t.Fatalf("no span %q; spans: %q", want, names)
		}
	}
	login := byName["POST /login"]
	if login.Attr("http.route") != "/login" || login.Attr("http.response.status_code") != "303" {
		t.Fatalf("login span: route %q status %q", login.Attr("http.route"), login.Attr("http.response.status_code"))
	}
	if h := byName["GET /healthz"]; h.Attr("commonsid.request_id") != "trace-me-1" || h.Attr("http.response.status_code") != "200" {
		t.Fatalf("healthz span: request id %q status %q", h.Attr("commonsid.request_id"), h.Attr("http.response.status_code"))
	}
	if login.Attr("commonsid.request_id") == "" {
		t.Fatal("login span has no request id")
	}
	if tok := byName["POST /token"]; tok.Attr("http.response.status_code") != "200" {
		t.Fatalf("token span status %q", tok.Attr("http.response.status_code"))
	}
	if login.Resource["service.name"] != "commonsid" || login.Resource["service.instance.id"] != c.base {
		t.Fatalf("resource: %v", login.Resource)
	}
}

// TestTracingConfig: a collector URL that is not one stops serve with the
// variable's (or the flag's) name; off by default, and "off" wins over the
// standard variable.
func TestTracingConfig(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{env: map[string]string{"COMMONSID_OTLP_ENDPOINT": "127.0.0.1:4318"}, want: "COMMONSID_OTLP_ENDPOINT"},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "ftp://collector"}, want: "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{args: []string{"--otlp-endpoint", "collector:4318"}, want: "--otlp-endpoint"},
	} {
		e := sqliteEnv(t)
		for k, v := range c.env {
			e[k] = v
		}
		r := e.run(t, "", append([]string{"serve"}, c.args...)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v %v: exit %d, %s (want a usage error naming %s)", c.env, c.args, r.code, r.stderr, c.want)
		}
	}
	var cfg Config
	cfg.tracingEnv = env{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}.get
	if u, err := cfg.tracesEndpoint(); err != nil || u != "http://127.0.0.1:4318/v1/traces" {
		t.Fatalf("from OTEL_EXPORTER_OTLP_ENDPOINT: %q %v", u, err)
	}
	cfg.OTLPEndpoint = "off"
	if u, err := cfg.tracesEndpoint(); err != nil || u != "" {
		t.Fatalf("off: %q %v", u, err)
	}
	if tr, err := startTracing(&Config{}, nil); tr != nil || err != nil || traceMiddleware(tr) != nil {
		t.Fatalf("tracing without configuration: %v %v", tr, err)
	}
}
