package oidc

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/onecommons/commonsid/store"
)

// EnsurePeerClient registers (or updates) the client a peer cloud uses to
// sign people in here (brokered sign-in): client_id is the peer's issuer,
// redirectURI its federation callback, authentication private_key_jwt
// with the keys at its jwks_uri, subject type public (sub is the account
// DID) and scope openid only.
func EnsurePeerClient(ctx context.Context, st Store, peerIssuer, redirectURI, jwksURI string, now time.Time) error {
	u, err := url.Parse(peerIssuer)
	if err != nil || u.Host == "" {
		return fmt.Errorf("peer issuer %q is not a URL", peerIssuer)
	}
	md := Metadata{
		ClientID: peerIssuer, RedirectURIs: []string{redirectURI},
		TokenEndpointAuthMethod: "private_key_jwt", TokenEndpointAuthSigningAlg: "ES256",
		GrantTypes: []string{"authorization_code"}, ResponseTypes: []string{"code"},
		ClientName: "Commons ID cloud " + u.Host, ClientURI: peerIssuer, JWKSURI: jwksURI,
		SubjectType: "public", IDTokenSignedResponseAlg: "ES256", Scope: "openid",
		Sector: u.Host, Peer: true,
	}
	raw, err := encodeMetadata(&md)
	if err != nil {
		return err
	}
	sc := &StoredClient{ClientID: peerIssuer, Metadata: raw, CreatedAt: now, UpdatedAt: now}
	if _, err := st.GetClient(ctx, peerIssuer); errors.Is(err, store.ErrNotFound) {
		return st.CreateClient(ctx, sc)
	} else if err != nil {
		return err
	}
	return st.UpdateClient(ctx, sc)
}
