package oidc

// Automatic registration (OpenID Federation 1.0 §12.1). A relying party
// that speaks OpenID Federation uses its entity identifier (an https URL)
// as its client_id and is not registered beforehand: its first
// authorization request carries a request object signed with one of the
// keys of its openid_relying_party metadata, or is pushed to /par with
// such a request object or a private_key_jwt assertion. The provider then
//
//  1. resolves the relying party's trust chain to a trust anchor this cloud
//     accepts (RPResolver; invalid_trust_anchor or invalid_trust_chain when
//     there is none),
//  2. reads its metadata from the chain and validates it as a registration
//     (redirect URIs, sector, fork; token_endpoint_auth_method must be
//     private_key_jwt, with jwks or jwks_uri), refusing a "commons" trust
//     mark that does not verify (invalid_client_metadata naming it),
//  3. verifies the request object (signature with those keys, iss and
//     client_id the entity identifier, aud exactly this issuer, no sub, exp
//     within MaxRequestObjectLifetime, a jti used once) or the assertion,
//  4. checks the redirect_uri against the chain's redirect_uris, and only
//     then stores the client: like a dynamic client, without secret or
//     registration access token, marked federation-registered with the
//     chain's expiry and whether it carries the anchor's "commons service"
//     trust mark.
//
// A registration is used until the chain's expiry; after it the chain is
// resolved again at the next authorization, push or client authentication
// (a relying party the anchor dropped is then refused). None of these
// refusals is redirected to the client: trust was not established, so its
// redirect URI is not trusted either (§12.1.3). A federation-registered
// client must always prove its keys: a plain authorization request
// without request object or push is refused.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	josev3 "github.com/go-jose/go-jose/v3"
	"github.com/go-jose/go-jose/v4"
	"github.com/ory/fosite"

	"github.com/onecommons/commonsid/internal/safehttp"
	"github.com/onecommons/commonsid/store"
)

// FederatedRP is a relying party whose trust chain resolved to a trust
// anchor this cloud accepts.
type FederatedRP struct {
	EntityID    string
	TrustAnchor string
	// Metadata is the relying party's openid_relying_party metadata as the
	// chain resolves it: a JSON object of client metadata.
	Metadata json.RawMessage
	// Expires is the chain's expiry: the least exp of its statements.
	Expires time.Time
	// CommonsService: the chain carries the anchor's "commons service"
	// trust mark, verified.
	CommonsService bool
	// BadTrustMarks are the types of trust marks the entity presents as
	// issued by the anchor that do not verify.
	BadTrustMarks []string
}

// RPResolver resolves relying parties' trust chains. Its errors are
// *TrustError when the chain is the problem; any other error is taken
// for one too (invalid_trust_chain), since what failed was reached from
// outside.
type RPResolver interface {
	ResolveRP(ctx context.Context, entityID string) (*FederatedRP, error)
}

// TrustError is a trust chain that did not resolve.
type TrustError struct {
	Code        string // invalid_trust_anchor | invalid_trust_chain
	Description string
}

func (e *TrustError) Error() string { return e.Code + ": " + e.Description }

// Federation is what a stored client registered through OpenID Federation
// carries.
type Federation struct {
	TrustAnchor    string `json:"trust_anchor"`
	Expires        int64  `json:"expires"` // Unix seconds: the chain's expiry
	CommonsService bool   `json:"commons_service,omitempty"`
}

// Automatic registration bounds.
const (
	// MaxRequestObjectLifetime bounds how far ahead a request object's exp
	// may lie; its jti is remembered until then.
	MaxRequestObjectLifetime = time.Hour
	// MaxRequestObjectBytes bounds a request object before it is parsed.
	MaxRequestObjectBytes = 64 << 10
	// maxEntityIDBytes bounds a client_id taken for an entity identifier.
	maxEntityIDBytes = 512
	// requestObjectSkew is the tolerance on iat and nbf.
	requestObjectSkew = time.Minute
)

