package oidc

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/internal/httpx"
	"github.com/onecommons/commonsid/privacy"
	"github.com/onecommons/commonsid/store"
)

// ChallengeLifetime bounds how long a person may take to log in and consent.
const ChallengeLifetime = 30 * time.Minute

// authorize is the authorization endpoint.
func (p *Provider) authorize(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ar, err := p.newAuthorizeRequest(ctx, r)
	if err != nil {
		p.authorizeError(w, r, ar, err)
		return
	}
	if err := checkBounds(ar.GetRequestForm()); err != nil {
		p.authorizeError(w, r, ar, err)
		return
	}
	p.proceed(w, r, ar, nil)
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
	r2 := r.Clone(ctx)
	r2.Method = http.MethodGet
	r2.URL = &url.URL{Path: "/authorize", RawQuery: ch.Form}
	r2.Body = http.NoBody
	r2.Form, r2.PostForm = nil, nil
	return p.newAuthorizeRequest(ctx, r2)
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
	if ar != nil && ar.IsRedirectURIValid() && ar.GetClient() != nil && !stateTooLong(ar) {
		p.oauth.WriteAuthorizeError(r.Context(), w, ar, err)
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
	if slices.Contains(pr, "none") && len(pr) > 1 {
		p.authorizeError(w, r, ar, fosite.ErrInvalidRequest.WithHint("prompt=none cannot be combined with other values."))
		return
	}
	if !slices.Contains(ar.GetRequestedScopes(), "openid") {
		p.authorizeError(w, r, ar, fosite.ErrInvalidScope.WithHint("The openid scope is required."))
		return
	}
	if err := checkPKCE(ar, client); err != nil {
		p.authorizeError(w, r, ar, err)
		return
	}
	if _, err := privacy.ParseClaimsRequest(ar.GetRequestForm().Get("claims")); err != nil {
		p.authorizeError(w, r, ar, fosite.ErrInvalidRequest.WithHint(err.Error()))
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
		if slices.Contains(pr, "login") {
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
		http.Redirect(w, r, "/login?return_to="+url.QueryEscape("/authorize/resume?challenge="+ch.IDHash), http.StatusSeeOther)
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
	if client.Peer {
		// A peer cloud signing the person in (brokered sign-in) learns
		// only who they are: the ID token's sub is the account DID, and no
		// claim is released. Choosing "sign in with my home cloud" there
		// is the person's consent.
		for _, s := range ar.GetRequestedScopes() {
			if s != "openid" {
				p.authorizeError(w, r, ar, fosite.ErrInvalidScope.WithHint("A peer cloud may ask for the openid scope only."))
				return
			}
		}
		consent = &privacy.Consent{AccountDID: acct.DID, ClientID: client.ClientID, Scopes: []string{"openid"}, GrantedAt: now, UpdatedAt: now, LastUsedAt: &now}
	}
	needConsent := consent == nil || !consent.Covers(ar.GetRequestedScopes(), now)
	if slices.Contains(pr, "consent") {
		// Only a consent given during this very request will do.
		needConsent = ch == nil || consent == nil || consent.UpdatedAt.Before(ch.CreatedAt) || !consent.Covers(ar.GetRequestedScopes(), now)
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
		http.Redirect(w, r, "/consent?challenge="+url.QueryEscape(ch.IDHash), http.StatusSeeOther)
		return
	}

	// 3. Issue the code.
	requestedAt := now
	if ch != nil {
		requestedAt = ch.CreatedAt
	}
	session, err := p.authorizeSession(acct, sess, client, consent, settings, ar, requestedAt)
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
	p.oauth.WriteAuthorizeResponse(ctx, w, ar, resp)
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
func (p *Provider) authorizeSession(acct *identity.Account, sess *identity.Session, client *Client,
	consent *privacy.Consent, settings *privacy.Settings, ar fosite.AuthorizeRequester, requestedAt time.Time) (*authSession, error) {
	sub, err := p.subject(acct, client, consent, settings)
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
	c.AuthenticationContextClassReference = "0"
	c.Extra = claimValues(acct, released)
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
			s.Claims.Extra = map[string]any{} // a peer cloud learns the DID only
			return nil
		}
		return fosite.ErrInvalidGrant.WithHint("The consent behind this grant was revoked.")
	}
	if settings == nil {
		settings = privacy.DefaultSettings()
	}
	cr, _ := privacy.ParseClaimsRequest(s.ClaimsParam)
	released := privacy.Release(privacy.ReleaseInput{GrantedScopes: r.GetGrantedScopes(), Consent: consent, Settings: settings, Claims: cr, Target: privacy.TargetIDToken})
	s.Claims.Extra = claimValues(acct, released)
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

func (p *Provider) serverError(w http.ResponseWriter, r *http.Request, err error) {
	p.Log.ErrorContext(r.Context(), "authorization failed", "err", err)
	p.errorPage(w, r, http.StatusInternalServerError, "Something went wrong", "The server could not complete the sign-in. It has been logged; please try again.")
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
		}
	}
	return out
}
