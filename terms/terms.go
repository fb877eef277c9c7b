package terms

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/gowebpki/jcs"

	"github.com/onecommons/commonsid/internal/httpx"
)

// Limits of a commitments document.
const (
	MaxSize       = 8 << 10 // bytes of JSON
	MaxKeeps      = 64      // entries of keeps
	MaxForkClaims = 64      // claims of forks.claims
	MaxPurpose    = 200     // characters of a purpose
)

// What a service shares with its forks.
const (
	SharesNone     = "none"
	SharesPairwise = "pairwise_ids"
	SharesClaims   = "claims"
)

// Session is the retention of what is kept only while signed in.
const Session = "session"

// Commitments is a service's commitments document, normalised.
type Commitments struct {
	Version int    `json:"version"`
	Keeps   []Keep `json:"keeps"`
	Forks   Forks  `json:"forks"`
	Export  bool   `json:"export"`
}

// Keep is what the service keeps of one claim or scope, and for how long.
type Keep struct {
	Claim     string `json:"claim,omitempty"`
	Scope     string `json:"scope,omitempty"`
	Retention string `json:"retention"`
	Purpose   string `json:"purpose,omitempty"`
}

// Forks is what the service shares with forks of it.
type Forks struct {
	Shares string   `json:"shares"`
	Claims []string `json:"claims,omitempty"`
}

// wire is the document as sent: pointers tell a missing member from a
// zero one.
type wire struct {
	Version *int        `json:"version"`
	Keeps   *[]wireKeep `json:"keeps"`
	Forks   *wireForks  `json:"forks"`
	Export  *bool       `json:"export"`
}

type wireKeep struct {
	Claim     *string `json:"claim"`
	Scope     *string `json:"scope"`
	Retention *string `json:"retention"`
	Purpose   *string `json:"purpose"`
}

type wireForks struct {
	Shares *string   `json:"shares"`
	Claims *[]string `json:"claims"`
}

// Error is an invalid commitments document: every problem found.
type Error struct{ Problems []string }

func (e *Error) Error() string { return strings.Join(e.Problems, "; ") }

var (
	nameRE     = regexp.MustCompile(`^[A-Za-z0-9_.:/-]{1,64}$`)
	durationRE = regexp.MustCompile(`^P(?:(\d{1,4})Y)?(?:(\d{1,4})M)?(?:(\d{1,4})W)?(?:(\d{1,4})D)?(?:T(?:(\d{1,4})H)?(?:(\d{1,4})M)?(?:(\d{1,4})S)?)?$`)
)

// Parse reads and validates a commitments document (see the package
// documentation). Its errors are *Error, naming every problem, each
// starting with the member's path (commons_commitments.keeps[0].retention).
func Parse(raw []byte) (*Commitments, error) {
	const at = "commons_commitments"
	if len(raw) > MaxSize {
		return nil, &Error{[]string{fmt.Sprintf("%s is longer than %d bytes", at, MaxSize)}}
	}
	var w wire
	if err := (httpx.StrictJSON{DisallowUnknown: true}).Decode(raw, &w); err != nil {
		var ke *httpx.JSONKeyError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &ke):
			return nil, &Error{[]string{fmt.Sprintf("%s.%s: %s", at, ke.Key, ke.Reason)}}
		case errors.As(err, &te):
			return nil, &Error{[]string{fmt.Sprintf("%s.%s has the wrong type", at, te.Field)}}
		}
		return nil, &Error{[]string{at + " must be a JSON object"}}
	}
	var bad []string
	problem := func(format string, args ...any) { bad = append(bad, at+"."+fmt.Sprintf(format, args...)) }
	c := &Commitments{Keeps: []Keep{}}
	switch {
	case w.Version == nil:
		problem("version is required (1)")
	case *w.Version != 1:
		problem("version %d is not supported (1)", *w.Version)
	default:
		c.Version = 1
	}
	if w.Keeps == nil {
		problem("keeps is required (a list, empty when the service keeps nothing)")
	} else if len(*w.Keeps) > MaxKeeps {
		problem("keeps has more than %d entries", MaxKeeps)
	} else {
		seen := map[string]bool{}
		for i, k := range *w.Keeps {
			e, probs := checkKeep(k)
			for _, p := range probs {
				problem("keeps[%d].%s", i, p)
			}
			if len(probs) > 0 {
				continue
			}
			key := "claim " + e.Claim
			if e.Scope != "" {
				key = "scope " + e.Scope
			}
			if seen[key] {
				problem("keeps[%d]: %s is listed twice", i, key)
				continue
			}
			seen[key] = true
			c.Keeps = append(c.Keeps, e)
		}
	}
	if w.Forks == nil {
		problem("forks is required ({\"shares\": \"none\"}, \"pairwise_ids\" or \"claims\" with a list)")
	} else {
		c.Forks = checkForks(*w.Forks, problem)
	}
	switch {
	case w.Export == nil:
		problem("export is required: true, people may export their data")
	case !*w.Export:
		problem("export must be true: the commons' terms let people export their data")
	default:
		c.Export = true
	}
	if len(bad) > 0 {
		return nil, &Error{bad}
	}
	slices.SortFunc(c.Keeps, func(a, b Keep) int {
		if a.Scope != b.Scope {
			return strings.Compare(a.Scope, b.Scope) // claims ("" scope) first
		}
		return strings.Compare(a.Claim, b.Claim)
	})
	slices.Sort(c.Forks.Claims)
	return c, nil
}

