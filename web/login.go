package web

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/go-chi/chi/v5/middleware"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/internal/httpx"
	"github.com/onecommons/commonsid/internal/metrics"
	"github.com/onecommons/commonsid/privacy"
)

// localPath returns p when it is a path on this site ("/…", not "//…"),
// else "": return_to never leads elsewhere.
func localPath(p string) string {
	if p == "" || len(p) > 2048 || !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") {
		return ""
	}
	u, err := url.Parse(p)
	if err != nil || u.IsAbs() || u.Host != "" {
		return ""
	}
	return p
}

func (h *Handler) loginForm(w http.ResponseWriter, r *http.Request) error {
	h.Render(w, r, http.StatusOK, "login", h.loginData(r, localPath(r.URL.Query().Get("return_to"))))
	return nil
}

// HomeCloud is a peer cloud people may sign in with (brokered sign-in).
type HomeCloud struct {
	Issuer string
	Host   string
}

func (h *Handler) loginData(r *http.Request, returnTo string) map[string]any {
	d := map[string]any{"ReturnTo": returnTo, "Passkeys": h.passkeysOn(), "UILocales": r.FormValue("ui_locales")}
	if r.FormValue("acr") == "mfa" {
		// The service asked for a second factor (oidc): kept through the
		// form, so that the person's factor is asked after the password.
		d["ACR"] = "mfa"
	}
	if h.HomeClouds != nil {
		if hc, err := h.HomeClouds(r.Context()); err == nil && len(hc) > 0 {
			d["HomeClouds"] = hc
		}
	}
	return d
}

// StartSession starts a sign-on session for a person signed in by other
// means (a brokered sign-in with their home cloud).
func (h *Handler) StartSession(w http.ResponseWriter, r *http.Request, a *identity.Account, amr []string, detail map[string]any) error {
	return h.startSession(w, r, a, amr, detail)
}

// ErrorPage renders the error page.
func (h *Handler) ErrorPage(w http.ResponseWriter, r *http.Request, status int, title, msg string) {
	h.Render(w, r, status, "error", map[string]any{"Title": title, "Message": msg})
}

// login checks the password and starts a sign-on session. Every failure gets
// the same answer, after the same hashing work, whether or not the handle
// exists.
func (h *Handler) login(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return &httpError{http.StatusBadRequest, "Bad request", "The form could not be read."}
	}
	username, returnTo := r.PostFormValue("username"), localPath(r.PostFormValue("return_to"))
	if moved, err := h.Accounts.Lookup(r.Context(), username); err == nil && moved.Status == identity.StatusMoved {
		// A move is public (the account's DID document names the new
		// home): say where the account went.
		h.Render(w, r, http.StatusGone, "moved", map[string]any{"Handle": moved.Handle, "Home": moved.HomeIssuer})
		return nil
	}
	// The failure budgets of the account, the source or the known device
	// (signin_limits.go).
	g, err := h.guardSignIn(r, username)
	if err != nil {
		return h.unavailable(w, r, "sign-in", err)
	}
	if g.wait > 0 {
		h.signInFailed(r, metrics.MethodPassword, metrics.OutcomeLimited, username, g.acct)
		h.TooManyPage(w, r, g.wait)
		return nil
	}
	a, err := h.Accounts.Authenticate(r.Context(), username, r.PostFormValue("password"))
	if errors.Is(err, identity.ErrBadCredentials) {
		h.signInFailed(r, metrics.MethodPassword, metrics.OutcomeBadCredentials, username, g.acct)
		h.failedSignIn(r, g)
		d := h.loginData(r, returnTo)
		d["Username"], d["Error"] = username, "Wrong handle or password."
		h.Render(w, r, http.StatusUnauthorized, "login", d)
		return nil
	}
	if err != nil {
		// No verdict on the password: not an attempt against the account.
		g.noVerdict(r.Context())
		return h.unavailable(w, r, "sign-in", err)
	}
	// Failures elsewhere spent the account's budget: only its second
	// factor can finish this sign-in.
	if pending, err := h.requireSecondFactor(w, r, a, returnTo, r.PostFormValue("acr") == "mfa" || g.secondFactor); err != nil {
		g.noVerdict(r.Context())
		return h.unavailable(w, r, "sign-in", err)
	} else if pending {
		metrics.SignIn(metrics.MethodPassword, metrics.OutcomeSecondFactorRequired)
		g.awaitsSecondFactor(r.Context())
		return nil // no session until the second factor (mfa.go)
	}
	if g.secondFactor {
		h.signInFailed(r, metrics.MethodPassword, metrics.OutcomeLimited, username, a)
		h.TooManyPage(w, r, g.accountWait) // the factor went away meanwhile
		return nil
	}
	if err := h.startSession(w, r, a, amrPassword, map[string]any{"method": "password"}); err != nil {
		g.noVerdict(r.Context())
		return h.unavailable(w, r, "sign-in", err)
	}
	g.succeeded(r.Context())
	if returnTo == "" {
		returnTo = "/"
	}
	http.Redirect(w, r, returnTo, http.StatusSeeOther)
	return nil
}

