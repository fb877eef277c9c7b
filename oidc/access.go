package oidc

import (
	"context"
	"slices"

	"github.com/onecommons/commonsid/access"
	"github.com/onecommons/commonsid/identity"
)

// releasedValues returns the values of the released claims of an account:
// claimValues, with the account's contribution level (commons_access,
// scope commons) read when it is released.
func (p *Provider) releasedValues(ctx context.Context, acct *identity.Account, released []string) (map[string]any, error) {
	out := claimValues(acct, released)
	if !slices.Contains(released, access.Claim) || p.Access == nil {
		return out, nil
	}
	v, err := p.Access(ctx, acct.DID)
	if err != nil {
		return nil, err
	}
	out[access.Claim] = v.Map()
	return out, nil
}
