package oidc

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/onecommons/commonsid/internal/httpx"
	"github.com/onecommons/commonsid/internal/safehttp"
	"github.com/onecommons/commonsid/store"
	"github.com/onecommons/commonsid/terms"
)

// MetadataError is an invalid_client_metadata or invalid_redirect_uri error
// (RFC 7591 §3.2.2).
type MetadataError struct {
	Code        string // invalid_client_metadata | invalid_redirect_uri
	Description string
}

func (e *MetadataError) Error() string { return e.Code + ": " + e.Description }

func badMeta(format string, args ...any) error {
	return &MetadataError{"invalid_client_metadata", fmt.Sprintf(format, args...)}
}

func badRedirect(format string, args ...any) error {
	return &MetadataError{"invalid_redirect_uri", fmt.Sprintf(format, args...)}
}

// Registered is the answer to a registration: the metadata and the
// credentials, shown once.
type Registered struct {
	Metadata
	ClientSecret            string `json:"client_secret,omitempty"`
	ClientIDIssuedAt        int64  `json:"client_id_issued_at"`
	ClientSecretExpiresAt   int64  `json:"client_secret_expires_at"`
	RegistrationAccessToken string `json:"registration_access_token,omitempty"`
	RegistrationClientURI   string `json:"registration_client_uri,omitempty"`
	// CommonsTerms is "met" or "outside" (terms.go); CommonsTermsMissing
	// says what an outside service lacks.
	CommonsTerms        string   `json:"commons_terms,omitempty"`
	CommonsTermsMissing []string `json:"commons_terms_missing,omitempty"`
}

// Registrar validates and stores client registrations; it serves both the
// registration endpoint and the admin CLI.
type Registrar struct {
	Store  Store
	Issuer string
	// Outbound fetches sector_identifier_uri documents; nil means a guarded
	// client that refuses loopback too.
	Outbound *safehttp.Client
	Now      func() time.Time
	// RemoteService finds a peer's service for forks across clouds; nil
	// when this cloud does not federate.
	RemoteService func(ctx context.Context, issuer, clientID string) (*RemoteService, error)
	// Changed is told of every client registered (nil: nobody).
	Changed func(clientID string)
	// Terms is the cloud's registration policy (terms.go; "" is open).
	// Operator is set for the CLI and the admin API, which may register
	// a service outside the terms in any mode.
	Terms    terms.Mode
	Operator bool
}

// RegisterRequest is a registration: metadata plus an optional client-chosen
// secret (at least 32 bytes).
type RegisterRequest struct {
	Metadata
	ClientSecret string `json:"client_secret,omitempty"`
}

