package oidc

import (
	"context"
	"net"
	"net/http"
	"strings"

	"github.com/ory/fosite"
)

// newAuthorizeRequest is fosite's NewAuthorizeRequest with redirect URIs
// matched as this cloud promises: exactly, as strings, except that a
// loopback redirect URI (http://127.0.0.1 or http://[::1], RFC 8252 §7.3)
// may name any port. fosite's own matching also lets such a request carry
// user info and compares the percent-decoded path, so that
// http://x@127.0.0.1:9/c%62 matches http://127.0.0.1:8/cb; here scheme,
// host, path and query must be byte for byte those registered, and user
// info is refused.
func (p *Provider) newAuthorizeRequest(ctx context.Context, r *http.Request) (fosite.AuthorizeRequester, error) {
	ar, err := p.oauth.NewAuthorizeRequest(ctx, r)
	if ar == nil || ar.GetClient() == nil || ar.GetRedirectURI() == nil {
		return ar, err
	}
	requested := ar.GetRequestForm().Get("redirect_uri")
	if requested == "" || redirectMatches(ar.GetClient().GetRedirectURIs(), requested) {
		return ar, err
	}
	// Clearing the redirect URI makes the request's errors render as a
	// page instead of a redirect to where the client never registered.
	if req, ok := ar.(*fosite.AuthorizeRequest); ok {
		req.RedirectURI = nil
	}
	return ar, fosite.ErrInvalidRequest.WithHint("The 'redirect_uri' parameter does not match any of the OAuth 2.0 Client's pre-registered redirect urls.")
}

// redirectMatches reports whether requested may be redirected to, given
// the registered redirect URIs.
func redirectMatches(registered []string, requested string) bool {
	for _, reg := range registered {
		if reg == requested || loopbackMatch(reg, requested) {
			return true
		}
	}
	return false
}

// loopbackMatch: both are http URIs on the same loopback IP literal, with
// no user info, and differ only in the port (RFC 8252 §7.3).
func loopbackMatch(registered, requested string) bool {
	rh, _, rrest, ok := splitLoopback(registered)
	if !ok {
		return false
	}
	qh, _, qrest, ok := splitLoopback(requested)
	return ok && rh == qh && rrest == qrest
}

// splitLoopback splits http://HOST[:PORT]REST, raw (no decoding), where HOST
// is 127.0.0.1 or [::1] and PORT is digits.
func splitLoopback(raw string) (host, port, rest string, ok bool) {
	s, ok := strings.CutPrefix(raw, "http://")
	if !ok {
		return "", "", "", false
	}
	i := strings.IndexAny(s, "/?#")
	if i < 0 {
		i = len(s)
	}
	authority, rest := s[:i], s[i:]
	if strings.HasPrefix(rest, "#") || strings.ContainsAny(authority, "@%") {
		return "", "", "", false
	}
	host, port = authority, ""
	if h, p, err := net.SplitHostPort(authority); err == nil {
		host, port = "["+h+"]", p
		if !strings.Contains(h, ":") {
			host = h
		}
		if p == "" || strings.Trim(p, "0123456789") != "" {
			return "", "", "", false
		}
	}
	if host != "127.0.0.1" && host != "[::1]" {
		return "", "", "", false
	}
	return host, port, rest, true
}
