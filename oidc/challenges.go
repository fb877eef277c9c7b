package oidc

// Authorization challenges are what an anonymous request makes the provider
// store: the authorization request, kept while the person signs in and
// consents. Anyone can send one, so each is bounded three ways:
//
//   - small: only the parameters needed to resume the request are kept,
//     each within a length bound, and the kept form within
//     MaxChallengeFormBytes; a request beyond a bound is refused
//     (invalid_request) whether or not it would be stored;
//   - few: challenges stored for a browser without a sign-on session are
//     limited per source IP (ChallengesPerIP per ChallengeWindow, answered
//     429 with Retry-After), and the table holds at most MaxLiveChallenges
//     unexpired challenges (answered 503 with Retry-After);
//   - short-lived: ChallengeLifetime, after which the store's purge deletes
//     them.

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/ory/fosite"

	"github.com/onecommons/commonsid/internal/limits"
)

// Bounds on the parameters of an authorization request, in bytes of the
// decoded value (all values of a repeated parameter together). Each is far
// above what a relying party sends: a state or nonce is a random string or
// a short signed value, a login_hint an email address or handle, an
// id_token_hint one of our ID tokens.
const (
	MaxStateBytes       = 1024 // state: echoed to the client, so an oversized one is answered with a page, never a redirect
	MaxNonceBytes       = 1024 // nonce: copied into the ID token
	MaxScopeBytes       = 1024 // scope: space-separated scope names
	MaxClaimsBytes      = 4096 // claims: the OpenID Connect claims request (JSON)
	MaxLoginHintBytes   = 1024 // login_hint
	MaxIDTokenHintBytes = 4096 // id_token_hint: a compact JWS
	MaxURIParamBytes    = 2048 // redirect_uri, resource, audience
	MaxCodeChallenge    = 128  // code_challenge before its exact check (43 for S256)
	MaxShortParamBytes  = 256  // every other kept parameter: client_id, response_type, prompt, max_age, locales, acr_values …

	// MaxChallengeFormBytes bounds the kept parameters as stored
	// (URL-encoded), so that every challenge row is at most this size
	// whatever the request carried.
	MaxChallengeFormBytes = 16 << 10
)

// Rate and volume of stored challenges.
const (
	// ChallengesPerIP challenges may be stored per ChallengeWindow for one
	// source IP without a sign-on session: a person starts a handful of
	// sign-ins a minute at most; a burst of the whole budget is allowed.
	// Scaled by --rate-limit; off with --rate-limit off.
	ChallengesPerIP = 60
	ChallengeWindow = time.Minute
	// MaxLiveChallenges bounds the unexpired challenges of the whole cloud:
	// past it, new sign-ins wait (503) until the oldest expire. With the
	// per-row bound it caps the table at about 1.6 GB in the worst case,
	// and far less in practice (a real request keeps under 1 KiB).
	MaxLiveChallenges = 100_000
	// challengeRecount is how often the live challenges are counted in the
	// database; in between, the challenges this process stored are added.
	challengeRecount = 10 * time.Second
)

// challengeParams are the parameters kept in a challenge, with the bound of
// each: those fosite reads when the request is validated again on resume,
// and those the provider reads (prompt, max_age, claims …). Anything else a
// request carries is dropped: nothing reads it.
var challengeParams = map[string]int{
	"response_type":         MaxShortParamBytes,
	"response_mode":         MaxShortParamBytes,
	"client_id":             MaxShortParamBytes,
	"redirect_uri":          MaxURIParamBytes,
	"scope":                 MaxScopeBytes,
	"state":                 MaxStateBytes,
	"nonce":                 MaxNonceBytes,
	"code_challenge":        MaxCodeChallenge,
	"code_challenge_method": MaxShortParamBytes,
	"prompt":                MaxShortParamBytes,
	"max_age":               MaxShortParamBytes,
	"display":               MaxShortParamBytes,
	"ui_locales":            MaxShortParamBytes,
	"claims_locales":        MaxShortParamBytes,
	"claims":                MaxClaimsBytes,
	"acr_values":            MaxShortParamBytes,
	"id_token_hint":         MaxIDTokenHintBytes,
	"login_hint":            MaxLoginHintBytes,
	"resource":              MaxURIParamBytes,
	"audience":              MaxURIParamBytes,
	PeerServiceParam:        MaxShortParamBytes, // brokered sign-in (peerconsent.go)
}

