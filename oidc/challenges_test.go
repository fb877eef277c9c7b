package oidc

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestCheckBounds(t *testing.T) {
	base := func() url.Values {
		return url.Values{"client_id": {"c"}, "redirect_uri": {"https://rp.example/cb"}, "response_type": {"code"},
			"scope": {"openid"}, "state": {"s-123456"}}
	}
	with := func(k string, v ...string) url.Values {
		f := base()
		f[k] = v
		return f
	}
	cases := []struct {
		name string
		form url.Values
		ok   bool
	}{
		{"ordinary", base(), true},
		{"state at its bound", with("state", strings.Repeat("s", MaxStateBytes)), true},
		{"state over", with("state", strings.Repeat("s", MaxStateBytes+1)), false},
		{"nonce over", with("nonce", strings.Repeat("n", MaxNonceBytes+1)), false},
		{"claims over", with("claims", strings.Repeat("c", MaxClaimsBytes+1)), false},
		{"login_hint over", with("login_hint", strings.Repeat("h", MaxLoginHintBytes+1)), false},
		{"id_token_hint at its bound", with("id_token_hint", strings.Repeat("h", MaxIDTokenHintBytes)), true},
		{"short parameter over", with("prompt", strings.Repeat("p", MaxShortParamBytes+1)), false},
		{"repeated values count together", with("resource", strings.Repeat("r", MaxURIParamBytes/2+1), strings.Repeat("r", MaxURIParamBytes/2)), false},
		{"unknown parameters are not bounded here (not kept)", with("junk", strings.Repeat("j", 1<<20)), true},
		{"kept form over the cap once encoded", func() url.Values {
			f := base()
			// Each '"' encodes as %22: 4 KiB of claims become 12 KiB.
			f.Set("claims", strings.Repeat(`"`, MaxClaimsBytes))
			f.Set("id_token_hint", strings.Repeat("h", MaxIDTokenHintBytes))
			return f
		}(), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := checkBounds(c.form)
			if (err == nil) != c.ok {
				t.Fatalf("checkBounds = %v, want ok %v", err, c.ok)
			}
			if err == nil && len(keptForm(c.form).Encode()) > MaxChallengeFormBytes {
				t.Fatalf("accepted a form of %d bytes", len(keptForm(c.form).Encode()))
			}
		})
	}
}

func TestKeptForm(t *testing.T) {
	f := url.Values{"client_id": {"c"}, "state": {"s"}, "audience": {"a", "b"}, "junk": {"x"}, "request": {"jwt"}}
	got := keptForm(f).Encode()
	if want := "audience=a&audience=b&client_id=c&state=s"; got != want {
		t.Fatalf("keptForm = %q, want %q", got, want)
	}
}

func TestIsS256Challenge(t *testing.T) {
	good := "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM" // RFC 7636 appendix B
	for s, want := range map[string]bool{
		good:                    true,
		good[:42]:               false,
		good + "A":              false,
		good[:42] + "+":         false,
		good[:42] + "=":         false,
		strings.Repeat("_", 43): true,
		strings.Repeat("é", 21): false,
		"":                      false,
	} {
		if got := isS256Challenge(s); got != want {
			t.Errorf("isS256Challenge(%q) = %v, want %v", s, got, want)
		}
	}
}

// countingStore counts live challenges as a store would.
type countingStore struct {
	Store
	live, counts int
}

func (s *countingStore) CountLiveChallenges(_ context.Context, _ time.Time, limit int) (int, error) {
	s.counts++
	return min(s.live, limit), nil
}

// TestChallengeGuardFull: the live count is read from the store at most
// every challengeRecount, with this process's own challenges added in
// between, and refuses at MaxLiveChallenges.
func TestChallengeGuardFull(t *testing.T) {
	var g challengeGuard
	st := &countingStore{live: MaxLiveChallenges - 2}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	check := func(at time.Time, want bool, counts int) {
		t.Helper()
		full, err := g.full(context.Background(), st, at)
		if err != nil || full != want || st.counts != counts {
			t.Fatalf("full = %v, %v after %d counts; want %v after %d", full, err, st.counts, want, counts)
		}
	}
	check(now, false, 1)
	g.stored()
	check(now.Add(time.Second), false, 1)
	g.stored()
	check(now.Add(2*time.Second), true, 1) // 2 stored here: at the bound
	st.live = 10                           // the purge ran elsewhere
	check(now.Add(challengeRecount), false, 2)
	if full, _ := (&challengeGuard{}).full(context.Background(), &countingStore{live: MaxLiveChallenges + 5}, now); !full {
		t.Fatal("a table over the bound is not full")
	}
}
