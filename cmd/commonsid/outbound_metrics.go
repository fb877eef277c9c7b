package main

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
)

// outboundCollectors are the metrics of the guarded outbound client:
// commonsid_outbound_refused_total{reason}.
func (c *Config) outboundCollectors(log *slog.Logger) []prometheus.Collector {
	return []prometheus.Collector{c.Outbound(log).Collector()}
}
