package oidc

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"

	"github.com/ory/fosite"
)

// Audience-bound access tokens (RFC 8707 resource indicators, and the
// audience parameter).
//
// A client asks for the APIs its token is for with resource (repeatable)
// or audience (space-separated or repeated), at the authorization and the
// token endpoints. Only the resources registered for the client (its
// resources member) may be asked for; anything else is invalid_target
// (RFC 8707 §2). The access token's aud is what was asked, or the
// client_id when nothing was, never the issuer: a resource server checks
// that its own identifier is in aud, and a token for one API is refused by
// another. A refresh may narrow the audience of the new access token to a
// subset of the grant's; the grant itself (and the refresh token) keeps
// all of it.

// maxResources bounds a client's registered resources.
const maxResources = 10

var errInvalidTarget = &fosite.RFC6749Error{ErrorField: "invalid_target", CodeField: http.StatusBadRequest,
	DescriptionField: "The requested resource is invalid, unknown, or not registered for this client."}

// resourcesOf returns the resources a request asks for: every resource
// value and the audience values.
func resourcesOf(form url.Values) []string {
	var out []string
	for _, v := range append(fosite.RemoveEmpty(form["resource"]), fosite.GetAudiences(form)...) {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// exactAudience is fosite's audience matching strategy: each requested
// audience is one of the client's, exactly (fosite's default would also
// accept any path below a registered URL).
func exactAudience(haystack []string, needle []string) error {
	for _, n := range needle {
		if !slices.Contains(haystack, n) {
			return errInvalidTarget.WithHintf("The resource %q is not registered for this client.", n)
		}
	}
	return nil
}

// askAudience validates the resources of an authorization request and
// records them as its requested audience (fosite has read audience
// already; resource is RFC 8707's).
func askAudience(ar fosite.AuthorizeRequester) error {
	asked := resourcesOf(ar.GetRequestForm())
	if err := exactAudience(ar.GetClient().GetAudience(), asked); err != nil {
		return err
	}
	ar.SetRequestedAudience(asked)
	return nil
}

// grantedAudience is the audience granted for a request: what it asked
// for, else the client itself.
func grantedAudience(r fosite.Requester) fosite.Arguments {
	if len(r.GetGrantedAudience()) > 0 {
		return r.GetGrantedAudience()
	}
	if len(r.GetRequestedAudience()) > 0 {
		return r.GetRequestedAudience()
	}
	return fosite.Arguments{r.GetClient().GetID()}
}

// grantAudienceKey carries, from the token endpoint to the store, the
// audience of the grant when the new access token was narrowed: the
// refresh token issued with it keeps the grant's whole audience.
type grantAudienceKey struct{}

// tokenAudience sets the audience of the tokens a token request is about
// to issue, and returns the context to issue them in.
func tokenAudience(ctx context.Context, ar fosite.AccessRequester) (context.Context, error) {
	req, ok := ar.(*fosite.AccessRequest)
	if !ok {
		return ctx, nil
	}
	asked := resourcesOf(ar.GetRequestForm())
	switch {
	case ar.GetGrantTypes().ExactOne("client_credentials"):
		if err := exactAudience(ar.GetClient().GetAudience(), asked); err != nil {
			return ctx, err
		}
		req.GrantedAudience = nil
		if len(asked) == 0 {
			asked = fosite.Arguments{ar.GetClient().GetID()}
		}
		req.RequestedAudience = asked
		req.GrantedAudience = slices.Clone(asked)
	case ar.GetGrantTypes().ExactOne("refresh_token"):
		grant := slices.Clone(req.GrantedAudience)
		if len(grant) == 0 {
			grant = fosite.Arguments{ar.GetClient().GetID()}
		}
		if err := exactAudience(grant, asked); err != nil {
			return ctx, err
		}
		req.GrantedAudience = grant
		if len(asked) > 0 {
			req.GrantedAudience = asked
			ctx = context.WithValue(ctx, grantAudienceKey{}, grant)
		}
	case ar.GetGrantTypes().ExactOne("authorization_code"):
		// The code carries the audience granted at the authorization
		// endpoint; asking here may only repeat it.
		if err := exactAudience(ar.GetClient().GetAudience(), asked); err != nil {
			return ctx, err
		}
		if len(asked) > 0 && len(req.RequestedAudience) > 0 {
			if err := exactAudience(req.RequestedAudience, asked); err != nil {
				return ctx, err
			}
		}
	}
	return ctx, nil
}

// withGrantAudience is r as the store keeps a refresh token: with the
// grant's audience when the access token issued with it was narrowed.
type withGrantAudience struct {
	fosite.Requester
	aud fosite.Arguments
}

func (w withGrantAudience) GetGrantedAudience() fosite.Arguments { return w.aud }

// checkResources validates the resources member of a registration:
// absolute https URIs (http on a loopback host), without a fragment, at
// most maxResources.
func checkResources(rs []string) error { return ValidateResources(rs, maxResources) }

// MaxCloudResources bounds Config.Resources.
const MaxCloudResources = 100

// ValidateResources checks resource identifiers (RFC 8707 §2): at most max
// absolute https URIs (http on a loopback host) without fragment.
func ValidateResources(rs []string, max int) error {
	if len(rs) > max {
		return fmt.Errorf("resources: at most %d", max)
	}
	for _, r := range rs {
		u, err := url.Parse(r)
		if err != nil || !u.IsAbs() || u.Host == "" {
			return fmt.Errorf("resources: %q is not an absolute URI", r)
		}
		if u.Fragment != "" || u.RawFragment != "" || len(r) > 0 && r[len(r)-1] == '#' {
			return fmt.Errorf("resources: %q has a fragment", r)
		}
		switch u.Scheme {
		case "https":
		case "http":
			if !isLoopbackHost(u.Hostname()) {
				return fmt.Errorf("resources: %q must be https (http only on a loopback host)", r)
			}
		default:
			return fmt.Errorf("resources: %q must be https", r)
		}
	}
	return nil
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