// keptForm is the part of an authorization request's form that a challenge
// stores.
func keptForm(f url.Values) url.Values {
	out := url.Values{}
	for k, v := range f {
		if _, ok := challengeParams[k]; ok {
			out[k] = v
		}
	}
	return out
}

// checkBounds refuses a request whose kept parameters exceed their bounds,
// or whose kept form would not fit in a challenge.
func checkBounds(f url.Values) error {
	for k, max := range challengeParams {
		n := 0
		for _, v := range f[k] {
			n += len(v)
		}
		if n > max {
			return fosite.ErrInvalidRequest.WithHintf("The %s parameter is longer than %d bytes.", k, max)
		}
	}
	if n := len(keptForm(f).Encode()); n > MaxChallengeFormBytes {
		return fosite.ErrInvalidRequest.WithHintf("The authorization request is longer than %d bytes.", MaxChallengeFormBytes)
	}
	return nil
}

// stateTooLong reports whether an error answer must not carry the
// request's state back to the client (it would be an oversized redirect).
func stateTooLong(ar fosite.AuthorizeRequester) bool {
	return len(ar.GetState()) > MaxStateBytes
}

// liveChallengeCounter is implemented by stores that count unexpired
// challenges, at most limit of them (so that the count stays cheap).
type liveChallengeCounter interface {
	CountLiveChallenges(ctx context.Context, now time.Time, limit int) (int, error)
}

// challengeGuard holds the per-IP budget and the live count of challenges.
type challengeGuard struct {
	once   sync.Once
	budget *limits.Budget

	mu        sync.Mutex
	live      int
	countedAt time.Time
}

func (g *challengeGuard) init(l *limits.Limits) {
	g.once.Do(func() { g.budget = l.PerIPBudget(ChallengesPerIP, ChallengeWindow) })
}

// full reports whether the cloud already holds MaxLiveChallenges
// unexpired challenges. It counts in the database at most every
// challengeRecount; a store that cannot count is never full.
func (g *challengeGuard) full(ctx context.Context, st Store, now time.Time) (bool, error) {
	c, ok := st.(liveChallengeCounter)
	if !ok {
		return false, nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.countedAt.IsZero() || now.Sub(g.countedAt) >= challengeRecount || now.Before(g.countedAt) {
		n, err := c.CountLiveChallenges(ctx, now, MaxLiveChallenges)
		if err != nil {
			return false, err
		}
		g.live, g.countedAt = n, now
	}
	return g.live >= MaxLiveChallenges, nil
}

func (g *challengeGuard) stored() {
	g.mu.Lock()
	g.live++
	g.mu.Unlock()
}

// storeChallenge stores the authorization request as a challenge, within
// the per-IP budget when the browser has no sign-on session (anonymous)
// and within MaxLiveChallenges. When it cannot, it answers the request
// itself and returns false.
func (p *Provider) storeChallenge(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, notBefore time.Time, anonymous bool) (*Challenge, bool) {
	ctx := r.Context()
	p.challenges.init(p.Limits)
	if anonymous {
		if ok, wait := p.challenges.budget.Take(r); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)))
			p.errorPage(w, r, http.StatusTooManyRequests, "Too many sign-in attempts",
				"Too many sign-ins were started from your network. Please wait a minute and try again.")
			return nil, false
		}
	}
	full, err := p.challenges.full(ctx, p.Store, p.now())
	if err != nil {
		p.serverError(w, r, err)
		return nil, false
	}
	if full {
		p.Log.WarnContext(ctx, "authorization refused: too many pending sign-ins", "max", MaxLiveChallenges)
		w.Header().Set("Retry-After", strconv.Itoa(int(ChallengeWindow/time.Second)))
		p.errorPage(w, r, http.StatusServiceUnavailable, "Sign-in is busy",
			"Too many sign-ins are in progress right now. Please try again in a minute.")
		return nil, false
	}
	ch, err := p.newChallenge(ctx, ar, notBefore)
	if err != nil {
		p.serverError(w, r, err)
		return nil, false
	}
	p.challenges.stored()
	return ch, true
}
