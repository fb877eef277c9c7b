package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5/middleware"
	"github.com/ory/fosite"

	"github.com/onecommons/commonsid/access"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/internal/httpx"
	"github.com/onecommons/commonsid/privacy"
	"github.com/onecommons/commonsid/store"
)

// ChallengeLifetime bounds how long a person may take to log in and consent.
const ChallengeLifetime = 30 * time.Minute

// authorize is the authorization endpoint.
//
// Request objects are not supported: a request parameter is answered
// request_not_supported, and a request_uri that is not one of our pushed
// requests (par.go) request_uri_not_supported, both redirected to the
// client once the rest of the request has been validated. Neither is ever
// parsed or fetched. The one exception is automatic registration
// (autoreg.go): a client_id that is an entity identifier and not
// registered otherwise sends its parameters in a signed request object.
func (p *Provider) authorize(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var unsupported error
	pushed, signed := false, false
	if err := r.ParseMultipartForm(1 << 20); err == nil || errors.Is(err, http.ErrNotMultipart) {
		f := r.Form
		switch uri := f.Get("request_uri"); {
		case f.Has("request") && p.RPResolver != nil && IsEntityID(f.Get("client_id")):
			form, handled, err := p.automaticAuthorize(ctx, f)
			if err != nil {
				// Trust is not established: no redirect (autoreg.go).
				p.authorizeError(w, r, nil, err)
				return
			}
			if handled {
				r = requestWithForm(ctx, r, form.Encode())
				signed = true
			} else {
				unsupported = fosite.ErrRequestNotSupported.WithHint("Request objects are not supported; send the parameters themselves.")
			}
		case f.Has("request"):
			unsupported = fosite.ErrRequestNotSupported.WithHint("Request objects are not supported; send the parameters themselves.")
		case uri != "" && isPushedURI(uri):
			form, err := p.takePushed(ctx, uri, f.Get("client_id"))
			if err != nil {
				// The client's redirect URI is not known here: the
				// pushed request held it.
				p.authorizeError(w, r, nil, err)
				return
			}
			r = requestWithForm(ctx, r, form)
			pushed = true
		case f.Has("request_uri"):
			unsupported = fosite.ErrRequestURINotSupported.WithHint("Only request_uri values from the pushed authorization request endpoint are accepted.")
		}
		if !pushed {
			f.Del("request")
			f.Del("request_uri")
		}
	}
	ar, err := p.parseAuthorizeRequest(ctx, r)
	if err != nil {
		p.authorizeError(w, r, ar, err)
		return
	}
	if unsupported != nil {
		p.authorizeError(w, r, ar, unsupported)
		return
	}
	if err := checkBounds(ar.GetRequestForm()); err != nil {
		p.authorizeError(w, r, ar, err)
		return
	}
	if c, ok := ar.GetClient().(*Client); ok && c.RequirePushedAuthorizationRequests && !pushed {
		p.authorizeError(w, r, ar, fosite.ErrInvalidRequest.WithHint("This client must send its authorization requests through the pushed authorization request endpoint."))
		return
	}
	if c, ok := ar.GetClient().(*Client); ok && c.Federation != nil && !pushed && !signed {
		p.authorizeError(w, r, ar, fosite.ErrInvalidRequest.WithHint("This client is registered through OpenID Federation: send a signed request object, or push the request."))
		return
	}
	p.proceed(w, r, ar, nil)
}

// parseAuthorizeRequest validates an authorization request with fosite.
// state is optional (OpenID Connect Core 3.1.2.1 recommends it): fosite
// refuses a state shorter than MinParameterEntropy as its very last check,
// with everything else validated, so that error alone is dropped for a
// request without state.
func (p *Provider) parseAuthorizeRequest(ctx context.Context, r *http.Request) (fosite.AuthorizeRequester, error) {
	ar, err := p.newAuthorizeRequest(ctx, r)
	return ar, stateOptional(ar, err)
}

// stateOptional drops fosite's invalid_state error for a request that
// carries no state. fosite has no setting for an optional state: its
// MinParameterEntropy of 0 means its default of 8, so the provider sets 1
// (any non-empty state, and any nonce, passes) and lets an absent one
// through here.
func stateOptional(ar fosite.AuthorizeRequester, err error) error {
	if err != nil && ar != nil && ar.GetState() == "" && errors.Is(err, fosite.ErrInvalidState) {
		return nil
	}
	return err
}

