package safehttp

import "github.com/prometheus/client_golang/prometheus"

// reason is why the policy refused a request, a label of the refusal
// counter. The set is fixed: nothing from outside becomes a label.
type reason int

const (
	reasonAddress  reason = iota // an address the policy refuses (internal, link-local, …), at lookup or connect
	reasonScheme                 // not https (plain http only to loopback when allowed)
	reasonRedirect               // a redirect to another origin, or too many
	reasonURL                    // a malformed URL, user info, no host
	numReasons
)

var reasonNames = [numReasons]string{"address", "scheme", "redirect", "url"}

// RefusedByReason returns how many requests the policy has refused so far,
// by reason: address, scheme, redirect, url.
func (c *Client) RefusedByReason() map[string]int64 {
	out := make(map[string]int64, numReasons)
	for i, n := range reasonNames {
		out[n] = c.byReason[i].Load()
	}
	return out
}

var refusedDesc = prometheus.NewDesc("commonsid_outbound_refused_total",
	"Outbound requests refused by the address policy, by reason (address, scheme, redirect, url).", []string{"reason"}, nil)

// Collector exposes the client's refusals as the Prometheus counter
// commonsid_outbound_refused_total{reason}.
func (c *Client) Collector() prometheus.Collector { return collector{c} }

type collector struct{ c *Client }

func (m collector) Describe(ch chan<- *prometheus.Desc) { ch <- refusedDesc }

func (m collector) Collect(ch chan<- prometheus.Metric) {
	for i, n := range reasonNames {
		ch <- prometheus.MustNewConstMetric(refusedDesc, prometheus.CounterValue, float64(m.c.byReason[i].Load()), n)
	}
}
