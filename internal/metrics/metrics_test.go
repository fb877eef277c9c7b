package metrics

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// value is the value of the one metric c collects.
func value(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != 1 || len(mfs[0].GetMetric()) != 1 {
		t.Fatalf("%d families collected, want 1 with 1 metric", len(mfs))
	}
	m := mfs[0].GetMetric()[0]
	if m.GetCounter() != nil {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

// TestFederationLag: the lag is now minus the latest event time applied
// from the peer, computed at scrape time; an older batch does not move it
// back; a clock behind the event gives 0, not a negative lag.
func TestFederationLag(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c := &lagCollector{desc: fedLag.desc, last: map[string]time.Time{}, now: func() time.Time { return now }}
	saved := fedLag
	fedLag = c
	defer func() { fedLag = saved }()
	peer := "https://peer.example"
	before := value(t, fedApplied.WithLabelValues(peer))
	FederationApplied(peer, 3, now.Add(-90*time.Second))
	FederationApplied(peer, 1, now.Add(-200*time.Second)) // older: the lag stays
	if got := value(t, fedApplied.WithLabelValues(peer)); got != before+4 {
		t.Fatalf("applied: %v → %v", before, got)
	}
	if got := value(t, c); got != 90 {
		t.Fatalf("lag %v, want 90", got)
	}
	now = now.Add(10 * time.Second)
	if got := value(t, c); got != 100 {
		t.Fatalf("lag %v after 10 s, want 100", got)
	}
	FederationApplied(peer, 1, now.Add(time.Minute))
	if got := value(t, c); got != 0 {
		t.Fatalf("lag %v for an event ahead of the clock, want 0", got)
	}
	FederationStream(peer, true)
	if got := value(t, fedConnected.WithLabelValues(peer)); got != 1 {
		t.Fatalf("connected %v", got)
	}
	FederationStream(peer, false)
	if got := value(t, fedConnected.WithLabelValues(peer)); got != 0 {
		t.Fatalf("disconnected %v", got)
	}
	// Every family registers on a fresh registry, more than once.
	for i := 0; i < 2; i++ {
		reg := prometheus.NewRegistry()
		reg.MustRegister(Collectors()...)
	}
}

func TestTokenIssuedKind(t *testing.T) {
	pub := value(t, tokensIssued.WithLabelValues("authorization_code", "public"))
	TokenIssued("authorization_code", true)
	if got := value(t, tokensIssued.WithLabelValues("authorization_code", "public")); got != pub+1 {
		t.Fatalf("public: %v → %v", pub, got)
	}
}