func randomString(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// MinSecretLength is the shortest client secret accepted.
const MinSecretLength = 32

// Register validates metadata, fills defaults, mints credentials and stores
// the client.
func (g *Registrar) Register(ctx context.Context, req *RegisterRequest) (*Registered, error) {
	md := req.Metadata
	if err := g.validate(ctx, &md); err != nil {
		return nil, err
	}
	id, err := randomString(18)
	if err != nil {
		return nil, err
	}
	md.ClientID = id
	out := &Registered{Metadata: md}
	registeredTerms(out)
	var secretHash string
	if md.TokenEndpointAuthMethod == "client_secret_basic" || md.TokenEndpointAuthMethod == "client_secret_post" {
		secret := req.ClientSecret
		if secret == "" {
			if secret, err = randomString(32); err != nil {
				return nil, err
			}
		} else if len(secret) < MinSecretLength {
			return nil, badMeta("client_secret must be at least %d bytes; omit it and one will be made for you", MinSecretLength)
		}
		out.ClientSecret = secret
		secretHash = hashSecret([]byte(secret))
	} else if req.ClientSecret != "" {
		return nil, badMeta("client_secret is only for client_secret_basic and client_secret_post")
	}
	regToken, err := randomString(32)
	if err != nil {
		return nil, err
	}
	raw, err := encodeMetadata(&md)
	if err != nil {
		return nil, err
	}
	now := g.Now().UTC()
	if err := g.Store.CreateClient(ctx, &StoredClient{ClientID: id, SecretHash: secretHash,
		RegistrationTokenHash: hashSecret([]byte(regToken)), Metadata: raw, CreatedAt: now, UpdatedAt: now}); err != nil {
		return nil, err
	}
	if g.Changed != nil {
		g.Changed(id)
	}
	out.ClientIDIssuedAt = now.Unix()
	out.RegistrationAccessToken = regToken
	out.RegistrationClientURI = g.Issuer + "/register/" + id
	return out, nil
}

var scopeToken = regexp.MustCompile(`^[A-Za-z0-9:._/-]{1,64}$`)

// validate checks and normalises metadata (RFC 7591 §2, OIDC Registration
// §2, OIDC Core §8.1).
func (g *Registrar) validate(ctx context.Context, md *Metadata) error {
	if err := checkMetadata(md); err != nil {
		return err
	}
	sector, err := g.sector(ctx, md)
	if err != nil {
		return err
	}
	md.Sector = sector
	md.FamilyRoot, md.FamilySector = "", ""
	if err := g.validateFork(ctx, md); err != nil {
		return err
	}
	return g.checkTerms(ctx, md) // terms.go
}

// checkMetadata is the part of validation that needs neither the network
// nor the store.
func checkMetadata(md *Metadata) error {
	if md.TokenEndpointAuthMethod == "" {
		md.TokenEndpointAuthMethod = "client_secret_basic"
	}
	if !slices.Contains(SupportedAuthMethods, md.TokenEndpointAuthMethod) {
		return badMeta("token_endpoint_auth_method %q is not supported (use one of %s)", md.TokenEndpointAuthMethod, strings.Join(SupportedAuthMethods, ", "))
	}
	if len(md.GrantTypes) == 0 {
		md.GrantTypes = []string{"authorization_code"}
	}
	for _, gt := range md.GrantTypes {
		if !slices.Contains(SupportedGrantTypes, gt) {
			return badMeta("grant type %q is not supported (implicit and password grants are not offered)", gt)
		}
	}
	if slices.Contains(md.GrantTypes, "client_credentials") && md.TokenEndpointAuthMethod == "none" {
		return badMeta("a public client (token_endpoint_auth_method none) cannot use client_credentials")
	}
	if len(md.ResponseTypes) == 0 && slices.Contains(md.GrantTypes, "authorization_code") {
		md.ResponseTypes = []string{"code"}
	}
	for _, rt := range md.ResponseTypes {
		if rt != "code" {
			return badMeta("response type %q is not supported: only code", rt)
		}
	}
	if slices.Contains(md.ResponseTypes, "code") != slices.Contains(md.GrantTypes, "authorization_code") {
		return badMeta("response_types code and grant_types authorization_code go together")
	}
	if slices.Contains(md.GrantTypes, "authorization_code") && len(md.RedirectURIs) == 0 {
		return badRedirect("redirect_uris is required for the authorization_code grant")
	}
	for _, u := range md.RedirectURIs {
		if err := checkRedirectURI(u, "redirect_uri"); err != nil {
			return badRedirect("%v", err)
		}
	}
	for _, u := range md.PostLogoutRedirectURIs {
		if err := checkRedirectURI(u, "post_logout_redirect_uri"); err != nil {
			return badMeta("%v", err)
		}
	}
	if err := checkResources(md.Resources); err != nil {
		return badMeta("%v", err)
	}
	for name, u := range map[string]string{"client_uri": md.ClientURI, "logo_uri": md.LogoURI, "policy_uri": md.PolicyURI,
		"tos_uri": md.TOSURI, "source_code_uri": md.SourceCodeURI, "jwks_uri": md.JWKSURI, "sector_identifier_uri": md.SectorIdentifierURI} {
		if u == "" {
			continue
		}
		if err := checkURL(u, name); err != nil {
			return badMeta("%v", err)
		}
	}
	if err := checkCORSOrigins(md.AllowedCORSOrigins); err != nil {
		return badMeta("%v", err)
	}
	if md.BackchannelLogoutURI != "" {
		if err := checkURL(md.BackchannelLogoutURI, "backchannel_logout_uri"); err != nil {
			return badMeta("%v", err)
		}
	} else if md.BackchannelLogoutSessionRequired {
		return badMeta("backchannel_logout_session_required needs a backchannel_logout_uri")
	}
	if len(md.ClientName) > 200 {
		return badMeta("client_name is longer than 200 characters")
	}
	for _, s := range strings.Fields(md.Scope) {
		if !scopeToken.MatchString(s) {
			return badMeta("scope %q is not a valid scope token", s)
		}
	}
	switch md.SubjectType {
	case "":
		md.SubjectType = "pairwise"
	case "pairwise", "public":
	default:
		return badMeta("subject_type must be pairwise or public")
	}
	switch md.IDTokenSignedResponseAlg {
	case "":
		md.IDTokenSignedResponseAlg = "ES256"
	case "ES256", "EdDSA", "RS256":
	default:
		return badMeta("id_token_signed_response_alg %q is not supported (ES256, EdDSA or RS256)", md.IDTokenSignedResponseAlg)
	}
	if md.TokenEndpointAuthMethod == "private_key_jwt" {
		if (md.JWKS == nil || len(md.JWKS.Keys) == 0) == (md.JWKSURI == "") {
			return badMeta("private_key_jwt needs exactly one of jwks or jwks_uri")
		}
	}
	if md.JWKS != nil {
		for _, k := range md.JWKS.Keys {
			if !k.Valid() || !k.IsPublic() {
				return badMeta("jwks must hold valid public keys only")
			}
		}
	}
	if md.TokenEndpointAuthSigningAlg != "" && !slices.Contains([]string{"RS256", "ES256", "EdDSA", "PS256"}, md.TokenEndpointAuthSigningAlg) {
		return badMeta("token_endpoint_auth_signing_alg %q is not supported", md.TokenEndpointAuthSigningAlg)
	}
	return nil
}

// validateFork joins a fork (forked_from: a client_id here, or
// ISSUER#CLIENT_ID on a peer) to its parent's family.
func (g *Registrar) validateFork(ctx context.Context, md *Metadata) error {
	if md.ForkedFrom != "" {
		if issuer, id, ok := strings.Cut(md.ForkedFrom, "#"); ok {
			return g.remoteFork(ctx, md, issuer, id)
		}
		sc, err := g.Store.GetClient(ctx, md.ForkedFrom)
		if errors.Is(err, store.ErrNotFound) {
			return badMeta("forked_from %q is not a service registered here", md.ForkedFrom)
		}
		if err != nil {
			return err
		}
		parent, err := clientFromStored(sc)
		if err != nil {
			return err
		}
		if parent.Peer {
			return badMeta("forked_from %q is not a service registered here", md.ForkedFrom)
		}
		md.FamilyRoot, md.FamilySector = parent.ClientID, parent.Sector
		if parent.FamilyRoot != "" {
			md.FamilyRoot, md.FamilySector = parent.FamilyRoot, parent.FamilySector
		}
	}
	return nil
}

// RemoteService is a service registered on a peer cloud, as replicated
// here: its public metadata and pairwise sectors.
type RemoteService struct {
	Metadata
	Issuer string
	// Unverified says why this cloud did not believe the sectors the peer
	// announced (federation/services.go); they are then empty, and forks
	// of the service are refused.
	Unverified string
}

// ParseRemoteService reads a peer's service announcement.
func ParseRemoteService(issuer string, raw []byte) (*RemoteService, error) {
	m, err := decodeMetadata(raw)
	if err != nil {
		return nil, err
	}
	var u struct {
		Unverified string `json:"x_unverified"`
	}
	json.Unmarshal(raw, &u)
	return &RemoteService{Metadata: *m, Issuer: issuer, Unverified: u.Unverified}, nil
}

// ForkFields reads the fork fields of a stored client's metadata: what it
// names as its parent and the family it joined.
func ForkFields(raw []byte) (forkedFrom, familyRoot, familySector string, err error) {
	m, err := decodeMetadata(raw)
	if err != nil {
		return "", "", "", err
	}
	return m.ForkedFrom, m.FamilyRoot, m.FamilySector, nil
}

// DetachedMetadata is a stored client's metadata taken out of its
// family: forked_from stays (it is what the registrant said), the family
// root and sector go, so that the service has its own sector only.
func DetachedMetadata(raw []byte) ([]byte, error) {
	m, err := decodeMetadata(raw)
	if err != nil {
		return nil, err
	}
	m.FamilyRoot, m.FamilySector = "", ""
	return encodeMetadata(m)
}

// remoteFork joins a fork to the family of a peer's service
// (forked_from: ISSUER#CLIENT_ID). The family root is named
// "issuer#client_id" here.
func (g *Registrar) remoteFork(ctx context.Context, md *Metadata, issuer, id string) error {
	if issuer == g.Issuer {
		md.ForkedFrom = id
		return g.validateFork(ctx, md)
	}
	if g.RemoteService == nil {
		return badMeta("forked_from names a service on another cloud (%s); this cloud does not federate", md.ForkedFrom)
	}
	parent, err := g.RemoteService(ctx, issuer, id)
	if errors.Is(err, store.ErrNotFound) {
		return badMeta("forked_from %q: no such service is known from %s (is that cloud a peer of this one?)", md.ForkedFrom, issuer)
	}
	if err != nil {
		return err
	}
	if parent.Unverified != "" {
		return badMeta("forked_from %q: this cloud did not verify %s's announcement of that service (%s), so a fork cannot join its family",
			md.ForkedFrom, issuer, parent.Unverified)
	}
	if parent.Sector == "" || (parent.FamilyRoot == "") != (parent.FamilySector == "") {
		return badMeta("forked_from %q: %s announced no verified pairwise sector for that service, so a fork cannot join its family",
			md.ForkedFrom, issuer)
	}
	md.FamilyRoot, md.FamilySector = issuer+"#"+parent.ClientID, parent.Sector
	if parent.FamilyRoot != "" {
		root := parent.FamilyRoot
		if !strings.Contains(root, "#") {
			root = issuer + "#" + root
		}
		md.FamilyRoot, md.FamilySector = root, parent.FamilySector
	}
	return nil
}

// checkURL allows absolute https URLs, or http on a loopback host, without
// fragments, user info, white space or control characters.
func checkURL(raw, what string) error {
	for _, c := range raw {
		if c <= ' ' || c == 0x7f || (c >= 0x80 && c <= 0x9f) || c == '\\' {
			return fmt.Errorf("%s %q must not contain white space, control characters or backslashes", what, raw)
		}
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("%s %q is not an absolute URL", what, raw)
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return fmt.Errorf("%s %q must not have a fragment", what, raw)
	}
	if u.User != nil {
		return fmt.Errorf("%s %q must not carry user info", what, raw)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return fmt.Errorf("%s %q must use https (http is allowed only on loopback hosts)", what, raw)
		}
	default:
		return fmt.Errorf("%s %q must use https", what, raw)
	}
	return nil
}

