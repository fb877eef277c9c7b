package web

// Single-use links mailed to the person: the verification of an email
// address (24 h) and the password reset (30 min). Only the hash of a link's
// token is stored (identity.TokenStore). A link's GET shows a form and only
// its POST uses the token, so mail scanners that fetch links spend nothing.

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/internal/limits"
	"github.com/onecommons/commonsid/mail"
	"github.com/onecommons/commonsid/privacy"
	"github.com/onecommons/commonsid/store"
)

// Paths of the account links.
const (
	ForgotPath      = "/login/forgot"
	ResetLinkPath   = "/login/reset"
	VerifyEmailPath = "/verify-email"
)

// Budgets of mail a person can cause: reset requests per account and
// verification resends per account. Every request counts (they are never
// cleared), so after Free the next waits progressively longer.
var (
	resetMailBudget  = limits.Policy{Name: "reset-mail", Free: 3, Window: time.Hour, MaxDelay: time.Hour}
	verifyMailBudget = limits.Policy{Name: "verify-mail", Free: 3, Window: time.Hour, MaxDelay: time.Hour}
)

func (h *Handler) mountAccountLinks(r chi.Router) {
	r.Method(http.MethodGet, ForgotPath, h.wrap(h.forgotForm))
	r.With(crossOrigin, formLimit, h.Limits.PerIP(10, time.Hour, false)).Method(http.MethodPost, ForgotPath, h.wrap(h.postForgot))
	r.Method(http.MethodGet, ResetLinkPath, h.wrap(h.resetForm))
	r.With(crossOrigin, formLimit, h.Limits.PerIP(30, time.Hour, false)).Method(http.MethodPost, ResetLinkPath, h.wrap(h.postReset))
	r.Method(http.MethodGet, VerifyEmailPath, h.wrap(h.verifyForm))
	r.With(crossOrigin, formLimit, h.Limits.PerIP(30, time.Hour, false)).Method(http.MethodPost, VerifyEmailPath, h.wrap(h.postVerify))
	r.With(h.requireAccount(false), crossOrigin, formLimit, h.homeOnly(false), h.Limits.PerIP(20, time.Hour, false)).
		Method(http.MethodPost, "/account/email/resend", h.wrap(h.postResend))
}

// tokens is the store of account links; nil when the store keeps none.
func (h *Handler) tokens() identity.TokenStore {
	ts, _ := h.Accounts.Store.(identity.TokenStore)
	return ts
}

// AccountLink is the absolute link of a token on this cloud.
func AccountLink(issuer, path, token string) string {
	return strings.TrimRight(issuer, "/") + path + "?token=" + url.QueryEscape(token)
}

func (h *Handler) common(a *identity.Account, to string) mail.Common {
	return mail.Common{To: to, Issuer: h.Issuer, Handle: a.Handle}
}

func (h *Handler) request(r *http.Request) mail.Request {
	return mail.Request{At: h.Now().UTC(), IP: clientIP(r)}
}

// SendVerification mails a new verification link for the account's
// address (replacing earlier ones). Nothing without an address, a sender
// or a token store.
func (h *Handler) SendVerification(ctx context.Context, a *identity.Account) error {
	ts := h.tokens()
	if a.Email == "" || a.EmailVerified || h.Mail == nil || ts == nil || h.Issuer == "" {
		return nil
	}
	token, err := identity.IssueAccountToken(ctx, ts, a.DID, identity.PurposeVerifyEmail, a.Email, h.Now(), identity.VerifyEmailTTL)
	if err != nil {
		return err
	}
	m, err := mail.Render(mail.KindVerifyEmail, mail.VerifyEmail{Common: h.common(a, a.Email),
		Link: AccountLink(h.Issuer, VerifyEmailPath, token), ValidFor: identity.VerifyEmailTTL})
	if err != nil {
		return err
	}
	return h.Mail.Send(ctx, m)
}

// sendVerificationLogged is SendVerification for flows that must not fail
// because mail did not go out (sign-up, a profile change).
func (h *Handler) sendVerificationLogged(r *http.Request, did string) {
	a, err := h.Accounts.Store.GetAccount(r.Context(), did)
	if err == nil {
		err = h.SendVerification(r.Context(), a)
	}
	if err != nil {
		h.Log.WarnContext(r.Context(), "verification mail not sent", "err", identity.RootCause(err))
	}
}

func (h *Handler) postResend(w http.ResponseWriter, r *http.Request) error {
	m := current(r)
	if _, wait, err := h.Limits.Take(r.Context(), verifyMailBudget, m.acct.DID); err != nil {
		return h.errUnavailable(r, "verification mail", err)
	} else if wait > 0 {
		return tooMany(wait, "Too many verification mails.")
	}
	if err := h.SendVerification(r.Context(), m.acct); err != nil {
		h.Log.WarnContext(r.Context(), "verification mail not sent", "err", identity.RootCause(err))
		return &httpError{http.StatusServiceUnavailable, "Mail not sent", "The verification mail could not be sent; please try again later."}
	}
	http.Redirect(w, r, "/account/profile?done=verify-sent", http.StatusSeeOther)
	return nil
}