func checkKeep(k wireKeep) (Keep, []string) {
	var e Keep
	var bad []string
	switch {
	case (k.Claim == nil) == (k.Scope == nil):
		bad = append(bad, "claim or scope: give exactly one")
	case k.Claim != nil:
		if !nameRE.MatchString(*k.Claim) {
			bad = append(bad, fmt.Sprintf("claim %q is not a claim name", *k.Claim))
		}
		e.Claim = *k.Claim
	default:
		if !nameRE.MatchString(*k.Scope) {
			bad = append(bad, fmt.Sprintf("scope %q is not a scope name", *k.Scope))
		}
		e.Scope = *k.Scope
	}
	if k.Retention == nil {
		bad = append(bad, "retention is required (an ISO 8601 duration such as P1Y, or \"session\")")
	} else if _, err := ParseRetention(*k.Retention); err != nil {
		bad = append(bad, "retention: "+err.Error())
	} else {
		e.Retention = *k.Retention
	}
	if k.Purpose != nil {
		p := *k.Purpose
		switch {
		case len([]rune(p)) > MaxPurpose:
			bad = append(bad, fmt.Sprintf("purpose is longer than %d characters", MaxPurpose))
		case strings.TrimSpace(p) == "":
			bad = append(bad, "purpose is empty (leave it out instead)")
		case strings.IndexFunc(p, unicode.IsControl) >= 0:
			bad = append(bad, "purpose must not contain control characters")
		}
		e.Purpose = p
	}
	return e, bad
}

func checkForks(f wireForks, problem func(string, ...any)) Forks {
	var out Forks
	if f.Shares == nil {
		problem("forks.shares is required: none, pairwise_ids or claims")
		return out
	}
	out.Shares = *f.Shares
	switch *f.Shares {
	case SharesNone, SharesPairwise:
		if f.Claims != nil {
			problem("forks.claims is only for shares \"claims\"")
		}
	case SharesClaims:
		if f.Claims == nil || len(*f.Claims) == 0 {
			problem("forks.claims must list the claims forks receive")
			break
		}
		if len(*f.Claims) > MaxForkClaims {
			problem("forks.claims has more than %d entries", MaxForkClaims)
			break
		}
		for i, cl := range *f.Claims {
			switch {
			case !nameRE.MatchString(cl):
				problem("forks.claims[%d] %q is not a claim name", i, cl)
			case slices.Contains(out.Claims, cl):
				problem("forks.claims[%d] %q is listed twice", i, cl)
			default:
				out.Claims = append(out.Claims, cl)
			}
		}
	default:
		problem("forks.shares %q: use none, pairwise_ids or claims", *f.Shares)
	}
	return out
}

// Retention is a parsed retention: Session, or the integer parts of an
// ISO 8601 duration (years, months, weeks, days, hours, minutes, seconds).
type Retention struct {
	Session bool
	Parts   [7]int
}

// ParseRetention reads "session" or an ISO 8601 duration of integer parts
// (PnYnMnWnDTnHnMnS, each at most 4 digits), not zero.
func ParseRetention(s string) (Retention, error) {
	if s == Session {
		return Retention{Session: true}, nil
	}
	m := durationRE.FindStringSubmatch(s)
	if m == nil || s == "P" || strings.HasSuffix(s, "T") {
		return Retention{}, fmt.Errorf("%q is not an ISO 8601 duration such as P1Y, P6M, P30D or PT12H, nor \"session\"", s)
	}
	var r Retention
	total := 0
	for i := range r.Parts {
		if m[i+1] != "" {
			r.Parts[i], _ = strconv.Atoi(m[i+1])
			total += r.Parts[i]
		}
	}
	if total == 0 {
		return Retention{}, fmt.Errorf("%q is zero: use \"session\" for what is kept only while signed in", s)
	}
	return r, nil
}

// Canonical is the document in the JSON Canonicalization Scheme (RFC 8785).
func (c *Commitments) Canonical() []byte {
	b, err := json.Marshal(c)
	if err != nil {
		panic(err) // plain strings, ints and bools only
	}
	out, err := jcs.Transform(b)
	if err != nil {
		panic(err)
	}
	return out
}

// Hash is the stable hash of the commitments: "sha256-" and the base64url
// SHA-256 of Canonical.
func (c *Commitments) Hash() string {
	sum := sha256.Sum256(c.Canonical())
	return "sha256-" + base64.RawURLEncoding.EncodeToString(sum[:])
}

// HashOf is the hash of a stored document (as Canonical wrote it); "" for
// none. A stored document that no longer parses hashes as its bytes, so
// that any change of it still shows.
func HashOf(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	if c, err := Parse(raw); err == nil {
		return c.Hash()
	}
	sum := sha256.Sum256(raw)
	return "sha256-" + base64.RawURLEncoding.EncodeToString(sum[:])
}
