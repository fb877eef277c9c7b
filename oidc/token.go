package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/ory/fosite"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/internal/httpx"
	"github.com/onecommons/commonsid/privacy"
	"github.com/onecommons/commonsid/store"
)

// token is the token endpoint.
func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	ctx := withCodeRows(r.Context())
	r = r.WithContext(ctx)
	session := newSession()
	ar, err := p.oauth.NewAccessRequest(ctx, r, session)
	if err != nil {
		p.writeAccessError(ctx, w, ar, "token request", err)
		return
	}
	if ar.GetGrantTypes().ExactOne("client_credentials") {
		client := ar.GetClient().(*Client)
		for _, s := range ar.GetRequestedScopes() {
			if slices.Contains(SupportedScopes, s) {
				p.oauth.WriteAccessError(ctx, w, ar, fosite.ErrInvalidScope.WithHintf("Scope %q stands for a person and cannot be granted to a client acting for itself.", s))
				return
			}
			ar.GrantScope(s)
		}
		session.ClientID = client.ClientID
		session.Alg = client.SigningAlg()
		session.Subject = client.ClientID
	}
	resp, err := p.oauth.NewAccessResponse(ctx, ar)
	if err != nil {
		p.writeAccessError(ctx, w, ar, "token response", err)
		return
	}
	p.oauth.WriteAccessResponse(ctx, w, ar, resp)
}

// writeAccessError answers a failed token request. A code or refresh token
// that lost a concurrent exchange is a reuse (lostExchange): invalid_grant,
// whatever fosite made of it. A storage failure is 503
// temporarily_unavailable with Retry-After, never invalid_client or
// invalid_grant, which would make the client throw its credentials away.
func (p *Provider) writeAccessError(ctx context.Context, w http.ResponseWriter, ar fosite.AccessRequester, what string, err error) {
	switch cause, down := unavailableCause(err); {
	case errors.Is(err, errReused):
		err = fosite.ErrInvalidGrant.WithHint("The authorization code or refresh token was already used; every token issued for it has been revoked.")
	case down:
		p.logUnavailable(ctx, "token", cause)
		w.Header().Set("Retry-After", retryAfter)
		err = fosite.ErrTemporarilyUnavailable.WithHint("The database is unavailable; retry after the number of seconds in Retry-After.")
	default:
		p.logServerError(ctx, what, err)
	}
	p.oauth.WriteAccessError(ctx, w, ar, err)
}

func bearerToken(r *http.Request) string {
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	if r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		r.Body = http.MaxBytesReader(nil, r.Body, 64<<10)
		return r.PostFormValue("access_token")
	}
	return ""
}

func bearerError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("WWW-Authenticate", `Bearer error="`+code+`", error_description="`+desc+`"`)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

