package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// TokenVerifier checks access tokens from every member of a federation:
// it reads the trust list of the service's own cloud and verifies each
// token with the keys of the member that issued it.
type TokenVerifier struct {
	Cloud string // the issuer URL of the service's own cloud
	// HTTP fetches the trust list and the members' keys; nil means a
	// guarded client (package safehttp) that reaches loopback only when
	// Cloud is on a loopback host. Member keys are fetched from URLs the
	// members publish, so they must not reach the service's own network.
	HTTP *http.Client

	mu        sync.Mutex
	verifiers map[string]*oidc.IDTokenVerifier
}

// Load reads the trust list, GET {Cloud}/federation/v1/members; call it
// at start and now and then (members join and leave).
func (m *TokenVerifier) Load(ctx context.Context) error {
	client := m.HTTP
	if client == nil {
		client = guardedFor(m.Cloud).HTTPClient()
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, m.Cloud+"/federation/v1/members", nil)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("members of %s: %s", m.Cloud, resp.Status)
	}
	var list struct {
		Members []struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		} `json:"members"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxDocument)).Decode(&list); err != nil {
		return err
	}
	ctx = oidc.ClientContext(ctx, client)
	vs := map[string]*oidc.IDTokenVerifier{}
	for _, mem := range list.Members {
		keys := oidc.NewRemoteKeySet(ctx, mem.JWKSURI) // caches keys, refetches on an unknown kid
		vs[mem.Issuer] = oidc.NewVerifier(mem.Issuer, keys, &oidc.Config{
			SkipClientIDCheck:    true, // the expected audience is checked in Verify
			SupportedSigningAlgs: []string{"ES256", "EdDSA", "RS256"},
		})
	}
	m.mu.Lock()
	m.verifiers = vs
	m.mu.Unlock()
	return nil
}

// Verify checks a bearer token's signature, issuer and lifetime, that it
// is an RFC 9068 access token, and that audience (the resource server's own
// identifier: its registered resource URI, or its client_id) is in the
// token's aud (RFC 9068 §4): a token issued for another service is
// refused. It returns the token's claims.
func (m *TokenVerifier) Verify(ctx context.Context, token, audience string) (map[string]any, error) {
	if audience == "" {
		return nil, errors.New("no expected audience")
	}
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA, jose.RS256})
	if err != nil || len(tok.Headers) != 1 {
		return nil, errors.New("not a signed JWT")
	}
	if typ, _ := tok.Headers[0].ExtraHeaders["typ"].(string); !strings.EqualFold(typ, "at+jwt") {
		return nil, errors.New("not an access token")
	}
	var unverified struct {
		Issuer string `json:"iss"`
	}
	tok.UnsafeClaimsWithoutVerification(&unverified)
	m.mu.Lock()
	v := m.verifiers[unverified.Issuer]
	m.mu.Unlock()
	if v == nil {
		return nil, fmt.Errorf("%q is not a member of the federation", unverified.Issuer)
	}
	t, err := v.Verify(ctx, token)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(t.Audience, audience) {
		return nil, fmt.Errorf("the token is not for %q", audience)
	}
	var claims map[string]any
	return claims, t.Claims(&claims)
}