func (h *Handler) linkToken(r *http.Request) string {
	t := r.URL.Query().Get("token")
	if r.Method == http.MethodPost {
		t = r.PostForm.Get("token")
	}
	if !identity.WellFormedToken(t) {
		return ""
	}
	return t
}

var errBadLink = &httpError{http.StatusBadRequest, "Link not valid", "This link is not valid: it was already used, it expired, or a newer one replaced it. Ask for a new one."}

func (h *Handler) verifyForm(w http.ResponseWriter, r *http.Request) error {
	t := h.linkToken(r)
	if t == "" {
		return errBadLink
	}
	h.Render(w, r, http.StatusOK, "verify_email", map[string]any{"Token": t})
	return nil
}

func (h *Handler) postVerify(w http.ResponseWriter, r *http.Request) error {
	t, ts := h.linkToken(r), h.tokens()
	if t == "" || ts == nil {
		return errBadLink
	}
	tok, err := ts.UseAccountToken(r.Context(), identity.HashToken(t), identity.PurposeVerifyEmail, h.Now().UTC())
	if errors.Is(err, store.ErrNotFound) {
		return errBadLink
	} else if err != nil {
		return err
	}
	ok, err := h.Accounts.MarkEmailVerified(r.Context(), tok.AccountDID, tok.Email)
	if err != nil {
		return err
	}
	if !ok {
		return errBadLink // the address changed since the link was sent
	}
	h.Privacy.AppendActivity(r.Context(), &privacy.Activity{AccountDID: tok.AccountDID, At: h.Now().UTC(), Kind: "email.verified",
		IP: clientIP(r), UserAgent: h.meta(r).UserAgent})
	h.Render(w, r, http.StatusOK, "verify_email", map[string]any{"Done": true})
	return nil
}

func (h *Handler) forgotForm(w http.ResponseWriter, r *http.Request) error {
	h.Render(w, r, http.StatusOK, "forgot", nil)
	return nil
}

// postForgot answers the same whether or not an account matches, and
// mails a reset link to the account's address when one does.
func (h *Handler) postForgot(w http.ResponseWriter, r *http.Request) error {
	ref := strings.TrimSpace(r.PostForm.Get("account"))
	if ref == "" || len(ref) > 254 {
		h.Render(w, r, http.StatusBadRequest, "forgot", map[string]any{"Error": "Enter your handle or email address.", "Account": ref})
		return nil
	}
	a, err := h.findForReset(r.Context(), ref)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return h.errUnavailable(r, "password reset", err)
	}
	key := "unknown\x00" + strings.ToLower(ref)
	if a != nil {
		key = a.DID
	}
	if _, wait, err := h.Limits.Take(r.Context(), resetMailBudget, key); err != nil {
		return h.errUnavailable(r, "password reset", err)
	} else if wait > 0 {
		return tooMany(wait, "Too many reset requests.")
	}
	if a != nil {
		if err := h.sendReset(r.Context(), a, h.request(r)); err != nil {
			h.Log.WarnContext(r.Context(), "reset mail not sent", "err", identity.RootCause(err))
		}
	}
	h.Render(w, r, http.StatusOK, "forgot", map[string]any{"Sent": true})
	return nil
}

// findForReset finds an active account of this cloud with a password by
// handle, DID or (verified or not) email address.
func (h *Handler) findForReset(ctx context.Context, ref string) (*identity.Account, error) {
	var a *identity.Account
	var err error
	if strings.Contains(ref, "@") {
		a, err = h.accountByEmail(ctx, ref)
	} else {
		a, err = h.Accounts.Lookup(ctx, ref)
	}
	if err != nil {
		return nil, err
	}
	if a.Status != identity.StatusActive || a.Email == "" || (a.HomeIssuer != "" && h.Issuer != "" && a.HomeIssuer != h.Issuer) {
		return nil, store.ErrNotFound
	}
	return a, nil
}

func (h *Handler) accountByEmail(ctx context.Context, email string) (*identity.Account, error) {
	f, ok := h.Accounts.Store.(interface {
		AccountByEmail(ctx context.Context, email string) (*identity.Account, error)
	})
	if !ok {
		return nil, store.ErrNotFound
	}
	return f.AccountByEmail(ctx, email)
}