// userinfo returns the claims the person released to the service, through
// the release function.
func (p *Provider) userinfo(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	tok := bearerToken(r)
	if tok == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+p.Issuer+`"`)
		bearerError(w, http.StatusUnauthorized, "invalid_request", "An access token is required.")
		return
	}
	session := newSession()
	use, ar, err := p.oauth.IntrospectToken(ctx, tok, fosite.AccessToken, session)
	if p.unavailable(ctx, w, "userinfo", err) {
		return
	}
	// fosite looks a token up as an access token and then as a refresh
	// token, and says which it found: only an access token is a bearer
	// token (RFC 6749 §1.5, §10.4).
	if err != nil || use != fosite.AccessToken {
		bearerError(w, http.StatusUnauthorized, "invalid_token", "The access token is expired, revoked or malformed.")
		return
	}
	if !ar.GetGrantedScopes().Has("openid") || session.AccountDID == "" {
		bearerError(w, http.StatusForbidden, "insufficient_scope", "The access token was not granted the openid scope.")
		return
	}
	acct, consent, settings, err := p.releaseContext(ctx, session.AccountDID, session.ClientID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		p.logUnavailable(ctx, "userinfo", err)
		writeUnavailable(w, "userinfo")
		return
	}
	if err != nil || acct.Status != identity.StatusActive {
		bearerError(w, http.StatusUnauthorized, "invalid_token", "The account behind this token cannot be used.")
		return
	}
	if consent == nil {
		bearerError(w, http.StatusUnauthorized, "invalid_token", "The consent behind this token was revoked.")
		return
	}
	if settings == nil {
		settings = privacy.DefaultSettings()
	}
	cr, _ := privacy.ParseClaimsRequest(session.ClaimsParam)
	released := privacy.Release(privacy.ReleaseInput{GrantedScopes: ar.GetGrantedScopes(), Consent: consent,
		Settings: settings, Claims: cr, Target: privacy.TargetUserInfo})
	out := claimValues(acct, released)
	out["sub"] = session.GetSubject()
	// The person's activity log shows every release: no record, no release.
	rel := &privacy.Activity{AccountDID: acct.DID, At: p.now(), Kind: privacy.ActivityRelease, ClientID: session.ClientID,
		IP: httpx.ClientIP(r), UserAgent: truncate(r.UserAgent(), 300),
		Detail: map[string]any{"via": "userinfo", "scopes": []string(ar.GetGrantedScopes()), "claims": released}}
	if err := p.Privacy.AppendActivity(detached(ctx), rel); err != nil {
		p.logUnavailable(ctx, "userinfo", err)
		writeUnavailable(w, "userinfo")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(out)
}

// revoke is the revocation endpoint (RFC 7009). It answers 200 only when
// the grant's tokens are gone: revoked now (in one transaction, see
// revocation), or never there. fosite's own writer answers 200 for every
// error it does not recognise, a failed delete included; here a storage
// failure, or anything unexpected, is 503 with Retry-After (§2.2.1: the
// client must then assume the token still exists and retry), and a token of
// another client is refused (§2.1) rather than acknowledged.
func (p *Provider) revoke(w http.ResponseWriter, r *http.Request) {
	ctx, rv := withRevocation(r.Context())
	err := p.oauth.NewRevocationRequest(ctx, r)
	cause, down := unavailableCause(err)
	switch {
	case err == nil:
		p.oauth.WriteRevocationResponse(ctx, w, nil)
	case !down && (errors.Is(err, fosite.ErrInvalidRequest) || errors.Is(err, fosite.ErrInvalidClient)):
		p.oauth.WriteRevocationResponse(ctx, w, err)
	case !down && errors.Is(err, fosite.ErrUnauthorizedClient):
		writeOAuthError(w, http.StatusBadRequest, "unauthorized_client", "The token was not issued to this client.")
	default:
		if !down {
			cause = rv.failure
		}
		if cause == nil {
			cause = err
		}
		p.logUnavailable(ctx, "revoke", cause)
		writeUnavailable(w, "revoke")
	}
}

func writeOAuthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

// IntrospectScope, among a client's registered scopes, lets it introspect
// tokens issued to other clients (a resource server of this cloud). Only
// the operators grant it (commonsid client create --scope introspect);
// dynamic registration refuses it.
const IntrospectScope = "introspect"

// introspect is the introspection endpoint (RFC 7662). A token is
// described only to the client it was issued to, to a client named in its
// audience, and to clients granted IntrospectScope (§2.1, §4: the answer
// tells who the person is and what they shared); to any other client it is
// {"active": false}, as an unknown token would be. Peer clouds' tokens
// follow introspectPeer.
func (p *Provider) introspect(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if p.PeerIntrospect != nil && p.introspectPeer(w, r) {
		return
	}
	ir, err := p.oauth.NewIntrospectionRequest(ctx, r, newSession())
	if p.unavailable(ctx, w, "introspect", err) {
		return
	}
	if err != nil {
		p.oauth.WriteIntrospectionError(ctx, w, err)
		return
	}
	ok, err := p.mayIntrospect(ctx, r, ir.GetAccessRequester())
	if p.unavailable(ctx, w, "introspect", err) {
		return
	}
	if err != nil || !ok {
		p.oauth.WriteIntrospectionError(ctx, w, fosite.ErrInactiveToken)
		return
	}
	p.oauth.WriteIntrospectionResponse(ctx, w, ir)
}

