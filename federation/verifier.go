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
	"time"

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
	pinned    map[string]jose.JSONWebKeySet // per peer issuer: the keys its cloud pinned
	loadedAt  time.Time
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
			Issuer  string              `json:"issuer"`
			JWKSURI string              `json:"jwks_uri"`
			JWKS    *jose.JSONWebKeySet `json:"jwks"`
		} `json:"members"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxDocument)).Decode(&list); err != nil {
		return err
	}
	ctx = oidc.ClientContext(ctx, client)
	vs := map[string]*oidc.IDTokenVerifier{}
	pinned := map[string]jose.JSONWebKeySet{}
	for _, mem := range list.Members {
		// A peer's keys are the ones the service's cloud pinned for it;
		// the cloud's own (and an older cloud's list without keys) come
		// from its jwks_uri, refetched on an unknown kid.
		var keys oidc.KeySet
		if mem.JWKS != nil {
			pinned[mem.Issuer] = *mem.JWKS
			keys = &pinnedKeys{issuer: mem.Issuer, m: m}
		} else {
			keys = oidc.NewRemoteKeySet(ctx, mem.JWKSURI)
		}
		vs[mem.Issuer] = oidc.NewVerifier(mem.Issuer, keys, &oidc.Config{
			SkipClientIDCheck:    true, // the expected audience is checked in Verify
			SupportedSigningAlgs: []string{"ES256", "EdDSA", "RS256"},
		})
	}
	m.mu.Lock()
	m.verifiers, m.pinned = vs, pinned
	m.loadedAt = time.Now()
	m.mu.Unlock()
	return nil
}

// pinnedKey returns the key kid pinned for a peer issuer. A kid not pinned
// makes it read the trust list again (the cloud may have pinned a vouched
// rotation since), at most every 10 seconds.
func (m *TokenVerifier) pinnedKey(ctx context.Context, issuer, kid string) (*jose.JSONWebKey, error) {
	for attempt := 0; ; attempt++ {
		m.mu.Lock()
		set, recent := m.pinned[issuer], time.Since(m.loadedAt) < 10*time.Second
		m.mu.Unlock()
		if ks := set.Key(kid); len(ks) > 0 {
			return &ks[0], nil
		}
		if attempt > 0 || recent {
			return nil, fmt.Errorf("key %q is not a key the cloud pinned for %s", kid, issuer)
		}
		if err := m.Load(ctx); err != nil {
			return nil, err
		}
	}
}

// pinnedKeys verifies a peer's tokens with the keys its cloud pinned.
type pinnedKeys struct {
	issuer string
	m      *TokenVerifier
}

func (k *pinnedKeys) VerifySignature(ctx context.Context, token string) ([]byte, error) {
	obj, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA, jose.RS256})
	if err != nil || len(obj.Signatures) != 1 {
		return nil, errors.New("not a signed JWT")
	}
	key, err := k.m.pinnedKey(ctx, k.issuer, obj.Signatures[0].Header.KeyID)
	if err != nil {
		return nil, err
	}
	return obj.Verify(key.Key)
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
