package privacy

import (
	"context"
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
	GrantedAt     time.Time
	UpdatedAt     time.Time
	ExpiresAt     *time.Time
	LastUsedAt    *time.Time
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
	Version     int               `json:"version"`
	SubjectMode string            `json:"subject_mode"`           // pairwise | public
	ClaimPolicy map[string]string `json:"claim_policy,omitempty"` // claim → ask|allow|never
	ForkPolicy  string            `json:"fork_policy"`            // ask | allow | never
}

// DefaultSettings are the settings of a person who changed nothing.
func DefaultSettings() *Settings {
	return &Settings{Version: 0, SubjectMode: "pairwise", ForkPolicy: PolicyAsk}
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
}
