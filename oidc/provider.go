package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"

	"github.com/onecommons/commonsid/access"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/internal/httpx"
	"github.com/onecommons/commonsid/internal/limits"
	"github.com/onecommons/commonsid/internal/safehttp"
	"github.com/onecommons/commonsid/keys"
	"github.com/onecommons/commonsid/privacy"
	"github.com/onecommons/commonsid/terms"
)

// Pages renders person-facing pages (implemented by package web).
type Pages interface {
	Render(w http.ResponseWriter, r *http.Request, status int, page string, data map[string]any)
}

// Registration modes.
const (
	RegistrationOpen   = "open"
	RegistrationToken  = "token"
	RegistrationClosed = "closed"
)

// Config holds the provider's settings.
type Config struct {
	Issuer          string
	CodeLifespan    time.Duration // default 60 s
	AccessLifespan  time.Duration // default 15 min
	RefreshLifespan time.Duration // default 30 days
	IDTokenLifespan time.Duration // default 15 min
	// Registration is open, token (an initial access token is required) or
	// closed (admin CLI only).
	Registration string
	// RegistrationToken is the initial access token for mode "token".
	RegistrationToken string
	// ServiceTerms is the registration policy of the commons' terms
	// (terms.go): open (the default) or commons.
	ServiceTerms terms.Mode
	// GlobalSecret keys the HMAC of codes and refresh tokens (32 bytes,
	// the same on every replica).
	GlobalSecret []byte
	// SessionCookie is the name of the browser sign-on cookie.
	SessionCookie string
	// Outbound fetches sector_identifier_uri and jwks_uri documents (nil:
	// a guarded client that refuses loopback too).
	Outbound *safehttp.Client
	// Limits rate-limits the token and registration endpoints.
	Limits *limits.Limits
	// Resources are resource servers (RFC 8707 resource identifiers) that
	// every client may ask an access token for, besides those registered
	// for the client.
	Resources []string
}

// Provider is the OpenID provider.
type Provider struct {
	Config
	Store    Store
	Keys     *keys.Manager
	Accounts *identity.Service
	Sessions *identity.Sessions
	Privacy  privacy.Store
	Pages    Pages
	Log      *slog.Logger
	Now      func() time.Time
	// RevocationsAnnounced says that a revocation committed by any process
	// reaches this one at once (Store.OnTokensRevoked, as PostgreSQL's
	// LISTEN/NOTIFY does). Access tokens are then cached from the moment
	// they are issued, and their first use needs no database read. Without
	// it (SQLite, where the command line may revoke from another process)
	// a token is cached only once it has been read. It also turns on the
	// release cache (release.go), which needs every change of an account,
	// consent or settings announced the same way (the store calls
	// EventsAppended).
	RevocationsAnnounced bool
	// Federation hooks, nil when this cloud does not federate:
	// RemoteService finds a peer's service (forks across clouds),
	// PeerIntrospect answers introspection for a peer's access token
	// (handled false when the token is not a peer's), and Discovery adds
	// entries to the discovery document.
	RemoteService  func(ctx context.Context, issuer, clientID string) (*RemoteService, error)
	PeerIntrospect func(ctx context.Context, token string) (claims map[string]any, handled bool, err error)
	Discovery      map[string]any
	// ReplicaSubjects gives the pairwise subs of replicated accounts,
	// which hold no pairwise secret here (subject.go).
	ReplicaSubjects ReplicaSubjectFunc
	// Access gives an account's contribution level, the value of the
	// commons_access claim (access.go); nil: every account is basic.
	Access func(ctx context.Context, did string) (access.ClaimValue, error)
	// RPResolver resolves the trust chains of relying parties using
	// OpenID Federation automatic registration (autoreg.go); nil turns it
	// off.
	RPResolver RPResolver

	oauth     fosite.OAuth2Provider
	fconfig   *fosite.Config
	ring      *keyring
	fstore    *fositeStore
	release   releaseCache
	signer    *signer
	discovery []byte

	challenges challengeGuard // per-IP budget and live count of stored challenges (challenges.go)

	par parGuard // per-client budget of pushed authorization requests (par.go)

	autoreg autoregState // automatic registration (autoreg.go)

	cors corsOrigins      // origins of every registered client, for preflights (cors.go)
	bc   backchannelState // logout deliveries (backchannel.go)
}

