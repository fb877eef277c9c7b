package privacy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/onecommons/commonsid/store"
)

// GrantRevoker deletes the tokens a service holds for a person.
type GrantRevoker interface {
	DeleteGrantsOf(ctx context.Context, subject, clientID string) (int, error)
}

// Service applies the person's decisions.
type Service struct {
	Store  Store
	Grants GrantRevoker
	Now    func() time.Time
}

// ErrNoConsent reports a service the person has not consented to.
var ErrNoConsent = errors.New("no consent for this service")

// Settings returns the person's settings, or the defaults.
func (s *Service) Settings(ctx context.Context, did string) (*Settings, error) {
	st, err := s.Store.GetSettings(ctx, did)
	if errors.Is(err, store.ErrNotFound) {
		return DefaultSettings(), nil
	}
	return st, err
}

// UpdateSettings validates and stores new settings, bumping the version,
// and logs the change. It applies to the next issuance.
func (s *Service) UpdateSettings(ctx context.Context, did string, next *Settings, meta ActivityMeta) error {
	if err := next.Validate(); err != nil {
		return err
	}
	return s.Store.InTx(ctx, func(ctx context.Context) error {
		cur, err := s.Settings(ctx, did)
		if err != nil {
			return err
		}
		next.Version = cur.Version + 1
		now := s.Now().UTC()
		if err := s.Store.PutSettings(ctx, did, next, now); err != nil {
			return err
		}
		return s.Store.AppendActivity(ctx, meta.entry(did, now, "settings.updated", "", map[string]any{"version": next.Version}))
	})
}

// ActivityMeta is where a change came from.
type ActivityMeta struct {
	IP, UserAgent string
}

func (m ActivityMeta) entry(did string, at time.Time, kind, clientID string, detail map[string]any) *Activity {
	return &Activity{AccountDID: did, At: at, Kind: kind, ClientID: clientID, Detail: detail, IP: m.IP, UserAgent: m.UserAgent}
}

// Revoke takes back a consent: the service's refresh and access tokens are
// deleted in the same transaction, so its next UserInfo call gets 401,
// introspection answers active: false and refresh fails.
func (s *Service) Revoke(ctx context.Context, did, clientID string, meta ActivityMeta) error {
	return s.Store.InTx(ctx, func(ctx context.Context) error {
		if err := s.Store.DeleteConsent(ctx, did, clientID); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return ErrNoConsent
			}
			return fmt.Errorf("revoke consent %s: %w", clientID, err)
		}
		n, err := s.Grants.DeleteGrantsOf(ctx, did, clientID)
		if err != nil {
			return fmt.Errorf("revoke tokens of %s: %w", clientID, err)
		}
		return s.Store.AppendActivity(ctx, meta.entry(did, s.Now().UTC(), ActivityRevoked, clientID, map[string]any{"tokens_revoked": n}))
	})
}
