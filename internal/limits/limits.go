// Package limits rate-limits abuse-prone routes (login, sign-up, token,
// registration) per client IP, answering 429 with Retry-After, and keeps the
// failure budgets of password checks (failures.go): per account, per
// device, per source and per signed-in account, with a progressive delay.
// The request-rate limits count in each process (with several replicas the
// effective rate is per replica); the failure budgets are stored in the
// database (Failures), so that they hold across replicas.
package limits

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/httprate"

	"github.com/onecommons/commonsid/internal/httpx"
	"github.com/onecommons/commonsid/internal/metrics"
)

// Limits scales every limit; Off disables them (for load tests).
type Limits struct {
	// Scale multiplies every limit; 0 means off.
	Scale float64
	// Failures keeps the failure budgets; nil keeps them in this
	// process's memory.
	Failures FailureStore
	// Now is the clock of the failure budgets (nil: time.Now).
	Now func() time.Time
	// Page answers a browser whose requests are over a per-IP limit (the
	// 429 page); nil answers in plain text. JSON routes always answer
	// JSON.
	Page func(w http.ResponseWriter, r *http.Request, retryAfter time.Duration)

	memOnce   sync.Once
	mem       *MemoryFailures
	purgeMu   sync.Mutex
	lastPurge time.Time
}

// Off reports whether limiting is disabled.
func (l *Limits) Off() bool { return l == nil || l.Scale <= 0 }

func (l *Limits) n(base int) int {
	v := int(float64(base) * l.Scale)
	if v < 1 {
		v = 1
	}
	return v
}

func passthrough(next http.Handler) http.Handler { return next }

// keyByIP keys on the client's IP: the connection's, or the one a trusted
// proxy forwarded (httpx.TrustProxies).
func keyByIP(r *http.Request) (string, error) {
	return httprate.CanonicalizeIP(httpx.ClientIP(r)), nil
}

func (l *Limits) tooMany(json bool, window time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		route := "unmatched"
		if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
			route = rc.RoutePattern()
		}
		metrics.RateLimited("per_ip:" + route)
		if json {
			writeJSON429(w)
			return
		}
		if l.Page != nil {
			wait := window
			if s, err := strconv.Atoi(w.Header().Get("Retry-After")); err == nil && s > 0 {
				wait = time.Duration(s) * time.Second
			}
			l.Page(w, r, wait)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusTooManyRequests)
		w.Write([]byte("Too many attempts. Please wait a moment and try again.\n"))
	}
}

func writeJSON429(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusTooManyRequests)
	json.NewEncoder(w).Encode(map[string]string{"error": "slow_down", "error_description": "too many requests; retry after the number of seconds in Retry-After"})
}

// PerIP allows n requests per window from one IP.
func (l *Limits) PerIP(n int, window time.Duration, jsonErrors bool) func(http.Handler) http.Handler {
	if l.Off() {
		return passthrough
	}
	return httprate.LimitBy(l.n(n), window, keyByIP, httprate.WithLimitHandler(l.tooMany(jsonErrors, window)))
}
