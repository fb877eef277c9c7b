package oidc

import (
	"context"
	"strings"

	"github.com/ory/fosite"
)

// unsupportedGrant answers a token request whose grant type no handler
// takes with unsupported_grant_type (RFC 6749 §5.2), where fosite would say
// invalid_request: a client asking for the password or device-code grant
// learns that the grant, not its request, is the problem. It must be the
// last token endpoint handler; it takes a request only when none of the
// others can.
type unsupportedGrant struct{ config *fosite.Config }

func (u unsupportedGrant) CanHandleTokenEndpointRequest(ctx context.Context, req fosite.AccessRequester) bool {
	for _, h := range u.config.TokenEndpointHandlers {
		if _, self := h.(unsupportedGrant); !self && h.CanHandleTokenEndpointRequest(ctx, req) {
			return false
		}
	}
	return len(req.GetGrantTypes()) > 0
}

// CanSkipClientAuth is false: an unauthenticated client hears invalid_client
// first, as for every grant.
func (unsupportedGrant) CanSkipClientAuth(context.Context, fosite.AccessRequester) bool { return false }

func (unsupportedGrant) HandleTokenEndpointRequest(ctx context.Context, req fosite.AccessRequester) error {
	grant := strings.Join(req.GetGrantTypes(), " ")
	if len(grant) > 100 {
		grant = grant[:100]
	}
	return fosite.ErrUnsupportedGrantType.WithHintf("The grant type %q is not supported.", grant)
}

func (unsupportedGrant) PopulateTokenEndpointResponse(context.Context, fosite.AccessRequester, fosite.AccessResponder) error {
	return fosite.ErrUnknownRequest
}
