package metrics

import "github.com/prometheus/client_golang/prometheus"

// purgedRows counts the expired rows the purge removed, by table. The
// table label takes the names of the tables the purge sweeps, a fixed set.
var purgedRows = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "commonsid_purged_rows_total",
	Help: "Expired rows removed by the purge (codes, tokens, challenges, sessions, pushed requests, DPoP proof ids, mailed links, failure counters), by table.",
}, []string{"table"})

// Purged counts n rows of table removed by the purge.
func Purged(table string, n int64) {
	if n > 0 {
		purgedRows.WithLabelValues(table).Add(float64(n))
	}
}