// amrPassword is the sign-in method of a password (RFC 8176).
var amrPassword = []string{"pwd"}

// startSession creates a sign-on session for a person who signed in by the
// methods amr, sets its cookie and logs the sign-in with detail.
func (h *Handler) startSession(w http.ResponseWriter, r *http.Request, a *identity.Account, amr []string, detail map[string]any) error {
	ip := clientIP(r)
	tok, sess, err := h.Sessions.Start(r.Context(), a, amr, r.UserAgent(), ip)
	if err != nil {
		return err
	}
	metrics.SignIn(signInMethod(detail), metrics.OutcomeSuccess)
	http.SetCookie(w, &http.Cookie{
		Name: h.sessionCookie(), Value: tok, Path: "/", Expires: sess.ExpiresAt,
		HttpOnly: true, Secure: h.SecureCookies, SameSite: http.SameSiteLaxMode,
	})
	_, known := h.knownDevice(r, a.DID)
	h.rememberDevice(w, r, a.DID) // a known device from now on (signin_limits.go)
	if !known {
		h.notifyNewDevice(r, a, amr, detail) // signin_notices.go
	}
	if h.Privacy != nil {
		err := h.Privacy.AppendActivity(r.Context(), &privacy.Activity{AccountDID: a.DID, At: sess.CreatedAt, Kind: privacy.ActivityLogin,
			Detail: detail, IP: ip, UserAgent: sess.UserAgent})
		if err != nil {
			h.Log.ErrorContext(r.Context(), "activity log", "err", err)
		}
	}
	return nil
}

func clientIP(r *http.Request) string { return httpx.ClientIP(r) }

// SessionCookieName is the name of the sign-on cookie: under https it
// carries the __Host- prefix, so that browsers accept it only when Secure,
// from this host, for Path=/ and without Domain; no sibling host or plain
// http answer can set or shadow it. Over http (development, tests) the
// prefix would make browsers drop it, so the plain name is used.
func SessionCookieName(secure bool) string {
	if secure {
		return "__Host-" + SessionCookie
	}
	return SessionCookie
}

func (h *Handler) sessionCookie() string { return SessionCookieName(h.SecureCookies) }

// RetryAfterSeconds is the Retry-After of an answer given while storage is
// unavailable.
const RetryAfterSeconds = "5"

// unavailable answers a request the store could not serve: 503 with
// Retry-After and a page that says to try again. The log line carries the
// request id and the innermost cause only: the wrappers of store errors
// name the handle or DID they were about.
func (h *Handler) unavailable(w http.ResponseWriter, r *http.Request, what string, err error) error {
	h.Log.ErrorContext(r.Context(), what+": storage unavailable, answered 503",
		"request_id", middleware.GetReqID(r.Context()), "err", identity.RootCause(err))
	w.Header().Set("Retry-After", RetryAfterSeconds)
	h.Render(w, r, http.StatusServiceUnavailable, "error", map[string]any{"Title": "Temporarily unavailable",
		"Message": "Signing in is temporarily unavailable: the server could not reach its storage. Nothing was changed; please try again in a moment."})
	return nil
}

// errUnavailable logs a store failure behind an account API or form and
// returns the 503 answer for it (api and formError render it, with
// Retry-After).
func (h *Handler) errUnavailable(r *http.Request, what string, err error) error {
	h.Log.ErrorContext(r.Context(), what+": storage unavailable, answered 503",
		"request_id", middleware.GetReqID(r.Context()), "err", identity.RootCause(err))
	return &apiError{http.StatusServiceUnavailable, "temporarily_unavailable",
		"The server could not reach its storage. Nothing was changed; please try again in a moment."}
}