// checkRedirectURI is checkURL for the URIs a person is sent back to, which
// are compared as exact strings: a "*" is refused too, so that nobody takes
// it for a wildcard.
func checkRedirectURI(raw, what string) error {
	if err := checkURL(raw, what); err != nil {
		return err
	}
	if strings.Contains(raw, "*") {
		return fmt.Errorf("%s %q must not contain \"*\": redirect URIs are matched exactly, without wildcards", what, raw)
	}
	return nil
}

func isLoopback(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// sector computes the pairwise sector (OIDC Core 8.1): the host of
// sector_identifier_uri, whose JSON array must list every redirect URI, or
// the single host of the redirect URIs.
func (g *Registrar) sector(ctx context.Context, md *Metadata) (string, error) {
	if md.SectorIdentifierURI != "" {
		u, _ := url.Parse(md.SectorIdentifierURI)
		uris, err := g.fetchSector(ctx, md.SectorIdentifierURI)
		if err != nil {
			return "", badMeta("sector_identifier_uri: %v", err)
		}
		for _, r := range md.RedirectURIs {
			if !slices.Contains(uris, r) {
				return "", badMeta("sector_identifier_uri does not list redirect_uri %q", r)
			}
		}
		return u.Host, nil
	}
	hosts := map[string]bool{}
	for _, r := range md.RedirectURIs {
		u, _ := url.Parse(r)
		hosts[u.Host] = true
	}
	switch len(hosts) {
	case 0:
		return md.ClientID, nil // client_credentials only: no person ever sees it
	case 1:
		for h := range hosts {
			return h, nil
		}
	}
	if md.SubjectType == "public" {
		return "", nil
	}
	return "", badMeta("redirect_uris span several hosts: register a sector_identifier_uri (OIDC Core 8.1)")
}

// maxSectorDocument bounds a sector_identifier_uri document.
const maxSectorDocument = 64 << 10

// strictOutbound is the client of a Registrar without one: every rule of
// safehttp, loopback refused.
var strictOutbound = sync.OnceValue(func() *safehttp.Client { return safehttp.New(safehttp.Options{}) })

// fetchSector fetches the sector document through the guarded client. Its
// errors say only "could not fetch URL": the cause (what answered, or
// that nothing did) is logged by safehttp and never shown to the
// registrant, who may have pointed the URL at an internal service.
func (g *Registrar) fetchSector(ctx context.Context, raw string) ([]string, error) {
	out := g.Outbound
	if out == nil {
		out = strictOutbound()
	}
	body, err := out.Get(ctx, raw, "application/json", maxSectorDocument)
	if err != nil {
		return nil, err
	}
	var uris []string
	if err := json.Unmarshal(body, &uris); err != nil {
		return nil, fmt.Errorf("%s is not a JSON array of URLs", raw)
	}
	return uris, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeRegError(w http.ResponseWriter, err error) bool {
	var me *MetadataError
	if errors.As(err, &me) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": me.Code, "error_description": me.Description})
		return true
	}
	return false
}

func (p *Provider) registrar() *Registrar {
	return &Registrar{Store: p.Store, Issuer: p.Issuer, Outbound: p.Outbound, Now: p.Now, RemoteService: p.RemoteService,
		Changed: p.clientChanged, Terms: p.ServiceTerms}
}

func readMetadata(w http.ResponseWriter, r *http.Request) (*RegisterRequest, bool) {
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_client_metadata", "error_description": "the body must be application/json"})
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRegistrationBody))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_client_metadata", "error_description": fmt.Sprintf("the body is not a JSON object of client metadata of at most %d KiB", maxRegistrationBody>>10)})
		return nil, false
	}
	req, err := ParseRegistration(body)
	if err != nil {
		writeRegError(w, err)
		return nil, false
	}
	return req, true
}