// requestWithForm is r as a GET of /authorize with the given parameters.
func requestWithForm(ctx context.Context, r *http.Request, form string) *http.Request {
	r2 := r.Clone(ctx)
	r2.Method = http.MethodGet
	r2.URL = &url.URL{Path: "/authorize", RawQuery: form}
	r2.Body = http.NoBody
	r2.Form, r2.PostForm, r2.MultipartForm = nil, nil, nil
	return r2
}

// resume continues an authorization request after login or consent.
func (p *Provider) resume(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ch, err := p.loadChallenge(ctx, r.URL.Query().Get("challenge"))
	if err != nil {
		p.errorPage(w, r, http.StatusBadRequest, "Sign-in expired", "This sign-in request is unknown or has expired. Please return to the service and start again.")
		return
	}
	ar, err := p.rebuild(ctx, r, ch)
	if err != nil {
		p.authorizeError(w, r, ar, err)
		return
	}
	p.proceed(w, r, ar, ch)
}

// rebuild validates the stored authorization request again.
func (p *Provider) rebuild(ctx context.Context, r *http.Request, ch *Challenge) (fosite.AuthorizeRequester, error) {
	return p.parseAuthorizeRequest(ctx, requestWithForm(ctx, r, ch.Form))
}

func (p *Provider) loadChallenge(ctx context.Context, id string) (*Challenge, error) {
	if id == "" || len(id) > 100 {
		return nil, store.ErrNotFound
	}
	ch, err := p.Store.GetChallenge(ctx, identity.HashToken(id))
	if err != nil {
		return nil, err
	}
	if !p.now().Before(ch.ExpiresAt) {
		return nil, store.ErrNotFound
	}
	ch.IDHash = id // the caller needs the plain id for redirects
	return ch, nil
}

// newChallenge stores the authorization request (only the parameters that
// resume it: keptForm) and returns its id.
func (p *Provider) newChallenge(ctx context.Context, ar fosite.AuthorizeRequester, notBefore time.Time) (*Challenge, error) {
	id, err := identity.NewToken()
	if err != nil {
		return nil, err
	}
	now := p.now()
	ch := &Challenge{IDHash: identity.HashToken(id), ClientID: ar.GetClient().GetID(), Form: keptForm(ar.GetRequestForm()).Encode(),
		NotBefore: notBefore, CreatedAt: now, ExpiresAt: now.Add(ChallengeLifetime)}
	if err := p.Store.CreateChallenge(ctx, ch); err != nil {
		return nil, err
	}
	ch.IDHash = id
	return ch, nil
}

func (p *Provider) authorizeError(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, err error) {
	// A client that could not be read is no unknown client: the person is
	// told to try again, and the service hears nothing.
	if cause, down := unavailableCause(err); down {
		p.serverError(w, r, cause)
		return
	}
	if ar != nil && ar.IsRedirectURIValid() && ar.GetClient() != nil && !stateTooLong(ar) {
		p.writeAuthorizeErrorRedirect(w, r, ar, err)
		return
	}
	// Unknown client or unregistered redirect URI: never redirect. Nor
	// with an oversized state, which the redirect would have to carry.
	rfc := fosite.ErrorToRFC6749Error(err)
	msg := rfc.GetDescription()
	p.errorPage(w, r, http.StatusBadRequest, "This sign-in request cannot be completed", msg)
}

func (p *Provider) errorPage(w http.ResponseWriter, r *http.Request, status int, title, msg string) {
	p.Pages.Render(w, r, status, "error", map[string]any{"Title": title, "Message": msg})
}

func prompts(ar fosite.AuthorizeRequester) []string {
	return strings.Fields(ar.GetRequestForm().Get("prompt"))
}

