package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/internal/httpx"
	"github.com/onecommons/commonsid/privacy"
	"github.com/onecommons/commonsid/store"
	"github.com/onecommons/commonsid/terms"
)

// ServiceInfo describes a service on the dashboard.
type ServiceInfo struct {
	ClientID      string `json:"client_id"`
	Name          string `json:"name"`
	LogoURI       string `json:"logo_uri,omitempty"`
	ClientURI     string `json:"client_uri,omitempty"`
	SourceCodeURI string `json:"source_code_uri,omitempty"`
	PolicyURI     string `json:"policy_uri,omitempty"`
	ForkedFrom    string `json:"forked_from,omitempty"`
	ParentName    string `json:"parent_name,omitempty"`
	// OutsideTerms: not a commons service (package terms); Commitments is
	// its stored commitments document and TermsHash that document's hash.
	OutsideTerms bool   `json:"outside_terms"`
	Commitments  []byte `json:"-"`
	TermsHash    string `json:"-"`
}

// ReauthWindow is how recent a sign-in must be for sensitive actions
// (delete, password change, signing out every other device) to go ahead
// without the password.
const ReauthWindow = 5 * time.Minute

// me is the signed-in person of a dashboard request.
type me struct {
	sess  *identity.Session
	acct  *identity.Account
	token string
}

type meKey struct{}

func current(r *http.Request) *me { return r.Context().Value(meKey{}).(*me) }

// requireAccount lets signed-in people through; others go to /login and
// come back (pages), or get 401 (API).
func (h *Handler) requireAccount(api bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tok := ""
			if c, err := r.Cookie(h.sessionCookie()); err == nil {
				tok = c.Value
			}
			sess, acct, err := h.Sessions.Resolve(r.Context(), tok)
			if err != nil && !errors.Is(err, identity.ErrNoSession) {
				// The session could not be read: that says nothing about
				// whether the person is signed in.
				h.Log.ErrorContext(r.Context(), "resolve session, answered 503", "request_id", middleware.GetReqID(r.Context()), "err", identity.RootCause(err))
				w.Header().Set("Retry-After", RetryAfterSeconds)
				if api {
					writeAPIError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "your session could not be read right now; try again")
				} else {
					h.Render(w, r, http.StatusServiceUnavailable, "error", map[string]any{"Title": "Temporarily unavailable",
						"Message": "Your account could not be read right now. Please try again in a moment."})
				}
				return
			}
			if err != nil {
				if api {
					writeAPIError(w, http.StatusUnauthorized, "login_required", "sign in first")
					return
				}
				back := r.URL.Path
				if r.Method != http.MethodGet {
					back = "/account"
				}
				http.Redirect(w, r, "/login?return_to="+url.QueryEscape(back), http.StatusSeeOther)
				return
			}
			w.Header().Set("Cache-Control", "no-store")
			ctx := context.WithValue(r.Context(), meKey{}, &me{sess: sess, acct: acct, token: tok})
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// homeOnly refuses changes to an account replicated from its home cloud:
// its profile, settings, password and deletion are managed there.
// (Revoking a consent to this cloud's own services and ending sessions here
// stay open.)
func (h *Handler) homeOnly(api bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			a := current(r).acct
			if a.HomeIssuer == h.Accounts.Issuer {
				next.ServeHTTP(w, r)
				return
			}
			msg := "Your account's home is " + a.HomeIssuer + ": its profile, privacy settings, password and deletion are managed there, and this cloud follows."
			if api {
				writeAPIError(w, http.StatusConflict, "managed_by_home", msg)
				return
			}
			h.Render(w, r, http.StatusConflict, "error", map[string]any{"Title": "Managed by your home cloud", "Message": msg})
		})
	}
}

func writeAPIError(w http.ResponseWriter, status int, code, desc string) {
	writeAPI(w, status, map[string]string{"error": code, "error_description": desc})
}