// New builds a provider; call Mount to serve it.
func New(cfg Config, p *Provider) (*Provider, error) {
	p.Config = cfg
	if p.CodeLifespan == 0 {
		p.CodeLifespan = 60 * time.Second
	}
	if p.AccessLifespan == 0 {
		p.AccessLifespan = 15 * time.Minute
	}
	if p.RefreshLifespan == 0 {
		p.RefreshLifespan = 30 * 24 * time.Hour
	}
	if p.IDTokenLifespan == 0 {
		p.IDTokenLifespan = 15 * time.Minute
	}
	if p.Registration == "" {
		p.Registration = RegistrationOpen
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	if p.Outbound == nil {
		p.Outbound = strictOutbound()
	}
	if len(p.GlobalSecret) < 32 {
		return nil, errors.New("oidc: GlobalSecret must be at least 32 bytes")
	}
	if err := ValidateResources(p.Resources, MaxCloudResources); err != nil {
		return nil, fmt.Errorf("oidc: %w", err)
	}
	p.ring = newKeyring(p.Keys)
	p.signer = &signer{ring: p.ring, issuer: p.Issuer}
	fc := &fosite.Config{
		JWKSFetcherStrategy:            newJWKSFetcher(p.Outbound, p.Log),
		AccessTokenLifespan:            p.AccessLifespan,
		RefreshTokenLifespan:           p.RefreshLifespan,
		AuthorizeCodeLifespan:          p.CodeLifespan,
		IDTokenLifespan:                p.IDTokenLifespan,
		IDTokenIssuer:                  p.Issuer,
		AccessTokenIssuer:              p.Issuer,
		TokenURL:                       p.Issuer + "/token",
		GlobalSecret:                   p.GlobalSecret,
		ScopeStrategy:                  fosite.ExactScopeStrategy,
		AudienceMatchingStrategy:       exactAudience,
		EnforcePKCE:                    false,
		EnforcePKCEForPublicClients:    true,
		EnablePKCEPlainChallengeMethod: false,
		RefreshTokenScopes:             []string{"offline_access"},
		JWTScopeClaimKey:               jwt.JWTScopeFieldString,
		ClientSecretsHasher:            secretHasher{},
		MinParameterEntropy:            1, // the lowest fosite takes: state and nonce are optional (stateOptional)
		SendDebugMessagesToClients:     false,
		RedirectSecureChecker:          fosite.IsRedirectURISecureStrict,
		// The code row keeps what PKCE and OpenID Connect need at the token
		// endpoint (none of it secret), so that they read it from there.
		SanitationWhiteList: []string{"code_challenge", "code_challenge_method", "nonce", "max_age", "prompt",
			"acr_values", "id_token_hint", "claims", "redirect_uri", "scope", "response_type", "state"},
		HTTPClient: nil,

		// Pushed authorization requests (par.go): a request_uri lives a
		// minute; required per client, not cloud-wide
		// (require_pushed_authorization_requests).
		PushedAuthorizeContextLifespan:  PARLifetime,
		PushedAuthorizeRequestURIPrefix: parURIPrefix,
		IsPushedAuthorizeEnforced:       false,
	}
	fs := &fositeStore{st: p.Store, now: p.Now, refreshClaims: p.refreshIDClaims, cacheIssued: p.RevocationsAnnounced, resources: p.Resources}
	fs.access.ttl, fs.access.max = accessTTL, accessCacheMax
	p.release.ttl, p.release.max = releaseTTL, releaseCacheMax
	hmacStrategy := compose.NewOAuth2HMACStrategy(fc)
	strategy := &compose.CommonStrategy{
		CoreStrategy:               &oauth2.DefaultJWTStrategy{Signer: p.signer, HMACSHAStrategy: hmacStrategy, Config: fc},
		OpenIDConnectTokenStrategy: &openid.DefaultStrategy{Signer: p.signer, Config: fc},
		Signer:                     p.signer,
	}
	p.fconfig = fc
	p.fstore = fs
	p.oauth = compose.Compose(fc, fs, strategy,
		compose.OAuth2AuthorizeExplicitFactory,
		compose.OAuth2ClientCredentialsGrantFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		compose.OAuth2TokenRevocationFactory,
		compose.OAuth2TokenIntrospectionFactory,
		compose.OAuth2PKCEFactory,
		compose.OpenIDConnectExplicitFactory,
		compose.OpenIDConnectRefreshFactory,
		compose.PushedAuthorizeHandlerFactory,
	)
	for i, h := range fc.TokenEndpointHandlers {
		fc.TokenEndpointHandlers[i] = ownGrantOnly{h}
	}
	fc.TokenEndpointHandlers.Append(unsupportedGrant{config: fc}) // last (grants.go)
	fc.ClientAuthenticationStrategy = p.authenticateClient
	d, err := json.Marshal(p.discoveryDocument())
	if err != nil {
		return nil, err
	}
	p.discovery = d
	return p, nil
}

// Mount adds the provider's routes.
func (p *Provider) Mount(r chi.Router) {
	r.Get("/.well-known/openid-configuration", p.serveDiscovery)
	r.Get("/jwks.json", p.serveJWKS)
	r.Head("/.well-known/openid-configuration", p.serveDiscovery)
	r.Head("/jwks.json", p.serveJWKS)
	r.Options("/.well-known/openid-configuration", publicPreflight)
	r.Options("/jwks.json", publicPreflight)
	r.Group(func(r chi.Router) {
		r.Use(httpx.PageHeaders)
		r.Get("/authorize", p.authorize)
		r.Post("/authorize", p.authorize)
		r.Get("/authorize/resume", p.resume)
		r.Get("/consent", p.consentPage)
		r.With(crossOrigin).Post("/consent", p.consentSubmit)
		r.Get(PeerConsentPath, p.peerConsentPage)
		r.With(crossOrigin).Post(PeerConsentPath, p.peerConsentSubmit)
		r.Get("/logout", p.logout)
		r.With(crossOrigin).Post("/logout", p.logout)
	})
	r.With(p.Limits.PerIP(6000, time.Minute, true), p.corsFor(requestClientID)).Post("/token", p.token)
	r.With(p.corsFor(accessTokenClientID)).Get("/userinfo", p.userinfo)
	r.With(p.corsFor(accessTokenClientID)).Post("/userinfo", p.userinfo)
	r.With(p.corsFor(requestClientID)).Post("/revoke", p.revoke)
	r.Options("/token", p.preflight("POST"))
	r.Options("/userinfo", p.preflight("GET, POST"))
	r.Options("/revoke", p.preflight("POST"))
	r.Post("/introspect", p.introspect)
	r.With(p.Limits.PerIP(PARPerIP, PARWindow, true)).Post("/par", p.pushedAuthorize)
	// One budget for every registration write: an update fetches a
	// sector_identifier_uri as a registration does.
	regLimit := p.Limits.PerIP(20, time.Hour, true)
	r.With(regLimit).Post("/register", p.register)
	r.Get("/register/{client_id}", p.registrationRead)
	r.With(regLimit).Put("/register/{client_id}", p.registrationUpdate)
	r.With(regLimit).Delete("/register/{client_id}", p.registrationDelete)
}

func crossOrigin(next http.Handler) http.Handler {
	return http.NewCrossOriginProtection().Handler(next)
}

// DiscoveryDocument returns the discovery document as served (the
// openid_provider metadata of the cloud's entity configuration).
func (p *Provider) DiscoveryDocument() map[string]any {
	var d map[string]any
	json.Unmarshal(p.discovery, &d)
	return d
}

func (p *Provider) discoveryDocument() map[string]any {
	d := p.baseDiscovery()
	p.automaticDiscovery(d)
	for k, v := range p.Discovery {
		d[k] = v
	}
	return d
}

func (p *Provider) baseDiscovery() map[string]any {
	iss := p.Issuer
	return map[string]any{
		"issuer":                                                   iss,
		"authorization_endpoint":                                   iss + "/authorize",
		"token_endpoint":                                           iss + "/token",
		"userinfo_endpoint":                                        iss + "/userinfo",
		"jwks_uri":                                                 iss + "/jwks.json",
		"registration_endpoint":                                    iss + "/register",
		"end_session_endpoint":                                     iss + "/logout",
		"revocation_endpoint":                                      iss + "/revoke",
		"introspection_endpoint":                                   iss + "/introspect",
		"scopes_supported":                                         advertisedScopes(),
		"response_types_supported":                                 []string{"code"},
		"response_modes_supported":                                 []string{"query", "form_post"},
		"grant_types_supported":                                    SupportedGrantTypes,
		"subject_types_supported":                                  []string{"pairwise", "public"},
		"id_token_signing_alg_values_supported":                    SupportedSigningAlgs,
		"token_endpoint_auth_methods_supported":                    SupportedAuthMethods,
		"token_endpoint_auth_signing_alg_values_supported":         []string{"RS256", "ES256", "EdDSA"},
		"revocation_endpoint_auth_methods_supported":               SupportedAuthMethods,
		"introspection_endpoint_auth_methods_supported":            []string{"client_secret_basic", "client_secret_post", "private_key_jwt"},
		"code_challenge_methods_supported":                         []string{"S256"},
		"claims_supported":                                         append([]string{"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp"}, profileClaims...),
		"claims_parameter_supported":                               true,
		"claim_types_supported":                                    []string{"normal"},
		"request_parameter_supported":                              false,
		"request_uri_parameter_supported":                          false,
		"require_request_uri_registration":                         false,
		"prompt_values_supported":                                  []string{"none", "login", "consent", "select_account"},
		"acr_values_supported":                                     acrValuesSupported,
		"frontchannel_logout_supported":                            false,
		"backchannel_logout_supported":                             true,
		"backchannel_logout_session_supported":                     true,
		"authorization_response_iss_parameter_supported":           true,
		"pushed_authorization_request_endpoint":                    iss + "/par",
		"access_token_signing_alg_values_supported":                SupportedSigningAlgs,
		"userinfo_signing_alg_values_supported":                    []string{},
		"service_documentation":                                    iss + "/",
		"op_policy_uri":                                            iss + "/",
		"require_pushed_authorization_requests":                    false,
		"tls_client_certificate_bound_access_tokens":               false,
		"dpop_signing_alg_values_supported":                        DPoPSigningAlgs,
		"registration_endpoint_auth_methods_supported":             []string{},
		"authorization_signing_alg_values_supported":               []string{},
		"introspection_endpoint_auth_signing_alg_values_supported": []string{"RS256", "ES256", "EdDSA"},
	}
}

func (p *Provider) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	writePublic(w, "application/json", "public, max-age=3600", p.discovery)
}

