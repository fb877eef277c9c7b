package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// purgedValue reads commonsid_purged_rows_total{table} through a registry
// of Collectors, as /metrics would (-1 when the family is missing).
func purgedValue(t *testing.T, table string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(Collectors()...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "commonsid_purged_rows_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "table" && l.GetValue() == table {
					return m.GetCounter().GetValue()
				}
			}
		}
		return 0
	}
	return -1
}

// TestPurged: rows removed are added per table, nothing for zero, and the
// family is served with the other collectors.
func TestPurged(t *testing.T) {
	Purged("dpop_jtis", 1) // the family has a series, so it is gathered
	before := purgedValue(t, "oauth_requests")
	if before < 0 {
		t.Fatal("commonsid_purged_rows_total is not among Collectors")
	}
	Purged("oauth_requests", 1000)
	Purged("oauth_requests", 1)
	Purged("oauth_requests", 0)
	if got := purgedValue(t, "oauth_requests") - before; got != 1001 {
		t.Fatalf("commonsid_purged_rows_total{table=oauth_requests} moved by %v, want 1001", got)
	}
}
