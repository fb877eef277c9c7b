package portable

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/onecommons/commonsid/access"
	"github.com/onecommons/commonsid/store"
)

// The contribution grant travels with the account: an export carries it
// (member "access"), an import restores it as this cloud's grant of the
// account, with its level, expiry, source and time. The notice id that set
// it stays behind: replays are refused per cloud.

func exportAccess(g *access.Grant) *Access {
	if g == nil {
		return nil
	}
	out := &Access{Level: g.Level, Source: g.Source, SetAt: g.SetAt.UTC()}
	if !g.ExpiresAt.IsZero() {
		t := g.ExpiresAt.UTC()
		out.ExpiresAt = &t
	}
	return out
}

func (s *Service) accessOf(ctx context.Context, did string) (*access.Grant, error) {
	if s.Access == nil {
		return nil, nil
	}
	g, err := s.Access.GetAccess(ctx, did)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return g, err
}

var (
	accessLevel  = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)
	accessSource = regexp.MustCompile(`^(operator|notice:[a-z][a-z0-9_-]{0,31})$`)
)

// checkAccess refuses a grant that could not have been written.
func checkAccess(a *Access) error {
	switch {
	case !accessLevel.MatchString(a.Level):
		return fmt.Errorf("%w: access: level %.40q", ErrMalformed, a.Level)
	case !accessSource.MatchString(a.Source):
		return fmt.Errorf("%w: access: source %.60q", ErrMalformed, a.Source)
	case a.Level != access.Basic && a.ExpiresAt == nil:
		return fmt.Errorf("%w: access: level %s without expires_at", ErrMalformed, a.Level)
	case a.SetAt.IsZero():
		return fmt.Errorf("%w: access: set_at", ErrMalformed)
	}
	return nil
}

// importAccess restores the file's grant (none: the account has none
// here either). Run inside the import's transaction.
func (s *Service) importAccess(ctx context.Context, did string, a *Access) error {
	if s.Access == nil {
		return nil
	}
	if a == nil {
		return s.Access.PutReplicaAccess(ctx, did, nil)
	}
	if err := checkAccess(a); err != nil {
		return err
	}
	g := &access.Grant{AccountDID: did, Level: strings.TrimSpace(a.Level), Source: a.Source, SetAt: a.SetAt.UTC()}
	if a.ExpiresAt != nil && a.Level != access.Basic {
		g.ExpiresAt = a.ExpiresAt.UTC()
	}
	return s.Access.PutReplicaAccess(ctx, did, g)
}
