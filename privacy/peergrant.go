package privacy

import "context"

// Peer grants: a person homed on this cloud lets another cloud of the
// commons (a peer) sign them in there, brokered through this cloud. The
// grant is a consent whose client_id is the peer's issuer URL, with the
// openid scope only, given on the home's peer consent page and revocable
// from the dashboard. It lasts until revoked (the consent lifetime of the
// person's settings applies to services, not to clouds).
//
// A grant is also a sharing choice: the peer it names receives the account
// at least at the public_profile level of federation sharing, whatever the
// person's federation_sharing setting, so that the visited cloud holds the
// replica it signs the person in to. Granting and revoking therefore log
// privacy.updated (never consent.granted or consent.revoked: a grant is no
// service's consent), and the peer receives or drops the replica at once.

// Activity kinds of peer grants.
const (
	ActivityPeerGranted = "peer.granted"
	ActivityPeerRevoked = "peer.revoked"
)

// PeerGrantStore keeps peer grants.
type PeerGrantStore interface {
	// PutPeerGrant stores c (ClientID: the peer's issuer) and logs
	// privacy.updated for the account, in one transaction.
	PutPeerGrant(ctx context.Context, c *Consent) error
	// DeletePeerGrant deletes the grant to peer and logs privacy.updated,
	// in one transaction; store.ErrNotFound when there is none.
	DeletePeerGrant(ctx context.Context, accountDID, peer string) error
}
