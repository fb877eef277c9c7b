package safehttp

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestRefusalCounter: each refusal is counted under its reason, and the
// collector exposes commonsid_outbound_refused_total{reason} with every
// reason, refused or not.
func TestRefusalCounter(t *testing.T) {
	ctx := context.Background()
	// A loopback server that redirects to another origin.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, strings.Replace("http://"+r.Host+"/x", "127.0.0.1", "localhost", 1), http.StatusFound)
	}))
	defer srv.Close()
	guarded := New(Options{})
	loop := New(Options{AllowLoopback: true})
	for _, tc := range []struct {
		c   *Client
		url string
	}{
		{guarded, "http://example.org/"},      // scheme
		{guarded, "ftp://example.org/"},       // scheme
		{guarded, "https://127.0.0.1:1/"},     // address
		{guarded, "https://10.1.2.3:1/"},      // address
		{guarded, "https://169.254.169.254/"}, // address
		{guarded, "https://u:p@example.org/"}, // url
		{loop, srv.URL + "/"},                 // redirect
	} {
		if _, err := tc.c.Get(ctx, tc.url, "", 0); err == nil {
			t.Fatalf("%s fetched", tc.url)
		}
	}
	want := map[string]int64{"scheme": 2, "address": 3, "url": 1, "redirect": 0}
	got := guarded.RefusedByReason()
	for r, n := range want {
		if got[r] != n {
			t.Errorf("%s: %d refusals, want %d (all: %v)", r, got[r], n, got)
		}
	}
	if n := loop.RefusedByReason()["redirect"]; n != 1 {
		t.Errorf("redirect refusals %d, want 1", n)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(guarded.Collector())
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 || mfs[0].GetName() != "commonsid_outbound_refused_total" {
		t.Fatalf("gathered %v, %v", mfs, err)
	}
	seen := map[string]float64{}
	for _, m := range mfs[0].GetMetric() {
		if len(m.GetLabel()) != 1 || m.GetLabel()[0].GetName() != "reason" {
			t.Fatalf("labels %v", m.GetLabel())
		}
		seen[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
	}
	for r, n := range want {
		if v, ok := seen[r]; !ok || v != float64(n) {
			t.Errorf("metric reason=%s: %v (present %v), want %d", r, v, ok, n)
		}
	}
}