// proceed decides what the authorization request needs next: a login, a
// consent, or the code.
func (p *Provider) proceed(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, ch *Challenge) {
	ctx := r.Context()
	client := ar.GetClient().(*Client)
	pr := prompts(ar)
	if err := checkRequest(ar, client); err != nil {
		p.authorizeError(w, r, ar, err)
		return
	}
	if err := askAudience(ar); err != nil {
		p.authorizeError(w, r, ar, err)
		return
	}
	now := p.now()

	// 1. Who is signed in, and is the sign-on fresh enough?
	sess, acct, err := p.Sessions.Resolve(ctx, cookieValue(r, p.SessionCookie))
	if err != nil && !errors.Is(err, identity.ErrNoSession) {
		p.serverError(w, r, err)
		return
	}
	var notBefore time.Time
	if ch != nil {
		notBefore = ch.NotBefore
	} else {
		// select_account: a browser holds one sign-on, so choosing an
		// account is signing in again, as this one or another.
		if slices.Contains(pr, "login") || slices.Contains(pr, "select_account") {
			notBefore = now
		}
		if ma := ar.GetRequestForm().Get("max_age"); ma != "" {
			secs, err := strconv.ParseInt(ma, 10, 64)
			if err != nil || secs < 0 {
				p.authorizeError(w, r, ar, fosite.ErrInvalidRequest.WithHint("max_age must be a non-negative integer."))
				return
			}
			if sess != nil && now.Sub(sess.AuthTime) > time.Duration(secs)*time.Second {
				notBefore = now
			}
		}
	}
	fresh := sess != nil && !sess.AuthTime.Before(notBefore)
	// A second factor asked for (mfa.go): a sign-on without one is not
	// enough when the person has one.
	askMFA := wantsMFA(ar)
	if fresh && askMFA && !sessionMFA(sess.AMR) {
		has, err := p.hasSecondFactor(ctx, acct.DID)
		if err != nil {
			p.serverError(w, r, err)
			return
		}
		fresh = !has
	}
	if !fresh {
		if slices.Contains(pr, "none") {
			p.authorizeError(w, r, ar, fosite.ErrLoginRequired)
			return
		}
		if ch == nil {
			var ok bool
			if ch, ok = p.storeChallenge(w, r, ar, notBefore, sess == nil); !ok {
				return
			}
		}
		login := "/login?return_to=" + url.QueryEscape("/authorize/resume?challenge="+ch.IDHash)
		if askMFA || !notBefore.IsZero() {
			// Asked for, or signing in again: with every factor.
			login += "&acr=mfa"
		}
		http.Redirect(w, r, login, http.StatusSeeOther)
		return
	}
	if _, essential := requestedACRs(ar); essential && !sessionMFA(sess.AMR) {
		p.authorizeError(w, r, ar, errUnmetAuthenticationRequirements.WithHint("The person has no second factor."))
		return
	}

	// 2. Has the person agreed to everything asked?
	_, consent, settings, err := p.releaseContext(ctx, acct.DID, client.ClientID)
	if err != nil {
		p.serverError(w, r, err)
		return
	}
	if settings == nil {
		settings = privacy.DefaultSettings()
	}
	consentPath := "/consent"
	if client.Peer {
		// A peer cloud signing the person in (brokered sign-in) learns
		// only who they are: the ID token's sub is the account DID, and no
		// claim is released. It needs the person's grant, asked for on the
		// peer consent page (peerconsent.go) and stored as a consent to the
		// peer's issuer: without it, nothing is released, not even to a
		// silent request (prompt=none: consent_required).
		for _, s := range ar.GetRequestedScopes() {
			if s != "openid" {
				p.authorizeError(w, r, ar, fosite.ErrInvalidScope.WithHint("A peer cloud may ask for the openid scope only."))
				return
			}
		}
		consentPath = PeerConsentPath
	}
	needConsent := consent == nil || !consent.Covers(ar.GetRequestedScopes(), now)
	if slices.Contains(pr, "consent") {
		// Only a consent given during this very request will do.
		needConsent = ch == nil || consent == nil || consent.UpdatedAt.Before(ch.CreatedAt) || !consent.Covers(ar.GetRequestedScopes(), now)
	}
	if !needConsent && !client.Peer && consent.TermsHash != client.TermsHash() {
		// The service's commitments changed since the person agreed
		// (terms.go): nothing is released before they agree again.
		needConsent = true
	}
	if needConsent {
		if slices.Contains(pr, "none") {
			p.authorizeError(w, r, ar, fosite.ErrConsentRequired)
			return
		}
		if ch == nil {
			var ok bool
			if ch, ok = p.storeChallenge(w, r, ar, time.Time{}, false); !ok {
				return
			}
		}
		http.Redirect(w, r, consentPath+"?challenge="+url.QueryEscape(ch.IDHash), http.StatusSeeOther)
		return
	}

	// 3. Issue the code.
	requestedAt := now
	if ch != nil {
		requestedAt = ch.CreatedAt
	}
	session, err := p.authorizeSession(ctx, acct, sess, client, consent, settings, ar, requestedAt)
	if err != nil && p.subjectError(w, r, acct, err) {
		return
	}
	if err != nil {
		p.serverError(w, r, err)
		return
	}
	for _, s := range ar.GetRequestedScopes() {
		if slices.Contains(consent.Scopes, s) {
			ar.GrantScope(s)
		}
	}
	resp, err := p.oauth.NewAuthorizeResponse(ctx, ar, session.Session)
	if err != nil {
		p.authorizeError(w, r, ar, err)
		return
	}
	if ch != nil {
		p.Store.DeleteChallenge(ctx, identity.HashToken(ch.IDHash))
	}
	if consent.LastUsedAt == nil || now.Sub(*consent.LastUsedAt) > time.Minute {
		if err := p.Privacy.TouchConsent(ctx, acct.DID, client.ClientID, now); err == nil {
			p.consentUsed(acct.DID, client.ClientID, now)
		}
	}
	p.activity(ctx, r, acct.DID, privacy.ActivityTokenIssued, client.ClientID, map[string]any{
		"scopes": []string(ar.GetGrantedScopes()), "id_token_claims": session.releasedIDToken,
	})
	p.writeAuthorizeResponse(w, r, ar, resp)
}

