package server

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/onecommons/commonsid/keys"
)

// routeOf is the chi route pattern that served r ("unmatched" when none
// did): a bounded label, unlike the path.
func routeOf(r *http.Request) string {
	if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
		return rc.RoutePattern()
	}
	return "unmatched"
}

// statusClass is "2xx", "4xx", … for an HTTP status.
func statusClass(code int) string {
	if code < 100 || code > 599 {
		return "other"
	}
	return strconv.Itoa(code/100) + "xx"
}

// keyAgeCollector reports the age of the active signing key of each
// algorithm (commonsid_signing_key_age_seconds), read at scrape time.
type keyAgeCollector struct {
	km   *keys.Manager
	desc *prometheus.Desc
}

func newKeyAgeCollector(km *keys.Manager) *keyAgeCollector {
	return &keyAgeCollector{km: km, desc: prometheus.NewDesc("commonsid_signing_key_age_seconds",
		"Seconds since the active signing key of the algorithm was created.", []string{"alg"}, nil)}
}

func (c *keyAgeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *keyAgeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ks, err := c.km.List(ctx)
	if err != nil {
		return // the database is down: /readyz says so, the scrape goes on
	}
	now := time.Now()
	for _, k := range ks {
		if k.Status == keys.StatusActive {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, now.Sub(k.CreatedAt).Seconds(), k.Alg)
		}
	}
}
