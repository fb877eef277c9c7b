package oidfed

import (
	"context"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Anchor is a trust anchor this cloud has joined, with its keys as
// pinned when it joined (or as its configuration, verified with the
// pinned keys, has carried them since).
type Anchor struct {
	EntityID string
	JWKS     jose.JSONWebKeySet
	JoinedAt time.Time
	// TrustMark is the "commons cloud" trust mark the anchor issued this
	// cloud (empty until it has).
	TrustMark string
}

// Subordinate is an entity this cloud, as an authority, vouches for.
type Subordinate struct {
	EntityID string
	JWKS     jose.JSONWebKeySet
	// Metadata, when set, is stated in the subordinate statement.
	Metadata  map[string]map[string]any
	AddedAt   time.Time
	UpdatedAt time.Time
}

// Member is a cloud this cloud trusts through a commons: a peer added
// because its trust chain to an anchor verified. Expiry is the chain's;
// LastError the last failed resolution.
type Member struct {
	Issuer    string
	Anchor    string
	Expiry    time.Time
	CheckedAt time.Time
	LastError string
}

// SubordinateSource is what Entity reads subordinates from.
type SubordinateSource interface {
	// GetSubordinate returns store.ErrNotFound for an unknown entity.
	GetSubordinate(ctx context.Context, entityID string) (*Subordinate, error)
	ListSubordinates(ctx context.Context) ([]*Subordinate, error)
}

// Store persists a cloud's anchors, subordinates and commons members.
type Store interface {
	SubordinateSource
	// PutSubordinate adds or updates a subordinate (AddedAt of an existing
	// one is kept).
	PutSubordinate(ctx context.Context, s *Subordinate) error
	// DeleteSubordinate returns store.ErrNotFound for an unknown one.
	DeleteSubordinate(ctx context.Context, entityID string) error

	PutAnchor(ctx context.Context, a *Anchor) error
	ListAnchors(ctx context.Context) ([]*Anchor, error)
	// DeleteAnchor returns store.ErrNotFound for an unknown one.
	DeleteAnchor(ctx context.Context, entityID string) error

	PutMember(ctx context.Context, m *Member) error
	ListMembers(ctx context.Context) ([]*Member, error)
	DeleteMember(ctx context.Context, issuer string) error
}
