package limits

import (
	"net/http"
	"time"

	"github.com/go-chi/httprate"
)

// Budget counts something a handler does for a source IP, rather than every
// request to a route: a handler takes from the budget only on the path that
// costs (an anonymous authorization request that stores a challenge), so
// that the cheap paths (a signed-in person's single sign-on) are not
// limited. A nil Budget allows everything.
type Budget struct {
	rl     *httprate.RateLimiter
	window time.Duration
}

// PerIPBudget allows n takes per window from one IP (a sliding window: up to
// n at once, then about n per window). It returns nil when limiting is off.
func (l *Limits) PerIPBudget(n int, window time.Duration) *Budget {
	if l.Off() {
		return nil
	}
	return &Budget{rl: httprate.NewRateLimiter(l.n(n), window, httprate.WithKeyFuncs(keyByIP)), window: window}
}

// PerKeyBudget allows n takes per window for one key that the handler
// chooses once it knows it (an authenticated client_id); take with TakeKey.
// It returns nil when limiting is off.
func (l *Limits) PerKeyBudget(n int, window time.Duration) *Budget {
	if l.Off() {
		return nil
	}
	return &Budget{rl: httprate.NewRateLimiter(l.n(n), window), window: window}
}

// Take spends one unit of r's source IP. When the budget is spent it spends
// nothing and returns false with how long to wait before trying again.
func (b *Budget) Take(r *http.Request) (ok bool, retryAfter time.Duration) {
	key, _ := keyByIP(r)
	return b.TakeKey(r, key)
}

// TakeKey is Take for a key of the caller's choosing.
func (b *Budget) TakeKey(r *http.Request, key string) (ok bool, retryAfter time.Duration) {
	if b == nil {
		return true, 0
	}
	// The limiter writes rate-limit headers to the writer it is given; the
	// caller decides what the person sees, so they go nowhere.
	if b.rl.OnLimit(discardHeaders{}, r, key) {
		return false, b.window
	}
	return true, 0
}

// discardHeaders is a ResponseWriter whose headers are thrown away.
type discardHeaders struct{}

func (discardHeaders) Header() http.Header         { return http.Header{} }
func (discardHeaders) Write(b []byte) (int, error) { return len(b), nil }
func (discardHeaders) WriteHeader(int)             {}
