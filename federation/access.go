package federation

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/onecommons/commonsid/access"
	"github.com/onecommons/commonsid/store"
)

// A person's contribution level (package access) travels with the account
// events of their replicas: account.created, account.updated and
// privacy.updated carry the home's grant as "access" to every peer that
// receives the account (whatever the sharing level: a peer that signs the
// person in needs it to release commons_access), and a peer replaces the
// grant it holds with the one the home sent, or drops it when the event
// carries none. Setting a grant on the home appends account.updated.

// AccessData is a contribution grant as peers receive it.
type AccessData struct {
	Level     string `json:"level"`
	ExpiresAt int64  `json:"expires_at,omitempty"` // microseconds since 1970; 0 for basic
	Source    string `json:"source"`
	SetAt     int64  `json:"set_at"`
}

var (
	peerLevel  = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)
	peerSource = regexp.MustCompile(`^(operator|notice:[a-z][a-z0-9_-]{0,31})$`)
)

// accessData is the home's grant of an account, nil when none or when
// this cloud keeps no grants.
func (f *Federation) accessData(ctx context.Context, did string) (*AccessData, error) {
	if f.Access == nil {
		return nil, nil
	}
	g, err := f.Access.GetAccess(ctx, did)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	ad := &AccessData{Level: g.Level, Source: g.Source, SetAt: g.SetAt.UnixMicro()}
	if !g.ExpiresAt.IsZero() {
		ad.ExpiresAt = g.ExpiresAt.UnixMicro()
	}
	return ad, nil
}

// putReplicaAccess stores the grant a replica's home sent (nil: none).
func (f *Federation) putReplicaAccess(ctx context.Context, did string, ad *AccessData) error {
	if f.Access == nil {
		return nil
	}
	if ad == nil {
		return f.Access.PutReplicaAccess(ctx, did, nil)
	}
	if !peerLevel.MatchString(ad.Level) || !peerSource.MatchString(ad.Source) || ad.SetAt <= 0 ||
		ad.Level != access.Basic && ad.ExpiresAt <= 0 {
		return fmt.Errorf("%w: access: not a contribution grant", ErrRejected)
	}
	g := &access.Grant{AccountDID: did, Level: ad.Level, Source: ad.Source, SetAt: time.UnixMicro(ad.SetAt).UTC()}
	if ad.ExpiresAt > 0 && ad.Level != access.Basic {
		g.ExpiresAt = time.UnixMicro(ad.ExpiresAt).UTC()
	}
	return f.Access.PutReplicaAccess(ctx, did, g)
}
