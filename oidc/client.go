package oidc

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strings"

	"github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite"
)

// Supported values, as advertised in discovery.
var (
	SupportedScopes      = []string{"openid", "profile", "email", "address", "phone", "did", "commons", "offline_access"}
	SupportedAuthMethods = []string{"client_secret_basic", "client_secret_post", "private_key_jwt", "none"}
	SupportedGrantTypes  = []string{"authorization_code", "refresh_token", "client_credentials"}
	SupportedSigningAlgs = []string{"ES256", "EdDSA", "RS256"}
)

// Metadata is a client's registered metadata (RFC 7591 §2, OIDC Dynamic
// Client Registration §2), plus forked_from and source_code_uri.
type Metadata struct {
	ClientID                    string              `json:"client_id,omitempty"`
	RedirectURIs                []string            `json:"redirect_uris"`
	TokenEndpointAuthMethod     string              `json:"token_endpoint_auth_method"`
	TokenEndpointAuthSigningAlg string              `json:"token_endpoint_auth_signing_alg,omitempty"`
	GrantTypes                  []string            `json:"grant_types"`
	ResponseTypes               []string            `json:"response_types"`
	ClientName                  string              `json:"client_name,omitempty"`
	ClientURI                   string              `json:"client_uri,omitempty"`
	LogoURI                     string              `json:"logo_uri,omitempty"`
	Scope                       string              `json:"scope,omitempty"`
	Contacts                    []string            `json:"contacts,omitempty"`
	TOSURI                      string              `json:"tos_uri,omitempty"`
	PolicyURI                   string              `json:"policy_uri,omitempty"`
	SourceCodeURI               string              `json:"source_code_uri,omitempty"`
	JWKSURI                     string              `json:"jwks_uri,omitempty"`
	JWKS                        *jose.JSONWebKeySet `json:"jwks,omitempty"`
	SoftwareID                  string              `json:"software_id,omitempty"`
	SoftwareVersion             string              `json:"software_version,omitempty"`
	SectorIdentifierURI         string              `json:"sector_identifier_uri,omitempty"`
	SubjectType                 string              `json:"subject_type"`
	IDTokenSignedResponseAlg    string              `json:"id_token_signed_response_alg"`
	PostLogoutRedirectURIs      []string            `json:"post_logout_redirect_uris,omitempty"`
	ForkedFrom                  string              `json:"forked_from,omitempty"`
	// Resources are the protected resources (RFC 8707 resource indicators)
	// this client may ask access tokens for.
	Resources []string `json:"resources,omitempty"`
	// Sector is the pairwise sector of this client (OIDC Core 8.1): the
	// host of sector_identifier_uri, else of the redirect URIs. Computed at
	// registration.
	Sector string `json:"-"`
	// FamilySector is the sector of the family root when the client is a
	// fork; "" otherwise. Computed at registration.
	FamilySector string `json:"-"`
	// FamilyRoot is the client_id of the family root for a fork.
	FamilyRoot string `json:"-"`
	// Peer marks the client a peer cloud signs in through (brokered
	// sign-in); it is made by federation, never by registration.
	Peer bool `json:"-"`
	// Federation marks a client registered automatically through OpenID
	// Federation (autoreg.go); never set by registration.
	Federation *Federation `json:"-"`

	// AllowedCORSOrigins are origins (scheme://host[:port]) besides those
	// of the redirect URIs whose pages may call the token, UserInfo and
	// revocation endpoints (cors.go).
	AllowedCORSOrigins []string `json:"allowed_cors_origins,omitempty"`
	// BackchannelLogoutURI receives logout tokens (OpenID Connect
	// Back-Channel Logout 1.0, backchannel.go).
	BackchannelLogoutURI             string `json:"backchannel_logout_uri,omitempty"`
	BackchannelLogoutSessionRequired bool   `json:"backchannel_logout_session_required,omitempty"`

	// RequirePushedAuthorizationRequests: this client's authorization
	// requests are accepted only through /par (RFC 9126 §6, par.go).
	RequirePushedAuthorizationRequests bool `json:"require_pushed_authorization_requests,omitempty"`

	// DPoPBoundAccessTokens: this client's token requests must carry a
	// DPoP proof (RFC 9449 §5.2, dpop.go).
	DPoPBoundAccessTokens bool `json:"dpop_bound_access_tokens,omitempty"`

	// CommonsCommitments is the service's commitments document (package
	// terms), stored in its canonical form; CommonsForkReason says why a
	// fork publishes its parent's source code (terms.go).
	CommonsCommitments json.RawMessage `json:"commons_commitments,omitempty"`
	CommonsForkReason  string          `json:"commons_fork_reason,omitempty"`
	// OutsideTerms marks a service that does not meet the commons' terms
	// (terms.Check), decided at registration; TermsMissing says why.
	OutsideTerms bool     `json:"-"`
	TermsMissing []string `json:"-"`
	termsJudged  bool     // checkTerms ran (or x_terms was stored)
}

