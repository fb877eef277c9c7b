package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/ory/fosite"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/internal/httpx"
	"github.com/onecommons/commonsid/internal/metrics"
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
	ctx, err = tokenAudience(ctx, ar)
	if err != nil {
		p.oauth.WriteAccessError(ctx, w, ar, err)
		return
	}
	if !p.dpopAtToken(w, r, ar) {
		return
	}
	resp, err := p.oauth.NewAccessResponse(ctx, ar)
	if err != nil {
		p.writeAccessError(ctx, w, ar, "token response", err)
		return
	}
	dpopTokenType(ar, resp)
	p.oauth.WriteAccessResponse(ctx, w, ar, resp)
	metrics.TokenIssued(grantLabel(ar.GetGrantTypes()), ar.GetClient().IsPublic())
}

// grantLabel names the grant of a token request for the metrics: one of
// the grant types this provider serves, else "other".
func grantLabel(gt fosite.Arguments) string {
	for _, g := range []string{"authorization_code", "refresh_token", "client_credentials",
		"urn:ietf:params:oauth:grant-type:token-exchange", "urn:ietf:params:oauth:grant-type:jwt-bearer",
		"urn:ietf:params:oauth:grant-type:device_code"} {
		if gt.ExactOne(g) {
			return g
		}
	}
	return "other"
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
	tok := resourceToken(r)
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
	if !p.dpopAtResource(w, r, p.Issuer+"/userinfo", tok, session) {
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
	out, err := p.releasedValues(ctx, acct, released)
	if err != nil {
		p.logUnavailable(ctx, "userinfo", err)
		writeUnavailable(w, "userinfo")
		return
	}
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
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil || len(r.PostForm) == 0 {
		p.oauth.WriteIntrospectionError(ctx, w, fosite.ErrInvalidRequest.WithHint("The body must be a form with the token to introspect."))
		return
	}
	caller, err := p.introspectionCaller(ctx, r)
	if p.unavailable(ctx, w, "introspect", err) {
		return
	}
	if err != nil {
		p.oauth.WriteIntrospectionError(ctx, w, err)
		return
	}
	token := r.PostForm.Get("token")
	scopes := fosite.RemoveEmpty(strings.Split(r.PostForm.Get("scope"), " "))
	session := newSession()
	use, ar, err := p.oauth.IntrospectToken(ctx, token, fosite.TokenUse(r.PostForm.Get("token_type_hint")), session, scopes...)
	if p.unavailable(ctx, w, "introspect", err) {
		return
	}
	if err != nil {
		p.oauth.WriteIntrospectionError(ctx, w, fosite.ErrInactiveToken)
		return
	}
	if !mayIntrospect(caller, ar) {
		p.oauth.WriteIntrospectionError(ctx, w, fosite.ErrInactiveToken)
		return
	}
	p.writeIntrospection(w, use, ar)
}

// introspectionCaller authenticates the client asking: with an access token
// of its own (Bearer), or as at the token endpoint (client_secret_basic,
// client_secret_post, private_key_jwt). A public client has no credentials
// and may not introspect.
func (p *Provider) introspectionCaller(ctx context.Context, r *http.Request) (fosite.Client, error) {
	if tok := fosite.AccessTokenFromRequest(r); tok != "" {
		if tok == r.PostForm.Get("token") {
			return nil, fosite.ErrRequestUnauthorized.WithHint("Bearer and introspection token are identical.")
		}
		use, car, err := p.oauth.IntrospectToken(ctx, tok, fosite.AccessToken, newSession())
		if _, down := unavailableCause(err); down {
			return nil, err
		}
		if err != nil || use != fosite.AccessToken {
			return nil, fosite.ErrRequestUnauthorized.WithHint("The bearer token is not an active access token.")
		}
		return car.GetClient(), nil
	}
	if _, err := authMethodOf(r, r.PostForm); err != nil {
		return nil, err
	}
	f, ok := p.oauth.(*fosite.Fosite)
	if !ok {
		return nil, fosite.ErrServerError
	}
	c, err := f.AuthenticateClient(ctx, r, r.PostForm)
	if _, down := unavailableCause(err); down {
		return nil, err
	}
	if err != nil {
		return nil, fosite.ErrRequestUnauthorized.WithWrap(err).WithHint("Client authentication failed.")
	}
	if c.IsPublic() {
		return nil, fosite.ErrRequestUnauthorized.WithHint("A public client cannot introspect tokens.")
	}
	return c, nil
}

// mayIntrospect reports whether caller may be told about the token of ar.
func mayIntrospect(caller fosite.Client, ar fosite.AccessRequester) bool {
	if ar == nil || ar.GetClient() == nil || caller == nil {
		return false
	}
	if caller.GetID() == ar.GetClient().GetID() || ar.GetGrantedAudience().Has(caller.GetID()) {
		return true
	}
	c, ok := caller.(*Client)
	return ok && slices.Contains(strings.Fields(c.Scope), IntrospectScope)
}

// writeIntrospection answers for an active token (RFC 7662 §2.2): what
// fosite reports, plus iss, token_type for an access token (DPoP when the
// token is bound to a key, RFC 9449 §6.2), aud, and for a refresh token
// its own expiry.
func (p *Provider) writeIntrospection(w http.ResponseWriter, use fosite.TokenUse, ar fosite.AccessRequester) {
	out := map[string]any{"active": true, "iss": p.Issuer}
	sess := ar.GetSession()
	if s, ok := sess.(*Session); ok {
		for k, v := range s.AccessExtra {
			switch k {
			case "exp", "client_id", "scope", "iat", "sub", "aud", "username", "iss", "active", "token_type":
			default:
				out[k] = v
			}
		}
	}
	switch use {
	case fosite.AccessToken:
		out["token_type"] = accessTokenType(sess)
		if exp := sess.GetExpiresAt(fosite.AccessToken); !exp.IsZero() {
			out["exp"] = exp.Unix()
		}
	case fosite.RefreshToken:
		if exp := sess.GetExpiresAt(fosite.RefreshToken); !exp.IsZero() {
			out["exp"] = exp.Unix()
		}
	}
	if id := ar.GetClient().GetID(); id != "" {
		out["client_id"] = id
	}
	if sc := ar.GetGrantedScopes(); len(sc) > 0 {
		out["scope"] = strings.Join(sc, " ")
	}
	if at := ar.GetRequestedAt(); !at.IsZero() {
		out["iat"] = at.Unix()
	}
	if sub := sess.GetSubject(); sub != "" {
		out["sub"] = sub
	}
	if aud := ar.GetGrantedAudience(); len(aud) > 0 {
		out["aud"] = []string(aud)
	} else {
		out["aud"] = []string{ar.GetClient().GetID()}
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	json.NewEncoder(w).Encode(out)
}

// accessTokenType is the type of an access token: DPoP when its session
// binds it to a key (the cnf claim, RFC 9449 §6), else Bearer.
func accessTokenType(sess fosite.Session) string {
	if s, ok := sess.(*Session); ok {
		if _, bound := s.AccessExtra["cnf"]; bound {
			return "DPoP"
		}
	}
	return "Bearer"
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

// OperatorScopes are the scopes only the operators grant a client (with
// the CLI or the admin API): IntrospectScope and the admin API's "admin"
// and "admin:read".
var OperatorScopes = []string{IntrospectScope, "admin", "admin:read"}

// introspectScopeRefused reports a registration request, at the
// registration endpoint, that asks for one of OperatorScopes when the
// client does not hold it already: anyone may register, so only the
// operators grant them.
func introspectScopeRefused(requested, held string) bool {
	h := strings.Fields(held)
	for _, s := range strings.Fields(requested) {
		if slices.Contains(OperatorScopes, s) && !slices.Contains(h, s) {
			return true
		}
	}
	return false
}

var errIntrospectScope = map[string]string{"error": "invalid_client_metadata",
	"error_description": "the scopes " + strings.Join(OperatorScopes, ", ") + " are granted by the operators of this cloud only"}
