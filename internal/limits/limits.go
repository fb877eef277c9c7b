// Package limits rate-limits abuse-prone routes (login, sign-up, token,
// registration) per client IP and per account, answering 429 with
// Retry-After. Counters live in each process: with several replicas the
// effective limit is per replica.
package limits

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-chi/httprate"
)

// Limits scales every limit; Off disables them (for load tests).
type Limits struct {
	// Scale multiplies every limit; 0 means off.
	Scale float64
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

// keyByIP keys on the connection's IP (no forwarded headers: put the proxy's
// own limits in front, or trust nothing the client says).
func keyByIP(r *http.Request) (string, error) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return httprate.CanonicalizeIP(host), nil
}

func tooMany(json bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if json {
			writeJSON429(w)
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
	return httprate.LimitBy(l.n(n), window, keyByIP, httprate.WithLimitHandler(tooMany(jsonErrors)))
}

// PerFormField allows n POSTs per window naming the same value of a form
// field (the account being logged into), whatever the IP. A request counts
// when it arrives, so concurrent attempts cannot exceed the limit; the
// handler takes it back with NotCounted when the attempt reached no verdict
// (the store was unavailable), so an outage cannot lock anyone out.
func (l *Limits) PerFormField(field string, n int, window time.Duration) func(http.Handler) http.Handler {
	if l.Off() {
		return passthrough
	}
	// A counter of our own makes the limiter align windows on the wall
	// clock, so a refund can name the window its count went to.
	counter := httprate.NewLocalLimitCounter(window)
	rl := httprate.NewRateLimiter(l.n(n), window, httprate.WithLimitCounter(counter), httprate.WithLimitHandler(tooMany(false)))
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.Body = http.MaxBytesReader(nil, r.Body, 64<<10)
			key := field + ":" + strings.ToLower(strings.TrimSpace(r.PostFormValue(field)))
			if rl.RespondOnLimit(w, r, key) {
				return
			}
			var ref refund
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), refundKey{}, &ref)))
			if ref.asked.Load() {
				// The current window, never an earlier one (the
				// counter would take that for a reset): when the
				// window turned meanwhile, the count left in the
				// previous one fades with it.
				counter.IncrementBy(key, time.Now().UTC().Truncate(window), -1)
			}
		})
	}
}

type refundKey struct{}

type refund struct{ asked atomic.Bool }

// NotCounted takes the request back from the per-account attempt limit: a
// sign-in that failed for a reason of the server's (storage unavailable) is
// no attempt at the password. It does nothing outside PerFormField.
func NotCounted(r *http.Request) {
	if ref, ok := r.Context().Value(refundKey{}).(*refund); ok {
		ref.asked.Store(true)
	}
}
