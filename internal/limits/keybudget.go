package limits

import (
	"net/http"
	"time"

	"github.com/go-chi/httprate"
)

// KeyBudget is a Budget keyed by a name the handler chooses once it knows
// it (an authenticated client_id) rather than by source IP. A nil
// KeyBudget allows everything.
type KeyBudget struct {
	rl     *httprate.RateLimiter
	window time.Duration
}

// PerKeyBudget allows n takes per window for one key. It returns nil when
// limiting is off.
func (l *Limits) PerKeyBudget(n int, window time.Duration) *KeyBudget {
	if l.Off() {
		return nil
	}
	return &KeyBudget{rl: httprate.NewRateLimiter(l.n(n), window), window: window}
}

// Take spends one unit of key. When the budget is spent it spends nothing
// and returns false with how long to wait before trying again.
func (b *KeyBudget) Take(r *http.Request, key string) (ok bool, retryAfter time.Duration) {
	if b == nil {
		return true, 0
	}
	if b.rl.OnLimit(discardHeaders{}, r, key) {
		return false, b.window
	}
	return true, 0
}
