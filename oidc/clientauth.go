package oidc

import (
	"context"
	"net/http"
	"net/url"

	"github.com/ory/fosite"
)

// Client authentication at the token, revocation and introspection
// endpoints.
//
// A client authenticates in exactly one way per request: its secret in
// the Authorization header (client_secret_basic), its secret in the body
// (client_secret_post), a signed assertion (private_key_jwt), or, for a
// public client, its client_id alone (none). A client registered with one
// of the two secret methods may use the other: stock libraries choose one
// on their own (openid-client posts, x/oauth2 tries Basic then posts after
// any error), and an answer must be about the grant, not about where the
// secret was put. A private_key_jwt client uses only its assertion.
// Presenting two credentials (a Basic header and client_secret, or an
// assertion and a secret) is refused with invalid_request: which one
// counts would otherwise depend on the order of the checks.

// authUsedKey carries, to fositeStore.GetClient, the method the request
// being authenticated uses.
type authUsedKey struct{}

// authMethodOf returns the authentication method a request uses, or an
// invalid_request error when it authenticates more than once or names two
// different clients.
func authMethodOf(r *http.Request, form url.Values) (string, error) {
	basicID, _, basic := r.BasicAuth()
	post := form.Has("client_secret")
	assertion := form.Has("client_assertion") || form.Has("client_assertion_type")
	n := 0
	for _, b := range []bool{basic, post, assertion} {
		if b {
			n++
		}
	}
	if n > 1 {
		return "", fosite.ErrInvalidRequest.WithHint("The client authenticates more than once: use exactly one of HTTP Basic, client_secret in the body, or client_assertion.")
	}
	if basic {
		if id, err := url.QueryUnescape(basicID); err == nil && form.Get("client_id") != "" && form.Get("client_id") != id {
			return "", fosite.ErrInvalidRequest.WithHint("The client_id in the body differs from the one in the Authorization header.")
		}
	}
	switch {
	case assertion:
		return "private_key_jwt", nil
	case basic:
		return "client_secret_basic", nil
	case post:
		return "client_secret_post", nil
	}
	return "none", nil
}

// authenticateClient is fosite's client authentication strategy: fosite's
// own checks (secret compared in constant time, assertion signature, jti
// replay, audience), on a view of the client that reports the secret
// method actually used (Client.asAuthenticatedWith).
func (p *Provider) authenticateClient(ctx context.Context, r *http.Request, form url.Values) (fosite.Client, error) {
	method, err := authMethodOf(r, form)
	if err != nil {
		return nil, err
	}
	// A pushed request that automatic registration authenticated
	// (autoreg.go), now without the credential it checked.
	if id, ok := ctx.Value(preAuthKey{}).(string); ok && method == "none" && id == form.Get("client_id") {
		return p.fstore.GetClient(ctx, id)
	}
	// A federation-registered client whose chain has expired is resolved
	// again before it authenticates.
	if err := p.renewFederated(ctx, assertionClientID(form)); err != nil {
		return nil, err
	}
	f, ok := p.oauth.(*fosite.Fosite)
	if !ok {
		return nil, fosite.ErrServerError.WithHint("client authentication is not configured")
	}
	return f.DefaultClientAuthenticationStrategy(context.WithValue(ctx, authUsedKey{}, method), r, form)
}

// authViewOf returns the view of c for the request being authenticated in
// ctx, if any.
func authViewOf(ctx context.Context, c *Client) *Client {
	if m, ok := ctx.Value(authUsedKey{}).(string); ok {
		return c.asAuthenticatedWith(m)
	}
	return c
}
