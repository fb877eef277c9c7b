package web

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/internal/httpx"
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
	h.Render(w, r, http.StatusOK, "login", map[string]any{"ReturnTo": localPath(r.URL.Query().Get("return_to")), "Passkeys": h.passkeysOn()})
	return nil
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
	a, err := h.Accounts.Authenticate(r.Context(), username, r.PostFormValue("password"))
	if errors.Is(err, identity.ErrBadCredentials) {
		h.Render(w, r, http.StatusUnauthorized, "login", map[string]any{"ReturnTo": returnTo, "Username": username,
			"Error": "Wrong handle or password.", "Passkeys": h.passkeysOn()})
		return nil
	}
	if err != nil {
		return err
	}
	if err := h.startSession(w, r, a, amrPassword, map[string]any{"method": "password"}); err != nil {
		return err
	}
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
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: tok, Path: "/", Expires: sess.ExpiresAt,
		HttpOnly: true, Secure: h.SecureCookies, SameSite: http.SameSiteLaxMode,
	})
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