// RequestObjectAlgs are the algorithms a request object may be signed with.
var RequestObjectAlgs = []string{"ES256", "ES384", "ES512", "EdDSA", "RS256", "PS256"}

func requestObjectAlgs() []jose.SignatureAlgorithm {
	algs := make([]jose.SignatureAlgorithm, len(RequestObjectAlgs))
	for i, a := range RequestObjectAlgs {
		algs[i] = jose.SignatureAlgorithm(a)
	}
	return algs
}

// IsEntityID reports whether a client_id has the form of an entity
// identifier: an https URL with a host and no query, fragment or user
// info (plain http only on a loopback host, for development clouds).
func IsEntityID(s string) bool {
	if s == "" || len(s) > maxEntityIDBytes {
		return false
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(s, " \t\r\n#?") {
		return false
	}
	switch u.Scheme {
	case "https":
		return true
	case "http":
		return safehttp.IsLoopbackHost(u.Hostname())
	}
	return false
}

func fedError(code, hint string) *fosite.RFC6749Error {
	desc := map[string]string{
		"invalid_trust_anchor":    "The relying party's trust chain does not lead to a trust anchor this provider accepts.",
		"invalid_trust_chain":     "The relying party's trust chain cannot be validated.",
		"invalid_client_metadata": "The relying party's federation metadata is not acceptable.",
	}[code]
	return (&fosite.RFC6749Error{ErrorField: code, DescriptionField: desc, CodeField: http.StatusBadRequest}).WithHint(hint)
}

func badRequestObject(format string, args ...any) error {
	return fosite.ErrInvalidRequestObject.WithHintf(format, args...)
}

// federated returns the client entityID is registered as, resolving its
// trust chain when it is not registered or its registration has expired.
// fresh says the client was made from a chain just resolved and is not
// stored yet (saveFederated stores it). A stored
// client that is not federation-registered (a dynamic client, a peer) is
// answered with ok false: automatic registration does not apply to it.
func (p *Provider) federated(ctx context.Context, entityID string) (c *Client, fresh, ok bool, err error) {
	sc, err := p.Store.GetClient(ctx, entityID)
	switch {
	case err == nil:
		c, err = clientFromStored(sc)
		if err != nil {
			return nil, false, true, err
		}
		if c.Federation == nil {
			return nil, false, false, nil
		}
		if p.now().Before(time.Unix(c.Federation.Expires, 0)) {
			return c, false, true, nil
		}
	case !errors.Is(err, store.ErrNotFound):
		return nil, false, true, storeErr(err)
	}
	c, err = p.resolveFederated(ctx, entityID)
	return c, true, true, err
}

// resolveFederated resolves entityID's chain and makes its client (not
// stored).
func (p *Provider) resolveFederated(ctx context.Context, entityID string) (*Client, error) {
	rp, err := p.RPResolver.ResolveRP(ctx, entityID)
	if err != nil {
		var te *TrustError
		if errors.As(err, &te) {
			return nil, fedError(te.Code, te.Description)
		}
		return nil, fedError("invalid_trust_chain", "The trust chain of "+entityID+" could not be resolved.")
	}
	if rp.EntityID != entityID {
		return nil, fedError("invalid_trust_chain", "The trust chain resolved names another entity.")
	}
	if len(rp.BadTrustMarks) > 0 {
		return nil, fedError("invalid_client_metadata", "The trust mark "+rp.BadTrustMarks[0]+" does not verify.")
	}
	if !p.now().Before(rp.Expires) {
		return nil, fedError("invalid_trust_chain", "The trust chain has expired.")
	}
	var md Metadata
	if len(rp.Metadata) == 0 || json.Unmarshal(rp.Metadata, &md) != nil {
		return nil, fedError("invalid_client_metadata", "The chain carries no readable openid_relying_party metadata.")
	}
	var extra struct {
		RegistrationTypes []string `json:"client_registration_types"`
	}
	json.Unmarshal(rp.Metadata, &extra)
	if !slices.Contains(extra.RegistrationTypes, "automatic") {
		return nil, fedError("invalid_client_metadata", "client_registration_types must include automatic.")
	}
	if md.ClientID != "" && md.ClientID != entityID {
		return nil, fedError("invalid_client_metadata", "client_id in the metadata differs from the entity identifier.")
	}
	md.ClientID = ""
	if md.TokenEndpointAuthMethod == "" {
		md.TokenEndpointAuthMethod = "private_key_jwt"
	}
	if md.TokenEndpointAuthMethod != "private_key_jwt" {
		return nil, fedError("invalid_client_metadata", "Automatic registration needs token_endpoint_auth_method private_key_jwt.")
	}
	if md.TokenEndpointAuthSigningAlg == "" && md.JWKS != nil && len(md.JWKS.Keys) > 0 {
		md.TokenEndpointAuthSigningAlg = md.JWKS.Keys[0].Algorithm
	}
	if err := p.registrar().validate(ctx, &md); err != nil {
		var me *MetadataError
		if errors.As(err, &me) {
			return nil, fedError("invalid_client_metadata", me.Description)
		}
		return nil, err
	}
	md.ClientID = entityID
	md.Federation = &Federation{TrustAnchor: rp.TrustAnchor, Expires: rp.Expires.Unix(), CommonsService: rp.CommonsService}
	if rp.CommonsService {
		// The anchor vouches that the service keeps the commons' terms.
		md.OutsideTerms, md.TermsMissing = false, nil
	}
	c := &Client{Metadata: md}
	c.cloudResources = p.Resources
	return c, nil
}

// saveFederated stores a client made by resolveFederated, created or
// replacing the expired registration.
func (p *Provider) saveFederated(ctx context.Context, c *Client) error {
	raw, err := encodeMetadata(&c.Metadata)
	if err != nil {
		return err
	}
	now := p.now()
	sc := &StoredClient{ClientID: c.ClientID, Metadata: raw, CreatedAt: now, UpdatedAt: now}
	err = p.Store.CreateClient(ctx, sc)
	if errors.Is(err, store.ErrAlreadyExists) {
		old, gerr := p.Store.GetClient(ctx, c.ClientID)
		if gerr != nil {
			return storeErr(gerr)
		}
		oc, derr := clientFromStored(old)
		if derr != nil || oc.Federation == nil {
			return fedError("invalid_client_metadata", "This client_id is registered otherwise.")
		}
		// As for an RFC 7592 update: people's pairwise subs at the service
		// must not change behind their back.
		if err := sectorKept(&oc.Metadata, &c.Metadata); err != nil {
			return fedError("invalid_client_metadata", "The relying party's new metadata is refused: "+err.Error())
		}
		sc.CreatedAt = old.CreatedAt
		err = p.Store.UpdateClient(ctx, sc)
	}
	if err != nil {
		return storeErr(err)
	}
	p.clientChanged(c.ClientID)
	return nil
}

// clientKeys returns the keys c signs with: its jwks, or its jwks_uri
// fetched through the guarded client.
func (p *Provider) clientKeys(ctx context.Context, c *Client) (*josev3.JSONWebKeySet, error) {
	if c.JWKS != nil && len(c.JWKS.Keys) > 0 {
		return c.JWKS, nil
	}
	if c.JWKSURI != "" {
		ks, err := p.fconfig.JWKSFetcherStrategy.Resolve(ctx, c.JWKSURI, false)
		if err != nil {
			return nil, fedError("invalid_client_metadata", "The relying party's jwks_uri could not be fetched.")
		}
		return ks, nil
	}
	return nil, fedError("invalid_client_metadata", "The relying party publishes no keys.")
}

// verifyJWT checks a compact JWS against c's keys and returns its claims.
// typs are the accepted typ headers ("" accepts none given).
func (p *Provider) verifyJWT(ctx context.Context, c *Client, raw string, what string, typs ...string) (map[string]any, error) {
	if len(raw) > MaxRequestObjectBytes {
		return nil, badRequestObject("The %s is longer than %d bytes.", what, MaxRequestObjectBytes)
	}
	if strings.Count(raw, ".") != 2 {
		return nil, badRequestObject("The %s must be a signed JWT (compact JWS); encrypted or unsigned ones are not accepted.", what)
	}
	jws, err := jose.ParseSignedCompact(raw, requestObjectAlgs())
	if err != nil || len(jws.Signatures) != 1 {
		return nil, badRequestObject("The %s is not a JWT signed with one of %s.", what, strings.Join(RequestObjectAlgs, ", "))
	}
	h := jws.Signatures[0].Header
	if typ, _ := h.ExtraHeaders["typ"].(string); !slices.ContainsFunc(typs, func(t string) bool { return strings.EqualFold(t, typ) }) {
		return nil, badRequestObject("The %s has the typ %q; use %s.", what, typ, strings.Join(typs[1:], " or "))
	}
	if _, crit := h.ExtraHeaders["crit"]; crit {
		return nil, badRequestObject("The %s names a crit header, which is not understood here.", what)
	}
	keys, err := p.clientKeys(ctx, c)
	if err != nil {
		return nil, err
	}
	var payload []byte
	for _, k := range keys.Keys {
		if h.KeyID != "" && k.KeyID != h.KeyID || k.Use != "" && k.Use != "sig" || k.Algorithm != "" && k.Algorithm != h.Algorithm {
			continue
		}
		if out, err := jws.Verify(k.Key); err == nil {
			payload = out
			break
		}
	}
	if payload == nil {
		return nil, errWrongKey{badRequestObject("The %s is not signed by a key of the relying party's federation metadata.", what)}
	}
	var claims map[string]any
	d := json.NewDecoder(strings.NewReader(string(payload)))
	d.UseNumber()
	if err := d.Decode(&claims); err != nil || claims == nil {
		return nil, badRequestObject("The %s's claims are not a JSON object.", what)
	}
	return claims, nil
}

// errWrongKey is a JWT that no key of the relying party verifies.
type errWrongKey struct{ error }

func (e errWrongKey) Unwrap() error { return e.error }

// checkSignedClaims applies the rules shared by request objects and
// assertions: iss (and sub for assertions) the entity, aud exactly one of
// auds, exp present and within MaxRequestObjectLifetime, iat and nbf not in
// the future, jti present and never seen (recorded under namespace).
func (p *Provider) checkSignedClaims(ctx context.Context, claims map[string]any, entityID, what, namespace string, auds ...string) error {
	str := func(k string) string { s, _ := claims[k].(string); return s }
	num := func(k string) (time.Time, bool) {
		n, ok := claims[k].(json.Number)
		if !ok {
			return time.Time{}, false
		}
		f, err := n.Float64()
		if err != nil {
			return time.Time{}, false
		}
		return time.Unix(int64(f), 0), true
	}
	now := p.now()
	if str("iss") != entityID {
		return badRequestObject("The %s's iss must be the relying party's entity identifier.", what)
	}
	var aud []string
	switch a := claims["aud"].(type) {
	case string:
		aud = []string{a}
	case []any:
		for _, v := range a {
			s, _ := v.(string)
			aud = append(aud, s)
		}
	}
	if len(aud) != 1 || !slices.Contains(auds, aud[0]) {
		return badRequestObject("The %s's aud must be exactly %s.", what, auds[0])
	}
	exp, ok := num("exp")
	if !ok {
		return badRequestObject("The %s has no exp.", what)
	}
	if !now.Before(exp) {
		return badRequestObject("The %s has expired.", what)
	}
	if exp.After(now.Add(MaxRequestObjectLifetime)) {
		return badRequestObject("The %s expires more than an hour from now; sign it for a shorter time.", what)
	}
	for _, k := range []string{"iat", "nbf"} {
		if t, ok := num(k); ok && t.After(now.Add(requestObjectSkew)) {
			return badRequestObject("The %s's %s is in the future.", what, k)
		}
	}
	jti := str("jti")
	if jti == "" || len(jti) > 256 {
		return badRequestObject("The %s needs a jti (at most 256 characters).", what)
	}
	err := p.Store.UseClientAssertionJTI(ctx, sigHash(namespace+"\x00"+jti), exp, now)
	if errors.Is(err, store.ErrAlreadyExists) {
		return badRequestObject("The %s's jti was used before; a request object is used once.", what)
	}
	return storeErr(err)
}

// requestObjectParams verifies a request object of c (entityID) and
// returns the authorization parameters it carries.
func (p *Provider) requestObjectParams(ctx context.Context, c *Client, raw, entityID string) (url.Values, error) {
	claims, err := p.verifyJWT(ctx, c, raw, "request object", "", "oauth-authz-req+jwt", "JWT")
	if err != nil {
		return nil, err
	}
	if cid, _ := claims["client_id"].(string); cid != entityID {
		return nil, badRequestObject("The request object's client_id must be the relying party's entity identifier.")
	}
	if _, has := claims["sub"]; has {
		return nil, badRequestObject("A request object must not carry sub.")
	}
	if err := p.checkSignedClaims(ctx, claims, entityID, "request object", "request_object\x00"+entityID, p.Issuer); err != nil {
		return nil, err
	}
	return requestObjectForm(claims)
}

// requestObjectForm returns the authorization parameters a request
// object's claims carry: strings as they are, numbers and booleans in
// their JSON form, resource and audience arrays as repeated parameters,
// other objects and arrays (claims) as JSON. The JWT's own claims are
// left out.
func requestObjectForm(claims map[string]any) (url.Values, error) {
	form := url.Values{}
	for k, v := range claims {
		switch k {
		case "iss", "aud", "exp", "iat", "nbf", "jti", "trust_chain":
			continue
		case "request", "request_uri":
			return nil, badRequestObject("A request object must not carry %s.", k)
		}
		switch v := v.(type) {
		case string:
			form.Set(k, v)
		case json.Number:
			form.Set(k, v.String())
		case bool:
			form.Set(k, strconv.FormatBool(v))
		case []any:
			if k == "resource" || k == "audience" {
				for _, e := range v {
					s, ok := e.(string)
					if !ok {
						return nil, badRequestObject("%s must be strings.", k)
					}
					form.Add(k, s)
				}
				continue
			}
			b, _ := json.Marshal(v)
			form.Set(k, string(b))
		case map[string]any:
			b, _ := json.Marshal(v)
			form.Set(k, string(b))
		}
	}
	return form, nil
}

// automaticAuthorize handles an authorization request whose client_id is
// an entity identifier and which carries a request object: it registers
// (or renews) the client and returns the request object's parameters.
// handled is false when the client_id is registered otherwise (a dynamic
// client or a peer): automatic registration does not apply.
func (p *Provider) automaticAuthorize(ctx context.Context, outer url.Values) (form url.Values, handled bool, err error) {
	entityID := outer.Get("client_id")
	if err := p.peekRequestObject(outer.Get("request"), entityID); err != nil {
		return nil, true, err
	}
	c, fresh, ok, err := p.federated(ctx, entityID)
	if !ok || err != nil {
		return nil, ok, err
	}
	form, err = p.requestObjectParams(ctx, c, outer.Get("request"), entityID)
	var wrongKey errWrongKey
	if err != nil && !fresh && errors.As(err, &wrongKey) && p.autoreg.mayRenew(entityID, p.now()) {
		// The keys may have rotated since the registration: the chain
		// says which are current (asked at most once a minute, so that
		// bad signatures do not make this cloud fetch chains).
		if c, err = p.resolveFederated(ctx, entityID); err != nil {
			return nil, true, err
		}
		fresh = true
		form, err = p.requestObjectParams(ctx, c, outer.Get("request"), entityID)
	}
	if err != nil {
		return nil, true, err
	}
	if rt := outer.Get("response_type"); rt != "" && rt != form.Get("response_type") {
		return nil, true, badRequestObject("response_type differs inside and outside the request object.")
	}
	if ru := form.Get("redirect_uri"); ru == "" || !redirectMatches(c.RedirectURIs, ru) {
		return nil, true, fosite.ErrInvalidRequest.WithHint("The redirect_uri is not one of the redirect_uris of the relying party's federation metadata.")
	}
	if fresh {
		if err := p.saveFederated(ctx, c); err != nil {
			return nil, true, err
		}
	}
	return form, true, nil
}

// peekRequestObject reads a request object without verifying it, before
// anything is fetched for it: one that is not a signed JWT of entityID
// for this issuer is refused at once, so that junk makes this cloud
// resolve no chain. It may still be refused registered or not: it is
// verified once the keys are known.
func (p *Provider) peekRequestObject(raw, entityID string) error {
	if len(raw) > MaxRequestObjectBytes || strings.Count(raw, ".") != 2 {
		return badRequestObject("The request object must be a signed JWT (compact JWS) of at most %d bytes; encrypted or unsigned ones are not accepted.", MaxRequestObjectBytes)
	}
	jws, err := jose.ParseSignedCompact(raw, requestObjectAlgs())
	if err != nil {
		return badRequestObject("The request object is not a JWT signed with one of %s.", strings.Join(RequestObjectAlgs, ", "))
	}
	var c struct {
		Iss      string `json:"iss"`
		ClientID string `json:"client_id"`
	}
	if json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &c) != nil || c.Iss != entityID || c.ClientID != entityID {
		return badRequestObject("The request object's iss and client_id must be the relying party's entity identifier.")
	}
	return nil
}

