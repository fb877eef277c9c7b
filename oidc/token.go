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
		p.logServerError(ctx, "token request", err)
		p.oauth.WriteAccessError(ctx, w, ar, err)
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
		p.logServerError(ctx, "token response", err)
		p.oauth.WriteAccessError(ctx, w, ar, err)
		return
	}
	p.oauth.WriteAccessResponse(ctx, w, ar, resp)
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
	_, ar, err := p.oauth.IntrospectToken(ctx, tok, fosite.AccessToken, session)
	if err != nil {
		bearerError(w, http.StatusUnauthorized, "invalid_token", "The access token is expired, revoked or malformed.")
		return
	}
	if !ar.GetGrantedScopes().Has("openid") || session.AccountDID == "" {
		bearerError(w, http.StatusForbidden, "insufficient_scope", "The access token was not granted the openid scope.")
		return
	}
	acct, consent, settings, err := p.releaseContext(ctx, session.AccountDID, session.ClientID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		p.Log.ErrorContext(ctx, "userinfo", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
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
	p.activity(ctx, r, acct.DID, privacy.ActivityRelease, session.ClientID, map[string]any{
		"via": "userinfo", "scopes": []string(ar.GetGrantedScopes()), "claims": released,
	})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(out)
}

func (p *Provider) revoke(w http.ResponseWriter, r *http.Request) {
	err := p.oauth.NewRevocationRequest(r.Context(), r)
	p.oauth.WriteRevocationResponse(r.Context(), w, err)
}

func (p *Provider) introspect(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if p.PeerIntrospect != nil && p.introspectPeer(w, r) {
		return
	}
	ir, err := p.oauth.NewIntrospectionRequest(ctx, r, newSession())
	if err != nil {
		p.oauth.WriteIntrospectionError(ctx, w, err)
		return
	}
	p.oauth.WriteIntrospectionResponse(ctx, w, ir)
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
