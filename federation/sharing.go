package federation

import (
	"context"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/privacy"
)

// shareLevel is what of an account homed here the peer whose issuer is
// peer receives: none, public_profile or all. peer "" asks for what every
// peer receives.
func (f *Federation) shareLevel(ctx context.Context, a *identity.Account, st *privacy.Settings, peer string) (string, error) {
	return st.FederationSharing, nil
}
