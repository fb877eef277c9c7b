package sqlstore

import (
	"context"

	"github.com/onecommons/commonsid/privacy"
)

// Peer grants (privacy/peergrant.go) are consent rows whose client_id is a
// peer cloud's issuer; they log privacy.updated, so that the feed serves
// the account to the peer the grant names (federation/sharing.go), or stops.

// PutPeerGrant stores a person's grant to a peer cloud and logs
// privacy.updated, in one transaction.
func (d *DB) PutPeerGrant(ctx context.Context, c *privacy.Consent) error {
	return d.withEvent(ctx, "privacy.updated", c.AccountDID, nil, func(ctx context.Context) error {
		return d.putConsent(ctx, c)
	})
}

// DeletePeerGrant deletes a person's grant to a peer cloud and logs
// privacy.updated, in one transaction; store.ErrNotFound when there is none.
func (d *DB) DeletePeerGrant(ctx context.Context, did, peer string) error {
	return d.withEvent(ctx, "privacy.updated", did, nil, func(ctx context.Context) error {
		return d.deleteConsent(ctx, did, peer)
	})
}
