package federation

import (
	"context"
	"errors"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/privacy"
	"github.com/onecommons/commonsid/store"
)

// What of an account homed here a peer receives is the larger of:
//
//   - the person's federation sharing setting (none, public_profile, all),
//     the same for every peer;
//   - public_profile, for a peer the person lets sign them in (a peer
//     grant, privacy/peergrant.go: a consent whose client_id is the peer's
//     issuer), so that the cloud they visit holds the replica it signs
//     them in to, and no other peer learns anything more.
//
// Granting and revoking log privacy.updated, whose item carries the whole
// shareable account for a peer that now receives it and "not shared" for
// one that no longer does: it drops its replica.

// shareLevel is what of an account homed here the peer whose issuer is
// peer receives: none, public_profile or all. peer "" asks for what every
// peer receives. The grant is read once per account and page (ps).
func (f *Federation) shareLevel(ctx context.Context, ps *pageState, a *identity.Account, st *privacy.Settings, peer string) (string, error) {
	level := st.FederationSharing
	if level != ShareNone && level != "" || peer == "" {
		return level, nil
	}
	granted, ok := ps.grants[a.DID]
	if !ok {
		_, err := f.Store.GetConsent(ctx, a.DID, peer)
		switch {
		case err == nil:
			granted = true
		case !errors.Is(err, store.ErrNotFound):
			return "", err
		}
		if ps.grants == nil {
			ps.grants = map[string]bool{}
		}
		ps.grants[a.DID] = granted
	}
	if granted {
		return SharePublicProfile, nil
	}
	return ShareNone, nil
}
