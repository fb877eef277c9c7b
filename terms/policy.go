package terms

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode"
)

// Mode is a cloud's registration policy.
type Mode string

// Modes.
const (
	Open    Mode = "open"
	Commons Mode = "commons"
)

// ParseMode reads --service-terms; "" is Open.
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case "", Open:
		return Open, nil
	case Commons:
		return Commons, nil
	}
	return "", fmt.Errorf("%q: use open or commons", s)
}

// MaxForkReason bounds commons_fork_reason.
const MaxForkReason = 500

// Service is what Check looks at in a registration.
type Service struct {
	SourceCodeURI, PolicyURI, TOSURI string
	// Commitments is commons_commitments as sent; empty when absent.
	Commitments []byte
	// Fork is set for a fork; ParentSourceCodeURI is its parent's
	// source_code_uri.
	Fork                bool
	ParentSourceCodeURI string
	ForkReason          string
}

// Check lists what a service lacks to meet the commons' terms, every
// problem at once, each starting with the metadata member it concerns;
// none when it meets them.
func Check(s Service) []string {
	var bad []string
	switch {
	case s.SourceCodeURI == "":
		bad = append(bad, "source_code_uri is required: where the service's source code is published (https)")
	case !isHTTPS(s.SourceCodeURI):
		bad = append(bad, "source_code_uri must be an https URL")
	case s.Fork && sameSource(s.SourceCodeURI, s.ParentSourceCodeURI) && strings.TrimSpace(s.ForkReason) == "":
		bad = append(bad, fmt.Sprintf("source_code_uri is the same as the parent service's (%s): publish the fork's own source, or say why in commons_fork_reason", s.ParentSourceCodeURI))
	}
	if s.PolicyURI == "" {
		bad = append(bad, "policy_uri is required: the service's privacy policy")
	}
	if s.TOSURI == "" {
		bad = append(bad, "tos_uri is required: the service's terms of service")
	}
	if len(s.Commitments) == 0 || string(s.Commitments) == "null" {
		bad = append(bad, "commons_commitments is required: what the service keeps, for how long, what it shares with forks, and export (docs/commitments.schema.json)")
	} else if _, err := Parse(s.Commitments); err != nil {
		var te *Error
		if errors.As(err, &te) {
			bad = append(bad, te.Problems...)
		} else {
			bad = append(bad, "commons_commitments: "+err.Error())
		}
	}
	if err := CheckForkReason(s.ForkReason); err != nil {
		bad = append(bad, err.Error())
	}
	return bad
}

// CheckForkReason checks commons_fork_reason: bounded, printable.
func CheckForkReason(s string) error {
	if len([]rune(s)) > MaxForkReason {
		return fmt.Errorf("commons_fork_reason is longer than %d characters", MaxForkReason)
	}
	if strings.IndexFunc(s, func(r rune) bool { return unicode.IsControl(r) && r != '\n' }) >= 0 {
		return errors.New("commons_fork_reason must not contain control characters")
	}
	return nil
}

func isHTTPS(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && u.Scheme == "https" && u.Host != ""
}

// sameSource compares two source URLs as a reader would: scheme and host
// in any case, a trailing slash or ".git" ignored.
func sameSource(a, b string) bool {
	if b == "" {
		return false
	}
	norm := func(s string) string {
		u, err := url.Parse(s)
		if err != nil {
			return s
		}
		p := strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), ".git")
		return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host) + p + "?" + u.RawQuery
	}
	return norm(a) == norm(b)
}
