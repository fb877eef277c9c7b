package access

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/privacy"
	"github.com/onecommons/commonsid/store"
)

// Names of the level everyone has, the claim and its scope.
const (
	Basic = "basic"
	Claim = "commons_access"
	Scope = "commons"
)

// Sources of a grant.
const (
	SourceOperator = "operator"
	// SourceNoticePrefix is followed by the payment service's id.
	SourceNoticePrefix = "notice:"
)

// DefaultLevels are the levels beyond basic of a cloud that defines none.
var DefaultLevels = []string{"enhanced"}

// MaxLevels bounds how many levels a cloud defines.
const MaxLevels = 16

var levelName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)

// ParseLevels reads COMMONSID_ACCESS_LEVELS: level names, comma-separated
// (lower case letters, digits, "_" and "-", at most 32, starting with a
// letter), "basic" excluded. Empty gives DefaultLevels.
func ParseLevels(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return slices.Clone(DefaultLevels), nil
	}
	var out []string
	var errs []error
	for _, l := range strings.Split(s, ",") {
		l = strings.TrimSpace(l)
		switch {
		case l == Basic:
			errs = append(errs, errors.New(`"basic" is every person's level and cannot be defined`))
		case !levelName.MatchString(l):
			errs = append(errs, fmt.Errorf("%.40q is not a level name (lower case letters, digits, _ and -, starting with a letter, at most 32)", l))
		case slices.Contains(out, l):
			errs = append(errs, fmt.Errorf("level %q is given twice", l))
		default:
			out = append(out, l)
		}
	}
	if len(out) > MaxLevels {
		errs = append(errs, fmt.Errorf("at most %d levels", MaxLevels))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// Grant is an account's contribution level.
type Grant struct {
	AccountDID string
	Level      string
	// ExpiresAt is when the level ends; zero for basic.
	ExpiresAt time.Time
	Source    string // SourceOperator or SourceNoticePrefix + service id
	SetAt     time.Time
	// NoticeID is the id of the notice that set it, "" otherwise.
	NoticeID string
}

// Effective is the level in force at now: basic once the grant expired.
func (g *Grant) Effective(now time.Time) string {
	if g == nil || g.Level == Basic || g.Level == "" || !now.Before(g.ExpiresAt) {
		return Basic
	}
	return g.Level
}

// Expired reports a grant of a level beyond basic that has ended.
func (g *Grant) Expired(now time.Time) bool {
	return g != nil && g.Level != Basic && g.Level != "" && !now.Before(g.ExpiresAt)
}

// ClaimValue is the value of the commons_access claim.
type ClaimValue struct {
	Level     string `json:"level"`
	ExpiresAt string `json:"expires_at,omitempty"` // RFC 3339, UTC
}

// Value is the claim released for a grant (nil: basic) at now.
func Value(g *Grant, now time.Time) ClaimValue {
	l := g.Effective(now)
	if l == Basic {
		return ClaimValue{Level: Basic}
	}
	return ClaimValue{Level: l, ExpiresAt: g.ExpiresAt.UTC().Format(time.RFC3339)}
}

// Map is the claim value as a JSON object, as tokens carry it.
func (v ClaimValue) Map() map[string]any {
	m := map[string]any{"level": v.Level}
	if v.ExpiresAt != "" {
		m["expires_at"] = v.ExpiresAt
	}
	return m
}

// Errors of Set and notices.
var (
	ErrUnknownLevel = errors.New("unknown access level")
	ErrExpiry       = errors.New("a level beyond basic needs an expiry in the future")
	ErrNotHome      = errors.New("this cloud is not the account's home")
	// ErrReplayed reports a notice id accepted before.
	ErrReplayed = errors.New("this notice was accepted before")
)

// Store keeps grants. GetAccess returns store.ErrNotFound when the account
// has none.
type Store interface {
	GetAccess(ctx context.Context, did string) (*Grant, error)
	// SetAccess stores the grant of an account homed here, replacing any,
	// and announces the account as updated (its replicas follow). With
	// g.NoticeID set, the notice id is recorded for g.Source in the same
	// transaction; one recorded before is store.ErrAlreadyExists and
	// nothing is written.
	SetAccess(ctx context.Context, g *Grant) error
	// PutReplicaAccess stores the grant a replica's home sent (nil
	// removes it), announcing nothing.
	PutReplicaAccess(ctx context.Context, did string, g *Grant) error
}

// Accounts finds an account by any DID it has had or by handle
// (identity.Service.Lookup); store.ErrNotFound when none.
type Accounts interface {
	Lookup(ctx context.Context, ref string) (*identity.Account, error)
}

// Service sets and reads grants.
type Service struct {
	Store    Store
	Accounts Accounts
	Issuer   string   // this cloud: only accounts homed here are set
	Levels   []string // the levels beyond basic (ParseLevels)
	Now      func() time.Time
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

// Known reports whether level is basic or one of the cloud's levels.
func (s *Service) Known(level string) bool {
	return level == Basic || slices.Contains(s.levels(), level)
}

func (s *Service) levels() []string {
	if s.Levels == nil {
		return DefaultLevels
	}
	return s.Levels
}

// AllLevels is basic followed by the cloud's levels.
func (s *Service) AllLevels() []string { return append([]string{Basic}, s.levels()...) }

// Find resolves an account named by DID or handle.
func (s *Service) Find(ctx context.Context, name string) (*identity.Account, error) {
	return s.Accounts.Lookup(ctx, name)
}

// Set gives an account homed here a level until a time, from source
// (noticeID "" unless a notice sets it). Level basic ends any grant.
func (s *Service) Set(ctx context.Context, a *identity.Account, level string, until time.Time, source, noticeID string) (*Grant, error) {
	if !s.Known(level) {
		return nil, fmt.Errorf("%w %.40q: this cloud knows %s", ErrUnknownLevel, level, strings.Join(s.AllLevels(), ", "))
	}
	now := s.now()
	if level != Basic && !until.After(now) {
		return nil, ErrExpiry
	}
	if level == Basic {
		until = time.Time{}
	}
	if a.HomeIssuer != s.Issuer || a.Status != identity.StatusActive && a.Status != identity.StatusDisabled {
		return nil, ErrNotHome
	}
	g := &Grant{AccountDID: a.DID, Level: level, ExpiresAt: until.UTC(), Source: source, SetAt: now, NoticeID: noticeID}
	if err := s.Store.SetAccess(ctx, g); err != nil {
		if errors.Is(err, store.ErrAlreadyExists) {
			return nil, ErrReplayed
		}
		return nil, err
	}
	return g, nil
}

// Get returns an account's grant, nil when it has none.
func (s *Service) Get(ctx context.Context, did string) (*Grant, error) {
	g, err := s.Store.GetAccess(ctx, did)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return g, err
}

// Current is the claim value of an account now.
func (s *Service) Current(ctx context.Context, did string) (ClaimValue, error) {
	g, err := s.Get(ctx, did)
	if err != nil {
		return ClaimValue{}, err
	}
	return Value(g, s.now()), nil
}

// Recipients are the services (client ids) whose consents release the
// claim: scope commons granted and the claim allowed, as privacy.Release
// decides.
func Recipients(consents []*privacy.Consent, settings *privacy.Settings) []string {
	if settings == nil {
		settings = privacy.DefaultSettings()
	}
	var out []string
	for _, c := range consents {
		rel := privacy.Release(privacy.ReleaseInput{GrantedScopes: c.Scopes, Consent: c, Settings: settings, Target: privacy.TargetUserInfo})
		if slices.Contains(rel, Claim) {
			out = append(out, c.ClientID)
		}
	}
	return out
}