// maxRegistrationBody bounds a registration request.
const maxRegistrationBody = 64 << 10

// ParseRegistration reads a registration request (RFC 7591 §3.1): one JSON
// object. Unknown members are ignored (RFC 7591 §2), but a member given
// twice, or spelt with other letter case than a known one
// ("Redirect_URIs"), is refused: Go's JSON decoder would take the last of
// them, or match case-insensitively, so the server would act on metadata
// other than what a reader of the request sees.
func ParseRegistration(body []byte) (*RegisterRequest, error) {
	var req RegisterRequest
	if err := (httpx.StrictJSON{}).Decode(body, &req); err != nil {
		var ke *httpx.JSONKeyError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &ke):
			return nil, badMeta("%v", ke)
		case errors.As(err, &te):
			return nil, badMeta("the body is not a JSON object of client metadata: %s has the wrong type", te.Field)
		}
		return nil, badMeta("the body is not a JSON object of client metadata")
	}
	return &req, nil
}

// register is the RFC 7591 registration endpoint.
func (p *Provider) register(w http.ResponseWriter, r *http.Request) {
	switch p.Registration {
	case RegistrationClosed:
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "access_denied", "error_description": "registration is closed on this cloud; ask its operators"})
		return
	case RegistrationToken:
		tok := bearerToken(r)
		if tok == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(p.RegistrationToken)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token", "error_description": "an initial access token is required to register"})
			return
		}
	}
	req, ok := readMetadata(w, r)
	if !ok {
		return
	}
	if req.ClientID != "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_client_metadata", "error_description": "client_id is assigned by the server"})
		return
	}
	if introspectScopeRefused(req.Scope, "") {
		writeJSON(w, http.StatusBadRequest, errIntrospectScope)
		return
	}
	out, err := p.registrar().Register(r.Context(), req)
	if err != nil {
		if !writeRegError(w, err) {
			p.Log.ErrorContext(r.Context(), "register", "err", err)
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error"})
		}
		return
	}
	writeJSON(w, http.StatusCreated, out)
}

