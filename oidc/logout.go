package oidc

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/go-chi/chi/v5/middleware"
	"github.com/ory/fosite/token/jwt"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/privacy"
)

// logout implements OpenID Connect RP-Initiated Logout 1.0. With a valid
// id_token_hint (expired is fine) naming the person signed in here, the
// person is signed out at once and sent to the registered
// post_logout_redirect_uri; without one, or with one naming someone else
// (a forged or stale logout link must not sign anyone out), the page asks
// before signing out.
func (p *Provider) logout(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		p.errorPage(w, r, http.StatusBadRequest, "Bad request", "The logout request could not be read.")
		return
	}
	hint := r.Form.Get("id_token_hint")
	redirect := r.Form.Get("post_logout_redirect_uri")
	state := r.Form.Get("state")
	clientID := r.Form.Get("client_id")
	var hintSub string
	if hint != "" {
		tok, err := p.signer.Decode(ctx, hint)
		var ve *jwt.ValidationError
		if err != nil && !(errors.As(err, &ve) && ve.Has(jwt.ValidationErrorExpired) && tok != nil && tok.Claims != nil) ||
			tok != nil && !idTokenType(tok.Header["typ"]) {
			p.errorPage(w, r, http.StatusBadRequest, "Logout refused", "The id_token_hint is not an ID token issued here.")
			return
		}
		aud := audiences(tok.Claims["aud"])
		if clientID != "" && !slices.Contains(aud, clientID) {
			p.errorPage(w, r, http.StatusBadRequest, "Logout refused", "The client_id does not match the id_token_hint.")
			return
		}
		if clientID == "" && len(aud) > 0 {
			clientID = aud[0]
		}
		hintSub, _ = tok.Claims["sub"].(string)
	}
	var target *url.URL
	if redirect != "" {
		if clientID == "" {
			p.errorPage(w, r, http.StatusBadRequest, "Logout refused", "A post_logout_redirect_uri needs an id_token_hint or client_id naming the service.")
			return
		}
		sc, err := p.Store.GetClient(ctx, clientID)
		if err != nil {
			p.errorPage(w, r, http.StatusBadRequest, "Logout refused", "The service is unknown.")
			return
		}
		c, err := clientFromStored(sc)
		if err != nil || !slices.Contains(c.PostLogoutRedirectURIs, redirect) {
			p.errorPage(w, r, http.StatusBadRequest, "Logout refused", "The post_logout_redirect_uri is not registered for this service.")
			return
		}
		target, _ = url.Parse(redirect)
		if state != "" {
			q := target.Query()
			q.Set("state", state)
			target.RawQuery = q.Encode()
		}
	}
	confirmed := r.Method == http.MethodPost && r.PostForm.Get("confirm") == "yes"
	if !confirmed && hint != "" {
		confirmed = p.hintNamesSignedIn(r, hintSub, clientID)
	}
	if !confirmed {
		p.Pages.Render(w, r, http.StatusOK, "logout", map[string]any{
			"PostLogoutRedirectURI": redirect, "State": state, "ClientID": clientID,
		})
		return
	}
	token := cookieValue(r, p.SessionCookie)
	ended := func() {} // tells the services once the session has ended (backchannel.go)
	if sess, acct, err := p.Sessions.Resolve(ctx, token); err == nil {
		ended = func() { p.signedOut(ctx, acct.DID, sess.IDHash) }
		p.activity(ctx, r, acct.DID, privacy.ActivityLogout, clientID, map[string]any{"hinted_sub": hintSub != ""})
	}
	endErr := p.Sessions.End(ctx, token)
	// The browser forgets the cookie either way (a __Host- cookie is only
	// replaced by a Secure one); the session itself may still be live.
	http.SetCookie(w, &http.Cookie{Name: p.SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		Secure: strings.HasPrefix(p.SessionCookie, "__Host-"), SameSite: http.SameSiteLaxMode})
	if endErr != nil {
		// The session row is still there: saying "signed out" would be
		// untrue on a shared computer. Tell the person to try again.
		p.Log.ErrorContext(ctx, "logout: storage unavailable, answered 503",
			"request_id", middleware.GetReqID(ctx), "err", identity.RootCause(endErr))
		w.Header().Set("Retry-After", "5")
		p.errorPage(w, r, http.StatusServiceUnavailable, "Sign-out did not complete",
			"The server could not end your session, so you may still be signed in. Please try again in a moment.")
		return
	}
	ended()
	if target != nil {
		http.Redirect(w, r, target.String(), http.StatusSeeOther)
		return
	}
	p.Pages.Render(w, r, http.StatusOK, "logged_out", nil)
}

// hintNamesSignedIn reports whether an id_token_hint's subject, as issued
// to clientID, is the person signed in to this browser, or nobody is (then
// signing out changes nothing). It is false when that cannot be told.
func (p *Provider) hintNamesSignedIn(r *http.Request, hintSub, clientID string) bool {
	ctx := r.Context()
	_, acct, err := p.Sessions.Resolve(ctx, cookieValue(r, p.SessionCookie))
	if errors.Is(err, identity.ErrNoSession) {
		return true
	}
	if err != nil || hintSub == "" || clientID == "" {
		return false
	}
	if hintSub == acct.DID {
		return true
	}
	c, err := LookupClient(ctx, p.Store, clientID)
	if err != nil {
		return false
	}
	_, consent, settings, err := p.releaseContext(ctx, acct.DID, clientID)
	if err != nil {
		return false
	}
	if settings == nil {
		settings = privacy.DefaultSettings()
	}
	sub, err := p.subject(ctx, acct, c, consent, settings)
	return err == nil && sub == hintSub
}

func audiences(v any) []string {
	switch a := v.(type) {
	case string:
		return []string{a}
	case []any:
		var out []string
		for _, x := range a {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	case []string:
		return a
	}
	return nil
}

// idTokenType reports a JOSE typ an ID token may carry: none or JWT. Access
// tokens (at+jwt), logout tokens (logout+jwt) and every other explicitly
// typed token are something else.
func idTokenType(typ any) bool {
	switch t, _ := typ.(string); strings.ToLower(t) {
	case "", "jwt":
		return true
	}
	return false
}
