// Package limits rate-limits abuse-prone routes (login, sign-up, token,
// registration) per client IP and per account, answering 429 with
// Retry-After. Counters live in each process: with several replicas the
// effective limit is per replica.
package limits

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
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
// field (the account being logged into), whatever the IP.
func (l *Limits) PerFormField(field string, n int, window time.Duration) func(http.Handler) http.Handler {
	if l.Off() {
		return passthrough
	}
	return httprate.LimitBy(l.n(n), window, func(r *http.Request) (string, error) {
		r.Body = http.MaxBytesReader(nil, r.Body, 64<<10)
		return field + ":" + strings.ToLower(strings.TrimSpace(r.PostFormValue(field))), nil
	}, httprate.WithLimitHandler(tooMany(false)))
}