// registrationClient authenticates an RFC 7592 request.
func (p *Provider) registrationClient(w http.ResponseWriter, r *http.Request) (*StoredClient, bool) {
	id := chi.URLParam(r, "client_id")
	tok := bearerToken(r)
	sc, err := p.Store.GetClient(r.Context(), id)
	if err != nil || tok == "" || sc.RegistrationTokenHash == "" ||
		subtle.ConstantTimeCompare([]byte(sc.RegistrationTokenHash), []byte(hashSecret([]byte(tok)))) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token", "error_description": "the registration access token is not valid for this client"})
		return nil, false
	}
	return sc, true
}

func (p *Provider) registrationView(sc *StoredClient) (*Registered, error) {
	c, err := clientFromStored(sc)
	if err != nil {
		return nil, err
	}
	out := &Registered{Metadata: c.Metadata, ClientIDIssuedAt: sc.CreatedAt.Unix(),
		RegistrationClientURI: p.Issuer + "/register/" + sc.ClientID}
	registeredTerms(out)
	return out, nil
}

func (p *Provider) registrationRead(w http.ResponseWriter, r *http.Request) {
	sc, ok := p.registrationClient(w, r)
	if !ok {
		return
	}
	out, err := p.registrationView(sc)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error"})
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// registrationUpdate replaces the metadata (RFC 7592 §2.2); the secret and
// client_id stay.
func (p *Provider) registrationUpdate(w http.ResponseWriter, r *http.Request) {
	sc, ok := p.registrationClient(w, r)
	if !ok {
		return
	}
	req, ok := readMetadata(w, r)
	if !ok {
		return
	}
	if req.ClientID != sc.ClientID {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_client_metadata", "error_description": "client_id must match the registration"})
		return
	}
	if req.ClientSecret != "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_client_metadata", "error_description": "client_secret cannot be changed here"})
		return
	}
	old, err := clientFromStored(sc)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error"})
		return
	}
	if introspectScopeRefused(req.Scope, old.Scope) {
		writeJSON(w, http.StatusBadRequest, errIntrospectScope)
		return
	}
	md := req.Metadata
	g := p.registrar()
	if err := g.validate(r.Context(), &md); err != nil {
		if !writeRegError(w, err) {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error"})
		}
		return
	}
	if err := sectorKept(&old.Metadata, &md); err != nil {
		writeRegError(w, err)
		return
	}
	if (old.TokenEndpointAuthMethod == "none") != (md.TokenEndpointAuthMethod == "none") {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_client_metadata", "error_description": "a client cannot switch between public and confidential"})
		return
	}
	md.ClientID = sc.ClientID
	raw, err := encodeMetadata(&md)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error"})
		return
	}
	sc.Metadata, sc.UpdatedAt = raw, p.now()
	if err := p.Store.UpdateClient(r.Context(), sc); err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error"})
		return
	}
	p.clientChanged(sc.ClientID)
	out, _ := p.registrationView(sc)
	writeJSON(w, http.StatusOK, out)
}