// storedMetadata is what the clients table holds: the public metadata and
// the computed fields.
type storedMetadata struct {
	Metadata
	Sector       string `json:"x_sector"`
	FamilySector string `json:"x_family_sector,omitempty"`
	FamilyRoot   string `json:"x_family_root,omitempty"`
	Peer         bool   `json:"x_peer,omitempty"`
	// Federation: see Metadata.Federation.
	Federation *Federation `json:"x_federation,omitempty"`
	// Terms is "met" or "outside" (Metadata.OutsideTerms); "" for a
	// client stored before the terms, judged when read (terms.go).
	Terms        string   `json:"x_terms,omitempty"`
	TermsMissing []string `json:"x_terms_missing,omitempty"`
}

func encodeMetadata(m *Metadata) ([]byte, error) {
	return json.Marshal(storedMetadata{Metadata: *m, Sector: m.Sector, FamilySector: m.FamilySector, FamilyRoot: m.FamilyRoot, Peer: m.Peer, Federation: m.Federation,
		Terms: termsLabel(m), TermsMissing: m.TermsMissing})
}

func decodeMetadata(b []byte) (*Metadata, error) {
	var s storedMetadata
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, err
	}
	m := s.Metadata
	m.Sector, m.FamilySector, m.FamilyRoot, m.Peer = s.Sector, s.FamilySector, s.FamilyRoot, s.Peer
	m.Federation = s.Federation
	decodeTerms(&m, s.Terms, s.TermsMissing)
	return &m, nil
}

// Client is a registered service, as fosite sees it.
type Client struct {
	Metadata
	SecretHash string

	// authUsed is, on the per-request view made by asAuthenticatedWith,
	// the secret method the request actually used; "" on the registered
	// client.
	authUsed string

	// cloudResources are the resources the cloud lets every client ask
	// for (Config.Resources), set when the client is read.
	cloudResources []string
}

var (
	_ fosite.Client              = (*Client)(nil)
	_ fosite.OpenIDConnectClient = (*Client)(nil)
)

func clientFromStored(sc *StoredClient) (*Client, error) {
	m, err := decodeMetadata(sc.Metadata)
	if err != nil {
		return nil, err
	}
	m.ClientID = sc.ClientID
	return &Client{Metadata: *m, SecretHash: sc.SecretHash}, nil
}

// GetID returns the client_id.
func (c *Client) GetID() string { return c.ClientID }

// GetHashedSecret returns the stored hash of the secret.
func (c *Client) GetHashedSecret() []byte { return []byte(c.SecretHash) }

// GetRedirectURIs returns the registered redirect URIs.
func (c *Client) GetRedirectURIs() []string { return c.RedirectURIs }

// GetGrantTypes returns the allowed grant types.
func (c *Client) GetGrantTypes() fosite.Arguments { return c.GrantTypes }

// GetResponseTypes returns the allowed response types.
func (c *Client) GetResponseTypes() fosite.Arguments { return c.ResponseTypes }