// mayIntrospect reports whether the client asking (authenticated by fosite
// with HTTP Basic, or by an access token of its own) may be told about the
// token of ar.
func (p *Provider) mayIntrospect(ctx context.Context, r *http.Request, ar fosite.AccessRequester) (bool, error) {
	if ar == nil || ar.GetClient() == nil {
		return false, nil
	}
	var caller fosite.Client
	if tok := fosite.AccessTokenFromRequest(r); tok != "" {
		_, car, err := p.oauth.IntrospectToken(ctx, tok, fosite.AccessToken, newSession())
		if err != nil {
			return false, err
		}
		caller = car.GetClient()
	} else {
		id, _, ok := r.BasicAuth()
		if !ok {
			return false, nil
		}
		id, err := url.QueryUnescape(id)
		if err != nil {
			return false, nil
		}
		if caller, err = p.fstore.GetClient(ctx, id); err != nil {
			return false, err
		}
	}
	if caller.GetID() == ar.GetClient().GetID() || ar.GetGrantedAudience().Has(caller.GetID()) {
		return true, nil
	}
	c, ok := caller.(*Client)
	return ok && slices.Contains(strings.Fields(c.Scope), IntrospectScope), nil
}

// introspectPeer answers for an access token issued by a peer cloud (RFC
// 7662, after the same client authentication as for this cloud's tokens).
// It reports false, having written nothing, for any other token.
func (p *Provider) introspectPeer(w http.ResponseWriter, r *http.Request) bool {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		return false
	}
	token := r.PostForm.Get("token")
	if strings.Count(token, ".") != 2 || p.signer.ownToken(ctx, token) {
		return false
	}
	claims, handled, err := p.PeerIntrospect(ctx, token)
	if !handled && err == nil {
		return false
	}
	f, ok := p.oauth.(*fosite.Fosite)
	if !ok {
		return false
	}
	if _, aerr := f.AuthenticateClient(ctx, r, r.PostForm); aerr != nil {
		p.oauth.WriteIntrospectionError(ctx, w, fosite.ErrRequestUnauthorized.WithWrap(aerr).WithHint("Client authentication failed."))
		return true
	}
	if err != nil {
		p.Log.ErrorContext(ctx, "introspect a peer's token", "err", err)
		p.oauth.WriteIntrospectionError(ctx, w, fosite.ErrServerError)
		return true
	}
	if claims == nil {
		claims = map[string]any{"active": false}
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(claims)
	return true
}

// logServerError logs the cause of an error the client sees only as
// server_error.
func (p *Provider) logServerError(ctx context.Context, what string, err error) {
	var rfc *fosite.RFC6749Error
	if errors.As(err, &rfc) && rfc.CodeField != http.StatusInternalServerError {
		return
	}
	msg := err.Error()
	if rfc != nil {
		msg = rfc.GetDescription() + " " + rfc.DebugField
		if c := rfc.Unwrap(); c != nil {
			msg += ": " + c.Error()
		}
	}
	p.Log.ErrorContext(ctx, what, "err", msg)
}

// introspectScopeRefused reports a registration request, at the
// registration endpoint, that asks for IntrospectScope when the client does
// not hold it already: anyone may register, so only the operators grant it.
func introspectScopeRefused(requested, held string) bool {
	return slices.Contains(strings.Fields(requested), IntrospectScope) && !slices.Contains(strings.Fields(held), IntrospectScope)
}

var errIntrospectScope = map[string]string{"error": "invalid_client_metadata",
	"error_description": "scope " + IntrospectScope + " is granted by the operators of this cloud only"}