// autoregState limits the chain resolutions that signatures made with
// unknown keys can cause for a registered client.
type autoregState struct {
	renewed sync.Map // entity ID → time.Time of the last resolution
}

// mayRenew reports whether entityID's chain may be resolved again now.
func (s *autoregState) mayRenew(entityID string, now time.Time) bool {
	if v, ok := s.renewed.Load(entityID); ok && now.Sub(v.(time.Time)) < time.Minute {
		return false
	}
	s.renewed.Store(entityID, now)
	return true
}

// preAuthKey carries, to authenticateClient, a federation client that the
// pushed request itself authenticated (its request object, or an
// assertion checked by automaticPush).
type preAuthKey struct{}

// automaticPush handles a pushed request whose client_id is an entity
// identifier: it authenticates the relying party by its request object or
// its private_key_jwt assertion (aud this issuer, or the token or PAR
// endpoint), registers it, and leaves in r.Form the parameters to push,
// without the credential it checked. handled is false as for
// automaticAuthorize.
func (p *Provider) automaticPush(ctx context.Context, r *http.Request) (context.Context, bool, error) {
	f := r.Form
	entityID := f.Get("client_id")
	if f.Has("request") {
		if err := p.peekRequestObject(f.Get("request"), entityID); err != nil {
			return ctx, true, err
		}
	}
	c, fresh, ok, err := p.federated(ctx, entityID)
	if !ok || err != nil {
		return ctx, ok, err
	}
	var form url.Values
	switch {
	case f.Has("request"):
		if form, err = p.requestObjectParams(ctx, c, f.Get("request"), entityID); err != nil {
			return ctx, true, err
		}
		form.Set("client_id", entityID)
	case f.Get("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
		claims, err := p.verifyJWT(ctx, c, f.Get("client_assertion"), "client assertion", "", "JWT", "client-authentication+jwt")
		if err != nil {
			return ctx, true, fosite.ErrInvalidClient.WithHint(fosite.ErrorToRFC6749Error(err).HintField)
		}
		if sub, _ := claims["sub"].(string); sub != entityID {
			return ctx, true, fosite.ErrInvalidClient.WithHint("The client assertion's sub must be the relying party's entity identifier.")
		}
		// The assertion's jti is remembered as fosite remembers those of
		// the token endpoint.
		if err := p.checkSignedClaims(ctx, claims, entityID, "client assertion", "", p.Issuer, p.Issuer+"/token", p.Issuer+"/par"); err != nil {
			return ctx, true, fosite.ErrInvalidClient.WithHint(fosite.ErrorToRFC6749Error(err).HintField)
		}
		form = f
		form.Del("client_assertion")
		form.Del("client_assertion_type")
	default:
		return ctx, true, fosite.ErrInvalidClient.WithHint("A relying party using automatic registration pushes a signed request object or authenticates with private_key_jwt.")
	}
	if ru := form.Get("redirect_uri"); ru == "" || !redirectMatches(c.RedirectURIs, ru) {
		return ctx, true, fosite.ErrInvalidRequest.WithHint("The redirect_uri is not one of the redirect_uris of the relying party's federation metadata.")
	}
	if fresh {
		if err := p.saveFederated(ctx, c); err != nil {
			return ctx, true, err
		}
	}
	r.Form = form
	r.PostForm = form
	return context.WithValue(ctx, preAuthKey{}, c.ClientID), true, nil
}

// renewFederated resolves again the chain of a federation-registered
// client whose registration has expired, before it authenticates at the
// token, revocation or introspection endpoint; a chain that no longer
// resolves makes it an unknown client.
func (p *Provider) renewFederated(ctx context.Context, clientID string) error {
	if p.RPResolver == nil || !IsEntityID(clientID) {
		return nil
	}
	// Only a client registered before is renewed here, and only once its
	// registration has expired: an entity never seen registers by proving
	// its keys at /authorize or /par, so that nobody makes this cloud
	// fetch chains by naming URLs at the token endpoint.
	sc, err := p.Store.GetClient(ctx, clientID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return storeErr(err)
	}
	old, err := clientFromStored(sc)
	if err != nil || old.Federation == nil || p.now().Before(time.Unix(old.Federation.Expires, 0)) {
		return err
	}
	c, err := p.resolveFederated(ctx, clientID)
	if err != nil {
		if rfc := fosite.ErrorToRFC6749Error(err); rfc.CodeField >= 500 {
			return err
		}
		return fosite.ErrInvalidClient.WithHint("The client's trust chain no longer resolves to a trust anchor this provider accepts.")
	}
	return p.saveFederated(ctx, c)
}

// assertionClientID is the client a token request authenticates as: its
// client_id, else the (not yet verified) sub of its assertion.
func assertionClientID(form url.Values) string {
	if id := form.Get("client_id"); id != "" {
		return id
	}
	parts := strings.Split(form.Get("client_assertion"), ".")
	if len(parts) != 3 || len(parts[1]) > MaxRequestObjectBytes {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		Sub string `json:"sub"`
	}
	json.Unmarshal(b, &c)
	return c.Sub
}

// automaticDiscovery is what discovery says of automatic registration.
func (p *Provider) automaticDiscovery(d map[string]any) {
	if p.RPResolver == nil {
		return
	}
	d["client_registration_types_supported"] = []string{"automatic"}
	d["request_parameter_supported"] = true
	d["request_object_signing_alg_values_supported"] = RequestObjectAlgs
	d["request_authentication_methods_supported"] = map[string][]string{
		"authorization_endpoint":                []string{"request_object"},
		"pushed_authorization_request_endpoint": []string{"request_object", "private_key_jwt"},
	}
	d["request_authentication_signing_alg_values_supported"] = RequestObjectAlgs
}