func writeAPI(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (h *Handler) mountAccount(r chi.Router) {
	r.Route("/account", func(r chi.Router) {
		r.Group(func(r chi.Router) {
			r.Use(h.requireAccount(false))
			r.Method(http.MethodGet, "/", h.wrap(h.pageOverview))
			r.Method(http.MethodGet, "/profile", h.wrap(h.pageProfile))
			r.Method(http.MethodGet, "/services", h.wrap(h.pageServices))
			r.Method(http.MethodGet, "/activity", h.wrap(h.pageActivity))
			r.Method(http.MethodGet, "/sessions", h.wrap(h.pageSessions))
			r.Method(http.MethodGet, "/privacy", h.wrap(h.pagePrivacy))
			r.Method(http.MethodGet, "/security", h.wrap(h.pageSecurity))
			r.Method(http.MethodGet, "/data", h.wrap(h.pageData))
			r.Group(func(r chi.Router) {
				r.Use(crossOrigin, formLimit)
				r.Method(http.MethodPost, "/services/revoke", h.wrap(h.postRevoke))
				r.Method(http.MethodPost, "/clouds/revoke", h.wrap(h.postRevokePeer))
				r.Method(http.MethodPost, "/sessions/end", h.wrap(h.postEndSession))
				r.Method(http.MethodPost, "/sessions/end-others", h.wrap(h.postEndOthers))
				r.With(h.homeOnly(false)).Method(http.MethodPost, "/profile", h.wrap(h.postProfile))
				r.With(h.homeOnly(false)).Method(http.MethodPost, "/privacy", h.wrap(h.postPrivacy))
				r.With(h.homeOnly(false)).Method(http.MethodPost, "/password", h.wrap(h.postPassword))
				r.With(h.homeOnly(false)).Method(http.MethodPost, "/delete", h.wrap(h.postDelete))
			})
		})
		r.Route("/api", func(r chi.Router) {
			r.Use(h.requireAccount(true), crossOrigin)
			r.Get("/overview", h.api(h.apiOverview))
			r.Get("/profile", h.api(h.apiProfile))
			r.With(h.homeOnly(true)).Put("/profile", h.api(h.apiPutProfile))
			r.Get("/services", h.api(h.apiServices))
			r.Post("/services/{client_id}/revoke", h.api(h.apiRevoke))
			r.Get("/clouds", h.api(h.apiPeerGrants))
			r.Post("/clouds/revoke", h.api(h.apiRevokePeer))
			r.Get("/activity", h.api(h.apiActivity))
			r.Get("/sessions", h.api(h.apiSessions))
			r.Delete("/sessions/{id}", h.api(h.apiEndSession))
			r.Get("/privacy", h.api(h.apiPrivacy))
			r.With(h.homeOnly(true)).Put("/privacy", h.api(h.apiPutPrivacy))
			r.With(h.homeOnly(true)).Post("/password", h.api(h.apiPassword))
			r.With(h.homeOnly(true)).Post("/delete", h.api(h.apiDelete))
		})
	})
}

func formLimit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		if err := r.ParseForm(); err != nil {
			http.Error(w, "the form could not be read", http.StatusBadRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// apiError is an error with its HTTP status and code for the JSON API.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

var errReauth = &apiError{http.StatusForbidden, "reauth_required", "this action needs your password again"}

func (h *Handler) api(fn func(w http.ResponseWriter, r *http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := fn(w, r)
		if err == nil {
			if v == nil {
				w.WriteHeader(http.StatusNoContent)
				return
			}
			writeAPI(w, http.StatusOK, v)
			return
		}
		var ae *apiError
		var ve *identity.ValidationError
		setRetryAfter(w, err)
		switch {
		case errors.As(err, &ae):
			if ae.status == http.StatusServiceUnavailable {
				w.Header().Set("Retry-After", RetryAfterSeconds)
			}
			writeAPIError(w, ae.status, ae.code, ae.msg)
		case errors.Is(err, store.ErrNotFound), errors.Is(err, privacy.ErrNoConsent):
			writeAPIError(w, http.StatusNotFound, "not_found", "no such item in your account")
		case errors.As(err, &ve):
			writeAPIError(w, http.StatusBadRequest, "invalid_request", ve.Error())
		case isSettingsError(err):
			writeAPIError(w, http.StatusBadRequest, "invalid_request", strings.ReplaceAll(err.Error(), "\n", "; "))
		default:
			h.Log.ErrorContext(r.Context(), "account api, answered 503", "path", r.URL.Path, "request_id", middleware.GetReqID(r.Context()), "err", identity.RootCause(err))
			w.Header().Set("Retry-After", RetryAfterSeconds)
			writeAPIError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "the server could not complete the request right now; nothing was changed, try again")
		}
	}
}

type settingsError struct{ error }

func isSettingsError(err error) bool {
	var se settingsError
	return errors.As(err, &se)
}

func (h *Handler) meta(r *http.Request) privacy.ActivityMeta {
	ua := r.UserAgent()
	if len(ua) > 300 {
		ua = ua[:300]
	}
	return privacy.ActivityMeta{IP: clientIP(r), UserAgent: ua}
}

// reauth lets a sensitive action go ahead when the sign-in is recent or the
// password given is right; it then renews the sign-in time.
func (h *Handler) reauth(r *http.Request, m *me, password string) error {
	if h.Now().Sub(m.sess.AuthTime) <= ReauthWindow {
		return nil
	}
	if password == "" {
		return errReauth
	}
	if _, err := h.recheckPassword(r, password); err != nil {
		if errors.Is(err, identity.ErrBadCredentials) {
			return &apiError{http.StatusForbidden, "reauth_failed", "wrong password"}
		}
		return err // over budget, or the 503 answer (signin_limits.go)
	}
	return h.Sessions.Store.ReauthSession(r.Context(), m.sess.IDHash, h.Now().UTC())
}

func (h *Handler) needReauth(m *me) bool { return h.Now().Sub(m.sess.AuthTime) > ReauthWindow }

// page renders an account section with the common data.
func (h *Handler) page(w http.ResponseWriter, r *http.Request, section, tmpl string, data map[string]any) {
	m := current(r)
	if data == nil {
		data = map[string]any{}
	}
	data["Section"], data["Account"] = section, m.acct
	if m.acct.HomeIssuer != h.Accounts.Issuer {
		data["HomeElsewhere"] = m.acct.HomeIssuer
	}
	if f := r.URL.Query().Get("done"); f != "" {
		data["Flash"] = flashes[f]
	}
	h.Render(w, r, http.StatusOK, tmpl, data)
}

var flashes = map[string]string{
	"profile": "Your profile is saved.", "revoked": "Access revoked: the service can no longer use its tokens.",
	"ended": "That device is signed out.", "others": "Every other device is signed out.",
	"privacy":         "Your privacy settings are saved; they apply from the next sign-in to each service.",
	"password":        "Your password is changed.",
	"verify-sent":     "A verification link is on its way to your email address.",
	"passkey-added":   "Your passkey is added: you can sign in with it from now on.",
	"passkey-renamed": "The passkey is renamed.",
	"passkey-removed": "The passkey is removed: it can no longer sign you in.",
	"mfa-added":       "Your authenticator app is set up.",
	"mfa-removed":     "The authenticator app is removed.",
	"mfa-required":    "Your second-factor setting is saved.",
	"peer-revoked":    "That cloud can no longer sign you in, and it forgets your account unless your sharing setting shares it with every cloud.",
}

// formError re-renders a section with an error, as a page.
func (h *Handler) formError(w http.ResponseWriter, r *http.Request, err error, section, tmpl string, data map[string]any) error {
	var ae *apiError
	var ve *identity.ValidationError
	msg := ""
	status := http.StatusBadRequest
	setRetryAfter(w, err)
	switch {
	case errors.As(err, &ae):
		msg, status = ae.msg, ae.status
		if status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", RetryAfterSeconds)
		}
		if ae == errReauth {
			msg = "Please enter your password to confirm."
		}
	case errors.As(err, &ve):
		msg = ve.Error()
	case isSettingsError(err):
		msg = strings.ReplaceAll(err.Error(), "\n", "; ")
	default:
		return err
	}
	if data == nil {
		data = map[string]any{}
	}
	data["Error"] = msg
	m := current(r)
	data["Section"], data["Account"] = section, m.acct
	h.Render(w, r, status, tmpl, data)
	return nil
}

// --- overview ---

func (h *Handler) overview(r *http.Request) (map[string]any, error) {
	m := current(r)
	st, err := h.PrivacySvc.Settings(r.Context(), m.acct.DID)
	if err != nil {
		return nil, err
	}
	acc, err := h.accessView(r, m.acct.DID) // account_access.go
	if err != nil {
		return nil, err
	}
	return map[string]any{"Settings": st, "Access": acc}, nil
}

func (h *Handler) pageOverview(w http.ResponseWriter, r *http.Request) error {
	d, err := h.overview(r)
	if err != nil {
		return err
	}
	h.page(w, r, "overview", "account", d)
	return nil
}

func (h *Handler) apiOverview(w http.ResponseWriter, r *http.Request) (any, error) {
	m := current(r)
	st, err := h.PrivacySvc.Settings(r.Context(), m.acct.DID)
	if err != nil {
		return nil, err
	}
	return map[string]any{"did": m.acct.DID, "handle": m.acct.Handle, "home_cloud": m.acct.HomeIssuer, "subject_mode": st.SubjectMode}, nil
}

// --- profile ---

type receiver struct {
	ClientID string    `json:"client_id"`
	Name     string    `json:"name"`
	When     time.Time `json:"last_released_at"`
}

type claimReceivers struct {
	Name      string     `json:"claim"`
	Label     string     `json:"-"`
	Receivers []receiver `json:"received_by"`
}

// receivers reads the activity log: for each claim, which services got it
// and when last.
func (h *Handler) receivers(ctx context.Context, did string) ([]claimReceivers, error) {
	last := map[string]map[string]time.Time{}
	before := int64(0)
	for range 10 { // the newest 5,000 entries
		page, err := h.Privacy.ListActivity(ctx, did, before, 500)
		if err != nil {
			return nil, err
		}
		for _, a := range page {
			if a.Kind != privacy.ActivityRelease && a.Kind != privacy.ActivityTokenIssued {
				continue
			}
			key := "claims"
			if a.Kind == privacy.ActivityTokenIssued {
				key = "id_token_claims"
			}
			cs, _ := a.Detail[key].([]any)
			for _, c := range cs {
				name, _ := c.(string)
				if last[name] == nil {
					last[name] = map[string]time.Time{}
				}
				if t, ok := last[name][a.ClientID]; !ok || a.At.After(t) {
					last[name][a.ClientID] = a.At
				}
			}
		}
		if len(page) < 500 {
			break
		}
		before = page[len(page)-1].ID
	}
	var out []claimReceivers
	names := h.serviceNames(ctx)
	for _, c := range []string{"name", "preferred_username", "email", "email_verified", "did", "updated_at"} {
		cr := claimReceivers{Name: c, Label: claimLabel(c), Receivers: []receiver{}}
		for cid, t := range last[c] {
			cr.Receivers = append(cr.Receivers, receiver{ClientID: cid, Name: names(cid), When: t})
		}
		sort.Slice(cr.Receivers, func(i, j int) bool { return cr.Receivers[i].When.After(cr.Receivers[j].When) })
		out = append(out, cr)
	}
	return out, nil
}

// serviceNames returns a lookup of service names by client_id that asks
// each service once; a service no longer registered shows its client_id.
func (h *Handler) serviceNames(ctx context.Context) func(clientID string) string {
	names := map[string]string{}
	return func(id string) string {
		if n, ok := names[id]; ok {
			return n
		}
		names[id] = id
		if si, err := h.Services(ctx, id); err == nil {
			names[id] = si.Name
		}
		return names[id]
	}
}

var claimLabels = map[string]string{"name": "Name", "preferred_username": "Handle", "email": "Email",
	"email_verified": "Email verified", "did": "DID", "updated_at": "Profile updated at"}

func claimLabel(c string) string {
	if l, ok := claimLabels[c]; ok {
		return l
	}
	return c
}

func (h *Handler) pageProfile(w http.ResponseWriter, r *http.Request) error {
	rc, err := h.receivers(r.Context(), current(r).acct.DID)
	if err != nil {
		return err
	}
	h.page(w, r, "profile", "account_profile", map[string]any{"Claims": rc})
	return nil
}

func (h *Handler) apiProfile(w http.ResponseWriter, r *http.Request) (any, error) {
	m := current(r)
	rc, err := h.receivers(r.Context(), m.acct.DID)
	if err != nil {
		return nil, err
	}
	return map[string]any{"handle": m.acct.Handle, "name": m.acct.Name, "email": m.acct.Email,
		"email_verified": m.acct.EmailVerified, "claims": rc}, nil
}

type profileInput struct {
	Name  *string `json:"name"`
	Email *string `json:"email"`
}

func (h *Handler) updateProfile(r *http.Request, in profileInput) error {
	m := current(r)
	err := h.Accounts.UpdateProfile(r.Context(), m.acct.DID, in.Name, in.Email)
	if err == nil && in.Email != nil && strings.TrimSpace(*in.Email) != m.acct.Email {
		h.sendVerificationLogged(r, m.acct.DID) // a new address is verified again
	}
	if err == nil {
		h.Privacy.AppendActivity(r.Context(), &privacy.Activity{AccountDID: m.acct.DID, At: h.Now().UTC(), Kind: "profile.updated",
			IP: clientIP(r), UserAgent: h.meta(r).UserAgent})
	}
	return err
}

func (h *Handler) postProfile(w http.ResponseWriter, r *http.Request) error {
	name, email := r.PostForm.Get("name"), r.PostForm.Get("email")
	if err := h.updateProfile(r, profileInput{Name: &name, Email: &email}); err != nil {
		rc, _ := h.receivers(r.Context(), current(r).acct.DID)
		return h.formError(w, r, joinValidation(err), "profile", "account_profile", map[string]any{"Claims": rc})
	}
	http.Redirect(w, r, "/account/profile?done=profile", http.StatusSeeOther)
	return nil
}

// joinValidation makes a joined validation error one ValidationError.
func joinValidation(err error) error {
	var msgs []string
	for _, e := range unjoin(err) {
		var ve *identity.ValidationError
		if !errors.As(e, &ve) {
			return err
		}
		msgs = append(msgs, ve.Error())
	}
	return &identity.ValidationError{Field: "profile", Message: strings.Join(msgs, "; ")}
}

func (h *Handler) apiPutProfile(w http.ResponseWriter, r *http.Request) (any, error) {
	var in profileInput
	if err := decodeJSON(w, r, &in); err != nil {
		return nil, err
	}
	if err := h.updateProfile(r, in); err != nil {
		return nil, joinValidation(err)
	}
	return h.apiProfile(w, r)
}

// decodeJSON reads the body as one JSON object of v's fields: unknown,
// duplicated and differently-cased keys are refused (httpx.StrictJSON).
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFormBytes))
	if err == nil {
		err = httpx.StrictJSON{DisallowUnknown: true}.Decode(body, v)
	}
	if err != nil {
		return &apiError{http.StatusBadRequest, "invalid_request", "the body is not the expected JSON: " + err.Error()}
	}
	return nil
}