// GetScopes returns the scopes the client may ask for.
func (c *Client) GetScopes() fosite.Arguments {
	out := slices.Clone(SupportedScopes)
	for _, s := range strings.Fields(c.Scope) {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// IsPublic reports a client without a secret (token_endpoint_auth_method none).
func (c *Client) IsPublic() bool { return c.TokenEndpointAuthMethod == "none" }

// GetAudience returns the audiences the client may request: its registered
// resources and its own client_id, the audience of a token when none was
// asked (so that a refresh keeps it).
func (c *Client) GetAudience() fosite.Arguments {
	out := append(slices.Clone(c.Resources), c.cloudResources...)
	return append(out, c.ClientID)
}

// GetRequestURIs returns no request_uris: request objects are not supported.
func (c *Client) GetRequestURIs() []string { return nil }

// GetJSONWebKeys returns the client's registered keys.
func (c *Client) GetJSONWebKeys() *jose.JSONWebKeySet { return c.JWKS }

// GetJSONWebKeysURI returns the client's jwks_uri.
func (c *Client) GetJSONWebKeysURI() string { return c.JWKSURI }

// GetRequestObjectSigningAlgorithm: request objects are not supported.
func (c *Client) GetRequestObjectSigningAlgorithm() string { return "" }

// GetTokenEndpointAuthMethod returns the registered method, or, on the view
// of a request that authenticated with the other secret method, that method
// (see asAuthenticatedWith).
func (c *Client) GetTokenEndpointAuthMethod() string {
	if c.authUsed != "" {
		return c.authUsed
	}
	return c.TokenEndpointAuthMethod
}

// secretMethod reports the two methods that present the client secret
// itself, in the Authorization header or in the body.
func secretMethod(m string) bool { return m == "client_secret_basic" || m == "client_secret_post" }

// asAuthenticatedWith returns the client as a request that used method
// should see it. A client holding a secret may present it either way, as
// Keycloak and Dex allow: stock libraries pick one or the other (or try
// both), and the secret proves the same thing in both places. Every other
// combination (a private_key_jwt client sending a secret, a secret client
// sending an assertion) sees the registered method and is refused by the
// usual check. The registered client is never changed: it may be shared
// through the client cache.
func (c *Client) asAuthenticatedWith(method string) *Client {
	if method == c.TokenEndpointAuthMethod || !secretMethod(method) || !secretMethod(c.TokenEndpointAuthMethod) {
		return c
	}
	v := *c
	v.authUsed = method
	return &v
}

// GetTokenEndpointAuthSigningAlgorithm returns the private_key_jwt algorithm.
func (c *Client) GetTokenEndpointAuthSigningAlgorithm() string {
	if c.TokenEndpointAuthSigningAlg == "" {
		return "RS256"
	}
	return c.TokenEndpointAuthSigningAlg
}

// SigningAlg is the algorithm of this client's ID and access tokens.
func (c *Client) SigningAlg() string {
	if slices.Contains(SupportedSigningAlgs, c.IDTokenSignedResponseAlg) {
		return c.IDTokenSignedResponseAlg
	}
	return "ES256"
}

// DisplayName is the name shown to people.
func (c *Client) DisplayName() string {
	if c.ClientName != "" {
		return c.ClientName
	}
	if len(c.RedirectURIs) > 0 {
		if u, err := url.Parse(c.RedirectURIs[0]); err == nil {
			return u.Host
		}
	}
	return c.ClientID
}

// secretHasher compares client secrets by SHA-256. Client secrets are 256-bit
// random values made by the server, so a slow password hash adds nothing.
type secretHasher struct{}

func hashSecret(secret []byte) string {
	sum := sha256.Sum256(secret)
	return hex.EncodeToString(sum[:])
}

func (secretHasher) Hash(_ context.Context, data []byte) ([]byte, error) {
	return []byte(hashSecret(data)), nil
}

var errSecretMismatch = errors.New("client secret mismatch")

func (secretHasher) Compare(_ context.Context, hash, data []byte) error {
	if len(hash) == 0 || subtle.ConstantTimeCompare(hash, []byte(hashSecret(data))) != 1 {
		return errSecretMismatch
	}
	return nil
}

// LookupClient returns a registered client.
func LookupClient(ctx context.Context, st Store, clientID string) (*Client, error) {
	sc, err := st.GetClient(ctx, clientID)
	if err != nil {
		return nil, err
	}
	return clientFromStored(sc)
}