func (h *Handler) sendReset(ctx context.Context, a *identity.Account, req mail.Request) error {
	ts := h.tokens()
	if h.Mail == nil || ts == nil || h.Issuer == "" {
		return errors.New("password reset: no mail sender")
	}
	token, err := identity.IssueAccountToken(ctx, ts, a.DID, identity.PurposeResetPassword, "", h.Now(), identity.ResetPasswordTTL)
	if err != nil {
		return err
	}
	m, err := mail.Render(mail.KindPasswordReset, mail.PasswordReset{Common: h.common(a, a.Email),
		Link: AccountLink(h.Issuer, ResetLinkPath, token), ValidFor: identity.ResetPasswordTTL, Request: req})
	if err != nil {
		return err
	}
	return h.Mail.Send(ctx, m)
}

// allGrants is the store's revocation of every code and token of an
// account (store/sqlstore); false when the store has none.
func (h *Handler) allGrants() (interface {
	DeleteAllGrantsOf(ctx context.Context, subject string) (int, error)
}, bool) {
	g, ok := h.Accounts.Store.(interface {
		DeleteAllGrantsOf(ctx context.Context, subject string) (int, error)
	})
	return g, ok
}

func (h *Handler) resetForm(w http.ResponseWriter, r *http.Request) error {
	t := h.linkToken(r)
	if t == "" {
		return errBadLink
	}
	h.Render(w, r, http.StatusOK, "reset", map[string]any{"Token": t})
	return nil
}

// postReset checks the new password first (so a typo does not spend the
// link), then uses the link, sets the password, ends every session of the
// account and tells the person by mail.
func (h *Handler) postReset(w http.ResponseWriter, r *http.Request) error {
	t, ts := h.linkToken(r), h.tokens()
	if t == "" || ts == nil {
		return errBadLink
	}
	pw := r.PostForm.Get("password")
	if err := identity.ValidatePassword(pw); err != nil {
		var ve *identity.ValidationError
		msg := err.Error()
		if errors.As(err, &ve) {
			msg = strings.ToUpper(ve.Field[:1]) + ve.Field[1:] + " " + ve.Message + "."
		}
		h.Render(w, r, http.StatusBadRequest, "reset", map[string]any{"Token": t, "Error": msg})
		return nil
	}
	tok, err := ts.UseAccountToken(r.Context(), identity.HashToken(t), identity.PurposeResetPassword, h.Now().UTC())
	if errors.Is(err, store.ErrNotFound) {
		return errBadLink
	} else if err != nil {
		return err
	}
	a, err := h.Accounts.Store.GetAccount(r.Context(), tok.AccountDID)
	if err != nil {
		return err
	}
	if a.Status != identity.StatusActive {
		return errBadLink
	}
	if err := h.Accounts.SetPassword(r.Context(), a.DID, pw); err != nil {
		return err
	}
	// Whoever held the old password may hold sessions and tokens made with
	// it: every session ends, and every token given to a service is
	// revoked (consents stay: the services ask nothing again, they get new
	// tokens at the next sign-in), with the services' logout tokens queued
	// in the same transaction, as a revocation on the Services page does.
	queue := h.endingSignIns(r.Context(), a.DID, "")
	var sessions, tokens int
	err = h.Privacy.InTx(r.Context(), func(ctx context.Context) error {
		if err := queue(ctx); err != nil {
			return err
		}
		if g, ok := h.allGrants(); ok {
			var err error
			if tokens, err = g.DeleteAllGrantsOf(ctx, a.DID); err != nil {
				return err
			}
		}
		var err error
		if sessions, err = h.Sessions.Store.DeleteSessionsOf(ctx, a.DID, ""); err != nil {
			return err
		}
		return h.Privacy.AppendActivity(ctx, &privacy.Activity{AccountDID: a.DID, At: h.Now().UTC(), Kind: "password.reset",
			Detail: map[string]any{"sessions_ended": sessions, "tokens_revoked": tokens}, IP: clientIP(r), UserAgent: h.meta(r).UserAgent})
	})
	if err != nil {
		return err
	}
	// The account's failure budgets start again: the owner proved themselves.
	for _, p := range []limits.Policy{limits.Account, limits.SecondFactor} {
		if err := h.Limits.Clear(r.Context(), p, accountKey(a.DID)); err != nil {
			h.Log.WarnContext(r.Context(), "failure budget not cleared", "budget", p.Name, "err", identity.RootCause(err))
		}
	}
	if h.Mail != nil && a.Email != "" {
		m, err := mail.Render(mail.KindPasswordChanged, mail.PasswordChanged{Common: h.common(a, a.Email), Request: h.request(r),
			Link: strings.TrimRight(h.Issuer, "/") + ForgotPath})
		if err == nil {
			err = h.Mail.Send(r.Context(), m)
		}
		if err != nil {
			h.Log.WarnContext(r.Context(), "password-changed mail not sent", "err", identity.RootCause(err))
		}
	}
	h.Render(w, r, http.StatusOK, "reset", map[string]any{"Done": true})
	return nil
}