// checkRequest refuses, before any page is shown, what the provider does
// not accept in an authorization request, pushed or not.
func checkRequest(ar fosite.AuthorizeRequester, client *Client) error {
	pr := prompts(ar)
	if slices.Contains(pr, "none") && len(pr) > 1 {
		return fosite.ErrInvalidRequest.WithHint("prompt=none cannot be combined with other values.")
	}
	if !slices.Contains(ar.GetRequestedScopes(), "openid") {
		return fosite.ErrInvalidScope.WithHint("The openid scope is required.")
	}
	if err := checkPKCE(ar, client); err != nil {
		return err
	}
	cr, err := privacy.ParseClaimsRequest(ar.GetRequestForm().Get("claims"))
	if err != nil {
		return fosite.ErrInvalidRequest.WithHint(err.Error())
	}
	return checkEssentialACR(cr)
}

// supportedACR is the one authentication context class this provider
// asserts ("0": no assurance level claimed, OpenID Connect Core 2).
const supportedACR = "0"

// errUnmetAuthenticationRequirements is OpenID Connect Core 5.5.1.1's
// answer to an essential acr that cannot be met.
var errUnmetAuthenticationRequirements = &fosite.RFC6749Error{
	ErrorField:       "unmet_authentication_requirements",
	DescriptionField: "The authorization server cannot meet the authentication requirements of the request.",
	CodeField:        http.StatusBadRequest,
}

// checkEssentialACR refuses a claims request that asks for acr as an
// essential claim with none of the supported values (acrValuesSupported).
// A voluntary acr request (and acr_values, always voluntary) is answered
// with what the sign-on achieved (mfa.go).
func checkEssentialACR(cr *privacy.ClaimsRequest) error {
	for _, m := range []map[string]json.RawMessage{cr.IDToken, cr.UserInfo} {
		raw, ok := m["acr"]
		if !ok {
			continue
		}
		var req struct {
			Essential bool     `json:"essential"`
			Value     *string  `json:"value"`
			Values    []string `json:"values"`
		}
		if json.Unmarshal(raw, &req) != nil || !req.Essential {
			continue
		}
		known := func(v string) bool { return slices.Contains(acrValuesSupported, v) }
		if req.Value != nil && !known(*req.Value) || req.Values != nil && !slices.ContainsFunc(req.Values, known) {
			return errUnmetAuthenticationRequirements.WithHintf("Only the acr values %s are supported.", strings.Join(acrValuesSupported, ", "))
		}
	}
	return nil
}

