// Package metrics holds the Prometheus metric families that the protocol
// packages count into: tokens issued, sign-ins, rate-limit refusals, mail
// and federation. They are process-wide; server.Server registers them
// (Collectors) on the registry that /metrics serves on the public and the
// admin listener. Every label takes values from a small fixed set (a
// grant type, a method, a route pattern, a peer issuer), never from what a
// request names freely.
package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Sign-in methods (label "method" of commonsid_signins_total).
const (
	MethodPassword  = "password"
	MethodPasskey   = "passkey"
	MethodFederated = "federated"
)

// Sign-in outcomes (label "outcome" of commonsid_signins_total).
const (
	OutcomeSuccess              = "success"
	OutcomeBadCredentials       = "bad_credentials"
	OutcomeLimited              = "limited"
	OutcomeSecondFactorRequired = "second_factor_required"
)

var (
	tokensIssued = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "commonsid_tokens_issued_total",
		Help: "Token responses issued by the token endpoint, by grant type and client kind (confidential or public).",
	}, []string{"grant_type", "client_kind"})
	signIns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "commonsid_signins_total",
		Help: "Sign-in attempts by method (password, passkey, federated) and outcome.",
	}, []string{"method", "outcome"})
	rateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "commonsid_rate_limited_total",
		Help: "Requests refused by a limit: per_ip:<route> for the per-IP request rates, failures:<budget> for the failure budgets of password checks.",
	}, []string{"limit"})
	mailSent = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "commonsid_mail_sent_total", Help: "Messages handed to the mail server (or written to the outbox), by template kind.",
	}, []string{"kind"})
	mailFailed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "commonsid_mail_failed_total", Help: "Messages that could not be sent, by template kind.",
	}, []string{"kind"})
	fedApplied = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "commonsid_federation_events_applied_total", Help: "Events of a peer's feed applied here, by peer issuer.",
	}, []string{"peer"})
	fedRejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "commonsid_federation_events_rejected_total", Help: "Events of a peer's feed rejected (did not verify or could not be applied), by peer issuer.",
	}, []string{"peer"})
	fedQuarantined = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "commonsid_federation_events_quarantined_total", Help: "Events of a peer's feed put in quarantine (rejected, or held behind a rejected event of the same account), by peer issuer.",
	}, []string{"peer"})
	fedConnected = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "commonsid_federation_stream_connected", Help: "1 while the event stream from the peer is open, else 0.",
	}, []string{"peer"})
	fedLag = &lagCollector{
		desc: prometheus.NewDesc("commonsid_federation_lag_seconds",
			"Seconds since the time of the last event applied from the peer's feed (now minus that event's time).", []string{"peer"}, nil),
		last: map[string]time.Time{},
	}
)

// Collectors are the families of this package, to register on a registry.
// The same collectors may be registered on several registries.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{tokensIssued, signIns, rateLimited, mailSent, mailFailed,
		fedApplied, fedRejected, fedQuarantined, fedConnected, fedLag, purgedRows}
}

// TokenIssued counts a token response; public tells the client kind.
func TokenIssued(grantType string, public bool) {
	kind := "confidential"
	if public {
		kind = "public"
	}
	tokensIssued.WithLabelValues(grantType, kind).Inc()
}

// SignIn counts a sign-in attempt (Method* and Outcome* constants).
func SignIn(method, outcome string) { signIns.WithLabelValues(method, outcome).Inc() }

// RateLimited counts a request refused by the limit named name.
func RateLimited(name string) { rateLimited.WithLabelValues(name).Inc() }

// MailSent counts a message of kind sent; MailFailed one that failed.
func MailSent(kind string)   { mailSent.WithLabelValues(kind).Inc() }
func MailFailed(kind string) { mailFailed.WithLabelValues(kind).Inc() }

// FederationApplied counts n events applied from peer, the last of which
// happened at last (the event's own time).
func FederationApplied(peer string, n int, last time.Time) {
	fedApplied.WithLabelValues(peer).Add(float64(n))
	fedLag.mu.Lock()
	if last.After(fedLag.last[peer]) {
		fedLag.last[peer] = last
	}
	fedLag.mu.Unlock()
}

// FederationRejected counts an event of peer rejected.
func FederationRejected(peer string) { fedRejected.WithLabelValues(peer).Inc() }

// FederationQuarantined counts an event of peer put in quarantine.
func FederationQuarantined(peer string) { fedQuarantined.WithLabelValues(peer).Inc() }

// FederationStream records whether the stream from peer is open.
func FederationStream(peer string, connected bool) {
	v := 0.0
	if connected {
		v = 1
	}
	fedConnected.WithLabelValues(peer).Set(v)
}

// lagCollector computes the lag at scrape time, so that it grows while
// nothing arrives.
type lagCollector struct {
	desc *prometheus.Desc
	mu   sync.Mutex
	last map[string]time.Time
	now  func() time.Time
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	if c.now != nil {
		now = c.now()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for peer, at := range c.last {
		lag := now.Sub(at).Seconds()
		if lag < 0 {
			lag = 0
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, lag, peer)
	}
}