// --- services ---

type serviceView struct {
	ServiceInfo
	Scopes     []string   `json:"scopes"`
	Claims     []string   `json:"claims"`
	GrantedAt  time.Time  `json:"granted_at"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	// TermsChanged: the service's commitments changed since the person
	// consented; Terms is what the page shows of them.
	TermsChanged bool        `json:"terms_changed"`
	Terms        *terms.View `json:"-"`
}

func (h *Handler) services(ctx context.Context, did string) ([]serviceView, error) {
	cs, err := h.Privacy.ListConsents(ctx, did)
	if err != nil {
		return nil, err
	}
	peers, err := h.peerIssuers(ctx)
	if err != nil {
		return nil, err
	}
	out := []serviceView{}
	for _, c := range cs {
		if _, ok := peers[c.ClientID]; ok {
			continue // a cloud that may sign the person in: the privacy page lists it (peergrants.go)
		}
		si, err := h.Services(ctx, c.ClientID)
		known := err == nil
		if err != nil {
			si = &ServiceInfo{ClientID: c.ClientID, Name: c.ClientID + " (no longer registered)"}
		}
		sv := serviceView{ServiceInfo: *si, Scopes: c.Scopes, Claims: nonNil(c.Claims), GrantedAt: c.GrantedAt,
			ExpiresAt: c.ExpiresAt, LastUsedAt: c.LastUsedAt}
		if known {
			sv.TermsChanged = si.TermsHash != c.TermsHash
			sv.Terms = terms.ViewOf(si.Commitments, si.OutsideTerms, sv.TermsChanged, nil)
		}
		out = append(out, sv)
	}
	return out, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (h *Handler) pageServices(w http.ResponseWriter, r *http.Request) error {
	sv, err := h.services(r.Context(), current(r).acct.DID)
	if err != nil {
		return err
	}
	h.page(w, r, "services", "account_services", map[string]any{"Services": sv})
	return nil
}

func (h *Handler) apiServices(w http.ResponseWriter, r *http.Request) (any, error) {
	return h.services(r.Context(), current(r).acct.DID)
}

// isPeer reports whether clientID is a peer cloud's: its grant is revoked as
// such (peergrants.go), never as a service's consent.
func (h *Handler) isPeer(ctx context.Context, clientID string) (bool, error) {
	peers, err := h.peerIssuers(ctx)
	_, ok := peers[clientID]
	return ok, err
}

func (h *Handler) postRevoke(w http.ResponseWriter, r *http.Request) error {
	if peer, err := h.isPeer(r.Context(), r.PostForm.Get("client_id")); err != nil || peer {
		if err == nil {
			err = h.revokePeerGrant(r, r.PostForm.Get("client_id"))
		}
		if err != nil {
			return err
		}
		http.Redirect(w, r, "/account/privacy?done=peer-revoked#clouds", http.StatusSeeOther)
		return nil
	}
	err := h.revokeConsent(r, r.PostForm.Get("client_id"))
	if errors.Is(err, privacy.ErrNoConsent) {
		return store.ErrNotFound
	}
	if err != nil {
		return err
	}
	http.Redirect(w, r, "/account/services?done=revoked", http.StatusSeeOther)
	return nil
}

func (h *Handler) apiRevoke(w http.ResponseWriter, r *http.Request) (any, error) {
	id := chi.URLParam(r, "client_id")
	if peer, err := h.isPeer(r.Context(), id); err != nil || peer {
		if err == nil {
			err = h.revokePeerGrant(r, id)
		}
		return nil, err
	}
	if err := h.revokeConsent(r, id); err != nil {
		return nil, err
	}
	return nil, nil
}

// --- activity ---

type activityView struct {
	ID      int64     `json:"id"`
	At      time.Time `json:"at"`
	Kind    string    `json:"kind"`
	Label   string    `json:"-"`
	Client  string    `json:"client_id,omitempty"`
	Service string    `json:"service,omitempty"`
	Details string    `json:"details,omitempty"`
	IP      string    `json:"ip,omitempty"`
	Browser string    `json:"user_agent,omitempty"`
}

var activityKinds = []struct{ Value, Label string }{
	{privacy.ActivityLogin, "Sign-in"}, {privacy.ActivityConsent, "Consent given"}, {privacy.ActivityConsentDenied, "Consent refused"},
	{privacy.ActivityTokenIssued, "Sign-in to a service"}, {privacy.ActivityRelease, "Data shared"},
	{privacy.ActivityRevoked, "Access revoked"}, {"settings.updated", "Settings changed"}, {"profile.updated", "Profile changed"},
	{"password.changed", "Password changed"}, {"password.reset", "Password reset"}, {"email.verified", "Email verified"}, {"sessions.ended", "Device signed out"}, {privacy.ActivityLogout, "Sign-out"},
	{"passkey.added", "Passkey added"}, {"passkey.removed", "Passkey removed"},
	{ActivityMFAAdded, "Second factor added"}, {ActivityMFARemoved, "Second factor removed"},
	{ActivityRecoveryCodes, "Recovery codes made"}, {ActivityRecoveryCodeUsed, "Recovery code used"},
	{ActivityRecoveryKitUsed, "Recovery kit used in place of the second factor"},
	{ActivityMFARequired, "Second-factor requirement changed"},
	{ActivityRecovered, "Account recovered here with the recovery kit"}, {ActivityKitRotated, "Recovery kit replaced"},
	{ActivityUpgraded, "Identifier upgraded to did:webvh"}, {"custodial_key.rotated", "This cloud's key for your identifier replaced"},
	{"subject.disclosed", "Another cloud learned your identifier for a service"},
	{privacy.ActivityPeerGranted, "Cloud allowed to sign you in"}, {privacy.ActivityPeerRevoked, "Cloud no longer signs you in"},
}

func kindLabel(k string) string {
	for _, x := range activityKinds {
		if x.Value == k {
			return x.Label
		}
	}
	return k
}

const activityPage = 50

// activity returns one page of entries of a kind ("" for all), newest first,
// and the id to continue before (0 at the end).
func (h *Handler) activity(ctx context.Context, did, kind string, before int64) ([]activityView, int64, error) {
	out := []activityView{}
	names := h.serviceNames(ctx)
	for range 20 {
		page, err := h.Privacy.ListActivity(ctx, did, before, 200)
		if err != nil {
			return nil, 0, err
		}
		for _, a := range page {
			before = a.ID
			if kind != "" && a.Kind != kind {
				continue
			}
			v := activityView{ID: a.ID, At: a.At, Kind: a.Kind, Label: kindLabel(a.Kind), Client: a.ClientID, IP: a.IP, Browser: a.UserAgent}
			if a.ClientID != "" {
				v.Service = names(a.ClientID)
			}
			v.Details = describe(a.Detail)
			out = append(out, v)
			if len(out) == activityPage {
				return out, a.ID, nil
			}
		}
		if len(page) < 200 {
			return out, 0, nil
		}
	}
	return out, before, nil
}

func describe(d map[string]any) string {
	var parts []string
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch v := d[k].(type) {
		case []any:
			var s []string
			for _, x := range v {
				s = append(s, fmt.Sprint(x))
			}
			if len(s) == 0 {
				s = []string{"none"}
			}
			parts = append(parts, strings.ReplaceAll(k, "_", " ")+": "+strings.Join(s, ", "))
		case nil:
			parts = append(parts, strings.ReplaceAll(k, "_", " ")+": none")
		default:
			parts = append(parts, strings.ReplaceAll(k, "_", " ")+": "+fmt.Sprint(v))
		}
	}
	return strings.Join(parts, "; ")
}

func parseBefore(r *http.Request) int64 {
	b, _ := strconv.ParseInt(r.URL.Query().Get("before"), 10, 64)
	return b
}

func (h *Handler) pageActivity(w http.ResponseWriter, r *http.Request) error {
	kind := r.URL.Query().Get("kind")
	entries, next, err := h.activity(r.Context(), current(r).acct.DID, kind, parseBefore(r))
	if err != nil {
		return err
	}
	d := map[string]any{"Entries": entries, "Kind": kind, "Kinds": activityKinds}
	if next > 0 {
		d["Next"] = next
	}
	h.page(w, r, "activity", "account_activity", d)
	return nil
}

func (h *Handler) apiActivity(w http.ResponseWriter, r *http.Request) (any, error) {
	entries, next, err := h.activity(r.Context(), current(r).acct.DID, r.URL.Query().Get("kind"), parseBefore(r))
	if err != nil {
		return nil, err
	}
	return map[string]any{"entries": entries, "next_before": next}, nil
}

// --- sessions ---

type sessionView struct {
	ID         string    `json:"id"`
	Current    bool      `json:"current"`
	Browser    string    `json:"user_agent"`
	IP         string    `json:"ip"`
	AuthTime   time.Time `json:"auth_time"`
	LastSeenAt time.Time `json:"last_seen_at"`
}

func (h *Handler) sessions(r *http.Request) ([]sessionView, error) {
	m := current(r)
	ss, err := h.Sessions.Store.ListSessions(r.Context(), m.acct.DID)
	if err != nil {
		return nil, err
	}
	out := []sessionView{}
	now := h.Now()
	for _, s := range ss {
		if now.After(s.ExpiresAt) {
			continue
		}
		b := s.UserAgent
		if b == "" {
			b = "Unknown browser"
		}
		out = append(out, sessionView{ID: s.IDHash, Current: s.IDHash == m.sess.IDHash, Browser: b, IP: s.IP, AuthTime: s.AuthTime, LastSeenAt: s.LastSeenAt})
	}
	return out, nil
}

func (h *Handler) pageSessions(w http.ResponseWriter, r *http.Request) error {
	ss, err := h.sessions(r)
	if err != nil {
		return err
	}
	h.page(w, r, "sessions", "account_sessions", map[string]any{"Sessions": ss, "NeedReauth": h.needReauth(current(r))})
	return nil
}

func (h *Handler) apiSessions(w http.ResponseWriter, r *http.Request) (any, error) {
	return h.sessions(r)
}

// endSession signs out one of the person's own sessions.
func (h *Handler) endSession(r *http.Request, id string) error {
	m := current(r)
	s, err := h.Sessions.Store.GetSession(r.Context(), id)
	if err != nil || s.AccountDID != m.acct.DID {
		return store.ErrNotFound // another person's session is not there
	}
	if err := h.Sessions.Store.DeleteSession(r.Context(), id); err != nil {
		return err
	}
	return h.Privacy.AppendActivity(r.Context(), &privacy.Activity{AccountDID: m.acct.DID, At: h.Now().UTC(), Kind: "sessions.ended",
		Detail: map[string]any{"count": 1}, IP: clientIP(r), UserAgent: h.meta(r).UserAgent})
}

func (h *Handler) postEndSession(w http.ResponseWriter, r *http.Request) error {
	if err := h.endSession(r, r.PostForm.Get("id")); err != nil {
		return err
	}
	http.Redirect(w, r, "/account/sessions?done=ended", http.StatusSeeOther)
	return nil
}

func (h *Handler) apiEndSession(w http.ResponseWriter, r *http.Request) (any, error) {
	return nil, h.endSession(r, chi.URLParam(r, "id"))
}

func (h *Handler) postEndOthers(w http.ResponseWriter, r *http.Request) error {
	m := current(r)
	if err := h.reauth(r, m, r.PostForm.Get("password")); err != nil {
		ss, _ := h.sessions(r)
		return h.formError(w, r, err, "sessions", "account_sessions", map[string]any{"Sessions": ss, "NeedReauth": true})
	}
	n, err := h.Sessions.Store.DeleteSessionsOf(r.Context(), m.acct.DID, m.sess.IDHash)
	if err != nil {
		return err
	}
	h.Privacy.AppendActivity(r.Context(), &privacy.Activity{AccountDID: m.acct.DID, At: h.Now().UTC(), Kind: "sessions.ended",
		Detail: map[string]any{"count": n}, IP: clientIP(r), UserAgent: h.meta(r).UserAgent})
	http.Redirect(w, r, "/account/sessions?done=others", http.StatusSeeOther)
	return nil
}

// --- privacy settings ---

type option struct {
	Value int
	Label string
}

var lifetimes = []option{{0, "Until I revoke them"}, {30, "30 days"}, {90, "90 days"}, {365, "1 year"}}
var retentions = []option{{30, "30 days"}, {90, "90 days"}, {365, "1 year"}, {730, "2 years"}, {0, "Forever"}}

type policyRow struct{ Name, Label, Policy string }

func (h *Handler) privacyData(r *http.Request, st *privacy.Settings) (map[string]any, error) {
	var rows []policyRow
	for _, c := range []string{"name", "preferred_username", "email", "email_verified", "updated_at", "did"} {
		rows = append(rows, policyRow{c, claimLabel(c), st.Policy(c)})
	}
	grants, err := h.peerGrants(r.Context(), current(r).acct.DID)
	if err != nil {
		return nil, err
	}
	return map[string]any{"Settings": st, "Policies": rows, "Lifetimes": lifetimes, "Retentions": retentions,
		"Clouds": grants}, nil
}

func (h *Handler) pagePrivacy(w http.ResponseWriter, r *http.Request) error {
	st, err := h.PrivacySvc.Settings(r.Context(), current(r).acct.DID)
	if err != nil {
		return err
	}
	d, err := h.privacyData(r, st)
	if err != nil {
		return err
	}
	h.page(w, r, "privacy", "account_privacy", d)
	return nil
}

func (h *Handler) apiPrivacy(w http.ResponseWriter, r *http.Request) (any, error) {
	return h.PrivacySvc.Settings(r.Context(), current(r).acct.DID)
}

func (h *Handler) savePrivacy(r *http.Request, st *privacy.Settings) error {
	if err := h.PrivacySvc.UpdateSettings(r.Context(), current(r).acct.DID, st, h.meta(r)); err != nil {
		var ve *identity.ValidationError
		if errors.As(err, &ve) {
			return err
		}
		if strings.Contains(err.Error(), " must ") || strings.Contains(err.Error(), "unknown claim") {
			return settingsError{err}
		}
		return err
	}
	return nil
}

func (h *Handler) postPrivacy(w http.ResponseWriter, r *http.Request) error {
	m := current(r)
	cur, err := h.PrivacySvc.Settings(r.Context(), m.acct.DID)
	if err != nil {
		return err
	}
	f := r.PostForm
	next := *cur
	next.SubjectMode = f.Get("subject_mode")
	next.ForkPolicy = f.Get("fork_policy")
	next.FederationSharing = f.Get("federation_sharing")
	next.Discoverable = f.Get("discoverable") == "yes"
	next.ConsentLifetimeDays, _ = strconv.Atoi(f.Get("consent_lifetime_days"))
	next.ActivityRetentionDays, _ = strconv.Atoi(f.Get("activity_retention_days"))
	next.ClaimPolicy = map[string]string{}
	for k, v := range f {
		if c, ok := strings.CutPrefix(k, "claim_"); ok && len(v) > 0 && v[0] != privacy.PolicyAsk {
			next.ClaimPolicy[c] = v[0]
		}
	}
	if err := h.savePrivacy(r, &next); err != nil {
		d, derr := h.privacyData(r, cur)
		if derr != nil {
			return derr
		}
		return h.formError(w, r, err, "privacy", "account_privacy", d)
	}
	http.Redirect(w, r, "/account/privacy?done=privacy", http.StatusSeeOther)
	return nil
}

func (h *Handler) apiPutPrivacy(w http.ResponseWriter, r *http.Request) (any, error) {
	var st privacy.Settings
	if err := decodeJSON(w, r, &st); err != nil {
		return nil, err
	}
	if err := h.savePrivacy(r, &st); err != nil {
		return nil, err
	}
	return h.PrivacySvc.Settings(r.Context(), current(r).acct.DID)
}

// --- security ---

func (h *Handler) pageSecurity(w http.ResponseWriter, r *http.Request) error {
	h.page(w, r, "security", "account_security", h.securityData(r))
	return nil
}

func (h *Handler) changePassword(r *http.Request, current_, next string) error {
	m := current(r)
	if _, err := h.recheckPassword(r, current_); err != nil {
		if errors.Is(err, identity.ErrBadCredentials) {
			return &apiError{http.StatusForbidden, "reauth_failed", "the current password is wrong"}
		}
		return err // over budget, or the 503 answer (signin_limits.go)
	}
	if err := h.Accounts.SetPassword(r.Context(), m.acct.DID, next); err != nil {
		return err
	}
	if err := h.Sessions.Store.ReauthSession(r.Context(), m.sess.IDHash, h.Now().UTC()); err != nil {
		return err
	}
	// Other devices must sign in with the new password.
	h.Sessions.Store.DeleteSessionsOf(r.Context(), m.acct.DID, m.sess.IDHash)
	return h.Privacy.AppendActivity(r.Context(), &privacy.Activity{AccountDID: m.acct.DID, At: h.Now().UTC(), Kind: "password.changed",
		IP: clientIP(r), UserAgent: h.meta(r).UserAgent})
}

func (h *Handler) postPassword(w http.ResponseWriter, r *http.Request) error {
	if err := h.changePassword(r, r.PostForm.Get("current_password"), r.PostForm.Get("new_password")); err != nil {
		return h.formError(w, r, err, "security", "account_security", nil)
	}
	http.Redirect(w, r, "/account/security?done=password", http.StatusSeeOther)
	return nil
}

func (h *Handler) apiPassword(w http.ResponseWriter, r *http.Request) (any, error) {
	var in struct {
		Current string `json:"current_password"`
		New     string `json:"new_password"`
	}
	if err := decodeJSON(w, r, &in); err != nil {
		return nil, err
	}
	return nil, h.changePassword(r, in.Current, in.New)
}

// --- data ---

func (h *Handler) pageData(w http.ResponseWriter, r *http.Request) error {
	h.page(w, r, "data", "account_data", nil)
	return nil
}

// deleteAccount revokes every token and session, removes the personal data
// and keeps the DID and handle as a tombstone.
func (h *Handler) deleteAccount(r *http.Request, password string) error {
	m := current(r)
	if _, err := h.recheckPassword(r, password); err != nil {
		if errors.Is(err, identity.ErrBadCredentials) {
			return &apiError{http.StatusForbidden, "reauth_failed", "wrong password"}
		}
		return err // over budget, or the 503 answer (signin_limits.go)
	}
	queue := h.endingSignIns(r.Context(), m.acct.DID, "")
	return h.Privacy.InTx(r.Context(), func(ctx context.Context) error {
		if err := queue(ctx); err != nil {
			return err
		}
		if err := h.Privacy.ForgetAccount(ctx, m.acct.DID); err != nil {
			return err
		}
		if err := h.Accounts.Delete(ctx, m.acct.DID); err != nil {
			return err
		}
		if h.Events == nil {
			return nil
		}
		// For the peers that replicate this account: the DID and the
		// handle of the tombstone, nothing else.
		return h.Events.AppendEvent(ctx, "account.deleted", m.acct.DID, h.Now().UTC(), map[string]any{"handle": m.acct.Handle})
	})
}

func (h *Handler) clearCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: h.sessionCookie(), Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: h.SecureCookies, SameSite: http.SameSiteLaxMode})
}

func (h *Handler) postDelete(w http.ResponseWriter, r *http.Request) error {
	if r.PostForm.Get("confirm") != "yes" {
		return h.formError(w, r, &apiError{http.StatusBadRequest, "invalid_request", "Tick the box to confirm."}, "data", "account_data", nil)
	}
	if err := h.deleteAccount(r, r.PostForm.Get("password")); err != nil {
		return h.formError(w, r, err, "data", "account_data", nil)
	}
	h.clearCookie(w)
	h.Log.InfoContext(r.Context(), "account deleted")
	h.Render(w, r, http.StatusOK, "account_deleted", nil)
	return nil
}

func (h *Handler) apiDelete(w http.ResponseWriter, r *http.Request) (any, error) {
	var in struct {
		Password string `json:"password"`
	}
	if err := decodeJSON(w, r, &in); err != nil {
		return nil, err
	}
	if err := h.deleteAccount(r, in.Password); err != nil {
		return nil, err
	}
	h.clearCookie(w)
	return nil, nil
}