// checkPKCE refuses, before any page is shown, what fosite would refuse only
// when issuing the code: a public client without PKCE, or any method but S256;
// and what fosite does not check: an S256 challenge is the base64url (without
// padding) of a SHA-256 hash, exactly 43 characters of [A-Za-z0-9_-] (RFC
// 7636 §4.2), so anything else could never match a verifier.
func checkPKCE(ar fosite.AuthorizeRequester, c *Client) error {
	f := ar.GetRequestForm()
	challenge, method := f.Get("code_challenge"), f.Get("code_challenge_method")
	switch {
	case challenge == "" && c.IsPublic():
		return fosite.ErrInvalidRequest.WithHint("Public clients must use PKCE (code_challenge with code_challenge_method S256).")
	case challenge == "" && method != "":
		return fosite.ErrInvalidRequest.WithHint("code_challenge_method given without code_challenge.")
	case challenge != "" && method != "S256":
		return fosite.ErrInvalidRequest.WithHint("Only the S256 code_challenge_method is supported.")
	case challenge != "" && !isS256Challenge(challenge):
		return fosite.ErrInvalidRequest.WithHint("The S256 code_challenge must be 43 characters of the base64url alphabet.")
	}
	return nil
}

// isS256Challenge reports whether s has the form of an S256 code challenge.
func isS256Challenge(s string) bool {
	if len(s) != 43 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// authorizeSession builds the session stored with the code: subject, ID
// token claims released by the person, authentication facts.
func (p *Provider) authorizeSession(ctx context.Context, acct *identity.Account, sess *identity.Session, client *Client,
	consent *privacy.Consent, settings *privacy.Settings, ar fosite.AuthorizeRequester, requestedAt time.Time) (*authSession, error) {
	sub, err := p.subject(ctx, acct, client, consent, settings)
	if err != nil {
		return nil, err
	}
	cr, _ := privacy.ParseClaimsRequest(ar.GetRequestForm().Get("claims"))
	var granted []string
	for _, s := range ar.GetRequestedScopes() {
		if slices.Contains(consent.Scopes, s) {
			granted = append(granted, s)
		}
	}
	released := privacy.Release(privacy.ReleaseInput{GrantedScopes: granted, Consent: consent, Settings: settings, Claims: cr, Target: privacy.TargetIDToken})
	s := newSession()
	s.AccountDID = acct.DID
	s.ClientID = client.ClientID
	s.Alg = client.SigningAlg()
	s.ClaimsParam = ar.GetRequestForm().Get("claims")
	s.Subject = sub
	c := s.Claims
	c.Subject = sub
	c.AuthTime = sess.AuthTime.Truncate(time.Second)
	c.RequestedAt = requestedAt.Truncate(time.Second)
	c.AuthenticationMethodsReferences = sess.AMR
	c.AuthenticationContextClassReference = acrOf(sess.AMR, ar)
	if c.Extra, err = p.releasedValues(ctx, acct, released); err != nil {
		return nil, err
	}
	if sess.IDHash != "" {
		c.Extra["sid"] = p.SessionID(sess.IDHash, client.ClientID) // back-channel logout (backchannel.go)
	}
	return &authSession{Session: s, releasedIDToken: released}, nil
}

// refreshIDClaims recomputes a stored grant's ID-token claims from the
// account, consent and settings as they are now. A grant whose account can no
// longer sign in, or whose consent is gone, issues nothing more.
func (p *Provider) refreshIDClaims(ctx context.Context, r fosite.Requester) error {
	s, ok := r.GetSession().(*Session)
	if !ok || s.AccountDID == "" {
		return nil
	}
	acct, consent, settings, err := p.releaseContext(ctx, s.AccountDID, s.ClientID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return storeErr(err) // unavailable, not a closed account (unavailable.go)
	}
	if err != nil || acct.Status != identity.StatusActive {
		return fosite.ErrInvalidGrant.WithHint("The account behind this grant can no longer sign in.")
	}
	if consent == nil {
		if c, ok := r.GetClient().(*Client); ok && c.Peer {
			return fosite.ErrInvalidGrant.WithHint("The person no longer lets this cloud sign them in.")
		}
		return fosite.ErrInvalidGrant.WithHint("The consent behind this grant was revoked.")
	}
	if c, ok := r.GetClient().(*Client); ok && c.Peer {
		s.Claims.Extra = map[string]any{} // a peer cloud learns the DID only
		return nil
	}
	if c, ok := r.GetClient().(*Client); ok && consent.TermsHash != c.TermsHash() {
		// The service's commitments changed since the person agreed
		// (terms.go): nothing more is released until they agree again.
		// Wrapping ErrNotFound makes fosite answer invalid_grant (any
		// other error of the storage is a server_error there).
		return fmt.Errorf("%w: the service's commitments changed since the person agreed; sign them in again so that they are asked", fosite.ErrNotFound)
	}
	if settings == nil {
		settings = privacy.DefaultSettings()
	}
	cr, _ := privacy.ParseClaimsRequest(s.ClaimsParam)
	released := privacy.Release(privacy.ReleaseInput{GrantedScopes: r.GetGrantedScopes(), Consent: consent, Settings: settings, Claims: cr, Target: privacy.TargetIDToken})
	sid := s.Claims.Extra["sid"]
	if s.Claims.Extra, err = p.releasedValues(ctx, acct, released); err != nil {
		return storeErr(err)
	}
	if sid != nil {
		s.Claims.Extra["sid"] = sid // the session the grant was made in (backchannel.go)
	}
	return nil
}

type authSession struct {
	*Session
	releasedIDToken []string
}

func (p *Provider) settings(ctx context.Context, did string) (*privacy.Settings, error) {
	s, err := p.Privacy.GetSettings(ctx, did)
	if errors.Is(err, store.ErrNotFound) {
		return privacy.DefaultSettings(), nil
	}
	return s, err
}

// serverError answers a sign-in step that failed for the server's reasons
// (in practice the database): 503 with Retry-After, nothing half done, the
// cause logged with the request id and without personal data.
func (p *Provider) serverError(w http.ResponseWriter, r *http.Request, err error) {
	p.Log.ErrorContext(r.Context(), "authorization failed, answered 503", "request_id", middleware.GetReqID(r.Context()), "err", identity.RootCause(err))
	w.Header().Set("Retry-After", retryAfter)
	p.errorPage(w, r, http.StatusServiceUnavailable, "Temporarily unavailable", "The sign-in could not be completed right now. Please try again in a moment.")
}

func cookieValue(r *http.Request, name string) string {
	c, err := r.Cookie(name)
	if err != nil {
		return ""
	}
	return c.Value
}

func (p *Provider) activity(ctx context.Context, r *http.Request, did, kind, clientID string, detail map[string]any) {
	a := &privacy.Activity{AccountDID: did, At: p.now(), Kind: kind, ClientID: clientID, Detail: detail}
	if r != nil {
		a.IP, a.UserAgent = httpx.ClientIP(r), truncate(r.UserAgent(), 300)
	}
	if err := p.Privacy.AppendActivity(detached(ctx), a); err != nil {
		p.Log.ErrorContext(ctx, "activity log", "kind", kind, "err", err)
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// profileClaims are the claims an account has values for: those
// claimValues fills. Discovery lists only these (and the token claims), and
// only the scopes that can release one of them.
var profileClaims = []string{"name", "preferred_username", "email", "email_verified", "updated_at", "did", "commons_access"}

// advertisedScopes are the supported scopes that can release something:
// openid and offline_access, and each claim scope with a claim in
// profileClaims. Other scopes (address, phone) are accepted and release
// nothing, since no account holds those values.
func advertisedScopes() []string {
	var out []string
	for _, s := range SupportedScopes {
		claims, isClaimScope := privacy.ScopeClaims[s]
		if !isClaimScope || slices.ContainsFunc(claims, func(c string) bool { return slices.Contains(profileClaims, c) }) {
			out = append(out, s)
		}
	}
	return out
}

// claimValues returns the values of the named claims for an account.
func claimValues(a *identity.Account, names []string) map[string]any {
	out := map[string]any{}
	for _, n := range names {
		switch n {
		case "name":
			if a.Name != "" {
				out[n] = a.Name
			}
		case "preferred_username":
			out[n] = a.Handle
		case "email":
			if a.Email != "" {
				out[n] = a.Email
			}
		case "email_verified":
			if a.Email != "" {
				out[n] = a.EmailVerified
			}
		case "updated_at":
			out[n] = a.UpdatedAt.Unix()
		case "did":
			out[n] = a.DID
		case access.Claim:
			// Every account has a level; releasedValues puts the
			// account's own in place of this one.
			out[n] = access.Value(nil, time.Time{}).Map()
		}
	}
	return out
}