func (p *Provider) registrationDelete(w http.ResponseWriter, r *http.Request) {
	sc, ok := p.registrationClient(w, r)
	if !ok {
		return
	}
	if err := p.Store.DeleteClient(r.Context(), sc.ClientID); err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error"})
		return
	}
	p.clientChanged(sc.ClientID)
	w.WriteHeader(http.StatusNoContent)
}

// clientChanged drops what this process keeps about a client that was
// registered, changed or deleted: its cached copy and the set of
// registered origins.
func (p *Provider) clientChanged(clientID string) {
	p.fstore.clients.forget(clientID)
	p.cors.invalidate()
}

// sectorKept refuses an update that would move a client to another
// pairwise sector (OIDC Core 8.1): every person's sub at the service would
// change, and each would silently become a new user of it. A client that
// has only ever been public, or that had no redirect URIs (client
// credentials only: nobody has a sub there yet), may change. To move the
// redirect URIs to another host, a sector_identifier_uri on the old
// sector's host that lists every new redirect URI keeps the sector.
func sectorKept(old, md *Metadata) error {
	if old.Sector == md.Sector || len(old.RedirectURIs) == 0 || (old.SubjectType == "public" && md.SubjectType == "public") {
		return nil
	}
	to := md.Sector
	if to == "" {
		to = "none"
	}
	return badMeta("this update would move the service from pairwise sector %q to %q, which changes every person's sub: "+
		"they would all appear as new users. Keep the redirect URIs on %s, or register a sector_identifier_uri on %s "+
		"whose JSON array lists every redirect URI (OIDC Core 8.1)", old.Sector, to, old.Sector, old.Sector)
}