// writePublic answers with a document anyone may fetch and cache. The
// length is given so that the answer goes out in one piece, not chunked.
func writePublic(w http.ResponseWriter, contentType, cacheControl string, doc []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", cacheControl)
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Content-Length", strconv.Itoa(len(doc)))
	w.Write(doc)
}

func (p *Provider) serveJWKS(w http.ResponseWriter, r *http.Request) {
	doc, err := p.ring.JWKSDocument(r.Context())
	if err != nil {
		p.Log.ErrorContext(r.Context(), "jwks", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	// Short enough that a rotation reaches verifiers quickly; rotated-out
	// keys stay published until retired, so cached sets keep verifying.
	writePublic(w, "application/jwk-set+json", "public, max-age=300", doc)
}

func (p *Provider) now() time.Time { return p.Now().UTC() }

// ActiveKey returns the signing key of alg that tokens are signed with now:
// the active key of the snapshot the JWKS endpoint publishes, so that what
// is signed with it can always be verified with the published keys.
func (p *Provider) ActiveKey(ctx context.Context, alg string) (*keys.Signer, error) {
	return p.ring.signerFor(ctx, alg)
}

// TokensRevoked empties the provider's access-token and release caches;
// the store calls it whenever access tokens may have been revoked.
func (p *Provider) TokensRevoked() {
	p.fstore.access.flush()
	p.release.flush()
}

// EventsAppended empties the release cache; the store calls it whenever an
// account, consent or privacy settings may have changed (each such change
// appends an event).
func (p *Provider) EventsAppended() { p.release.flush() }

// context helper for background work that must outlive the request.
func detached(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

// ownGrantOnly asks a token endpoint handler to populate a response only for
// its own grant type. fosite calls every handler for every response, and one
// that does not handle the grant answers with an error carrying a captured
// stack trace: several of those per token request cost more CPU than signing
// the token. What is answered is unchanged, since fosite ignores
// ErrUnknownRequest there.
type ownGrantOnly struct{ fosite.TokenEndpointHandler }

func (h ownGrantOnly) PopulateTokenEndpointResponse(ctx context.Context, req fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !h.CanHandleTokenEndpointRequest(ctx, req) {
		return fosite.ErrUnknownRequest
	}
	return h.TokenEndpointHandler.PopulateTokenEndpointResponse(ctx, req, resp)
}
