package privacy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Consent is what a person granted a service.
type Consent struct {
	AccountDID string
	ClientID   string
	Scopes     []string // granted scopes
	Claims     []string // claims the person ticked
	// SubjectSector is the sector the service's sub is computed for; for a
	// fork it is the family's sector when the person carried their account
	// over, else the fork's own.
	SubjectSector string
	// TermsHash is the hash of the service's commitments (package terms)
	// the person saw when they consented; "" for none. A service whose
	// commitments changed since is asked about again.
	TermsHash  string
	GrantedAt  time.Time
	UpdatedAt  time.Time
	ExpiresAt  *time.Time
	LastUsedAt *time.Time
}

// Covers reports whether the consent grants every scope in scopes and is not
// expired at now.
func (c *Consent) Covers(scopes []string, now time.Time) bool {
	if c == nil || (c.ExpiresAt != nil && !now.Before(*c.ExpiresAt)) {
		return false
	}
	for _, s := range scopes {
		if !slices.Contains(c.Scopes, s) {
			return false
		}
	}
	return true
}

// Activity kinds.
const (
	ActivityLogin         = "login"
	ActivityConsent       = "consent.granted"
	ActivityConsentDenied = "consent.denied"
	ActivityRevoked       = "consent.revoked"
	ActivityTokenIssued   = "token.issued"
	ActivityRelease       = "claims.released"
	ActivityLogout        = "logout"
)

// Activity is one entry of the person-visible activity log.
type Activity struct {
	ID         int64
	AccountDID string
	At         time.Time
	Kind       string
	ClientID   string
	Detail     map[string]any
	IP         string
	UserAgent  string
}

// Claim release policies.
const (
	PolicyAsk   = "ask"
	PolicyAllow = "allow"
	PolicyNever = "never"
)

// Settings are the person's privacy rules.
type Settings struct {
	Version int `json:"version"`
	// SubjectMode is how services see the person: "pairwise" (a different
	// sub per service family) or "public" (the DID), with per-service
	// overrides by client_id.
	SubjectMode      string            `json:"subject_mode"`
	SubjectOverrides map[string]string `json:"subject_overrides,omitempty"`
	// ClaimPolicy maps a claim to ask (default), allow or never.
	ClaimPolicy map[string]string `json:"claim_policy,omitempty"`
	ForkPolicy  string            `json:"fork_policy"` // ask | allow | never
	// ConsentLifetimeDays: 0 keeps consents until revoked; else 30, 90, 365.
	ConsentLifetimeDays int `json:"consent_lifetime_days"`
	// FederationSharing: none, public_profile or all.
	FederationSharing string `json:"federation_sharing"`
	// ActivityRetentionDays: 30 to 3650, or 0 for forever (default 365).
	ActivityRetentionDays int  `json:"activity_retention_days"`
	Discoverable          bool `json:"discoverable"`
}

// DefaultSettings are the settings of a person who changed nothing.
func DefaultSettings() *Settings {
	return &Settings{Version: 0, SubjectMode: "pairwise", ForkPolicy: PolicyAsk, FederationSharing: "none",
		ActivityRetentionDays: DefaultRetentionDays}
}

// DefaultRetentionDays is how long activity is kept unless the person chooses.
const DefaultRetentionDays = 365

// SubjectModeFor returns the subject mode for one service.
func (s *Settings) SubjectModeFor(clientID string) string {
	if s == nil {
		return "pairwise"
	}
	if m, ok := s.SubjectOverrides[clientID]; ok {
		return m
	}
	if s.SubjectMode == "" {
		return "pairwise"
	}
	return s.SubjectMode
}

// Validate checks every field, reporting all problems at once.
func (s *Settings) Validate() error {
	var errs []error
	mode := func(m string) bool { return m == "pairwise" || m == "public" }
	if !mode(s.SubjectMode) {
		errs = append(errs, fmt.Errorf("subject_mode must be pairwise or public"))
	}
	for c, m := range s.SubjectOverrides {
		if !mode(m) {
			errs = append(errs, fmt.Errorf("subject override for %s must be pairwise or public", c))
		}
	}
	releasable := ReleasableClaims()
	for c, p := range s.ClaimPolicy {
		if !slices.Contains(releasable, c) {
			errs = append(errs, fmt.Errorf("claim_policy: unknown claim %q", c))
		}
		if p != PolicyAsk && p != PolicyAllow && p != PolicyNever {
			errs = append(errs, fmt.Errorf("claim_policy for %s must be ask, allow or never", c))
		}
	}
	if s.ForkPolicy != PolicyAsk && s.ForkPolicy != PolicyAllow && s.ForkPolicy != PolicyNever {
		errs = append(errs, fmt.Errorf("fork_policy must be ask, allow or never"))
	}
	if !slices.Contains([]int{0, 30, 90, 365}, s.ConsentLifetimeDays) {
		errs = append(errs, fmt.Errorf("consent_lifetime_days must be 0 (until revoked), 30, 90 or 365"))
	}
	if !slices.Contains([]string{"none", "public_profile", "all"}, s.FederationSharing) {
		errs = append(errs, fmt.Errorf("federation_sharing must be none, public_profile or all"))
	}
	if s.ActivityRetentionDays != 0 && (s.ActivityRetentionDays < 30 || s.ActivityRetentionDays > 3650) {
		errs = append(errs, fmt.Errorf("activity_retention_days must be 0 (forever) or 30 to 3650"))
	}
	return errors.Join(errs...)
}

// Policy returns the release policy of a claim.
func (s *Settings) Policy(claim string) string {
	if s != nil {
		if p, ok := s.ClaimPolicy[claim]; ok {
			return p
		}
	}
	return PolicyAsk
}

// Store persists consents, activity and settings.
type Store interface {
	GetConsent(ctx context.Context, accountDID, clientID string) (*Consent, error)
	PutConsent(ctx context.Context, c *Consent) error
	DeleteConsent(ctx context.Context, accountDID, clientID string) error
	ListConsents(ctx context.Context, accountDID string) ([]*Consent, error)
	TouchConsent(ctx context.Context, accountDID, clientID string, at time.Time) error

	AppendActivity(ctx context.Context, a *Activity) error
	// ListActivity returns entries newest first, with id below beforeID
	// (0: from the newest).
	ListActivity(ctx context.Context, accountDID string, beforeID int64, limit int) ([]*Activity, error)

	// GetSettings returns store.ErrNotFound for a person with no settings.
	GetSettings(ctx context.Context, accountDID string) (*Settings, error)
	PutSettings(ctx context.Context, accountDID string, s *Settings, at time.Time) error

	// PruneActivity deletes activity older than each person's retention
	// (DefaultRetentionDays without settings; never with 0).
	PruneActivity(ctx context.Context, now time.Time) (int64, error)
	// ForgetAccount deletes everything kept about an account apart from its
	// own row: every code and token issued for it, its sign-on sessions,
	// consents, activity and settings (deletion, a move away).
	ForgetAccount(ctx context.Context, accountDID string) error

	PeerGrantStore // peergrant.go

	// InTx runs fn in one transaction.
	InTx(ctx context.Context, fn func(ctx context.Context) error) error
}
