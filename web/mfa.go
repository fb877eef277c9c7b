package web

// Second factors in the browser: the step after a correct password
// (/login/second-factor) and the "Second factors" part of the Security page.
//
// A password sign-in that needs a second factor (the person requires one,
// or the sign-in asked for one and the person has one) starts no session:
// it leaves a pending sign-in, kept server-side for SecondFactorLifetime
// under a random cookie (only its hash is stored), that names the account
// and where to go next. Each answer takes the pending sign-in; a wrong
// answer puts it back under a new cookie with one attempt less, until
// SecondFactorAttempts wrong answers end it and the person starts again.
// Only a correct code (authenticator app or recovery code) or a passkey of
// the account starts the session, whose methods then say so (amr pwd+otp+mfa
// or pwd+hwk+mfa).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/internal/limits"
	"github.com/onecommons/commonsid/privacy"
	"github.com/onecommons/commonsid/store"
)

// Second-factor sign-in step bounds.
const (
	// SecondFactorLifetime is how long a password sign-in waits for its
	// second factor.
	SecondFactorLifetime = 5 * time.Minute
	// SecondFactorAttempts wrong answers end a pending sign-in.
	SecondFactorAttempts = 5

	secondFactorPath   = "/login/second-factor"
	secondFactorCookie = "commonsid_second_factor"
	// CeremonySecondFactor is the kind of a pending second-factor sign-in.
	CeremonySecondFactor = "mfa.login"
)

// Activity kinds of second factors.
const (
	ActivityMFAAdded         = "mfa.added"
	ActivityMFARemoved       = "mfa.removed"
	ActivityRecoveryCodes    = "recovery_codes.generated"
	ActivityRecoveryCodeUsed = "recovery_code.used"
	ActivityMFARequired      = "mfa.required"
)

// The methods of a sign-in with a second factor (RFC 8176).
var (
	amrPasswordOTP     = []string{"pwd", "otp", "mfa"}
	amrPasswordPasskey = []string{"pwd", "hwk", "mfa"}
)

// pendingSignIn is a password sign-in waiting for its second factor.
type pendingSignIn struct {
	DID      string    `json:"did"`
	ReturnTo string    `json:"return_to,omitempty"`
	Attempts int       `json:"attempts"`
	Expires  time.Time `json:"expires"`
	// Passkey is the WebAuthn assertion begun for this sign-in, if any.
	Passkey *webauthn.SessionData `json:"passkey,omitempty"`
}

// mfa returns the second-factor service, nil when the store keeps none.
func (h *Handler) mfa() *identity.MFA {
	st, ok := h.Accounts.Store.(identity.MFAStore)
	if !ok || h.Ceremonies == nil {
		return nil
	}
	m := &identity.MFA{Store: st, Sealer: h.Accounts.Sealer, Issuer: h.Accounts.Issuer, Now: h.Now}
	if h.passkeysOn() {
		m.HasPasskey = func(ctx context.Context, did string) (bool, error) {
			ks, err := h.Passkeys.ListPasskeys(ctx, did)
			return len(ks) > 0, err
		}
	}
	return m
}

func (h *Handler) mountSecondFactors(r chi.Router) {
	if h.mfa() == nil {
		return
	}
	perIP := h.Limits.PerIP(30, time.Minute, false)
	r.Method(http.MethodGet, secondFactorPath, h.wrap(h.secondFactorForm))
	r.With(crossOrigin, perIP, formLimit).Method(http.MethodPost, secondFactorPath, h.wrap(h.postSecondFactor))
	r.Method(http.MethodGet, secondFactorKitPath, h.wrap(h.secondFactorKitForm))
	r.With(crossOrigin, perIP, formLimit).Method(http.MethodPost, secondFactorKitPath, h.wrap(h.postSecondFactorKit))
	if h.passkeysOn() {
		r.With(crossOrigin, perIP).Post(secondFactorPath+"/passkey/begin", h.api(h.apiSecondFactorPasskeyBegin))
		r.With(crossOrigin, perIP).Post(secondFactorPath+"/passkey/finish", h.api(h.apiSecondFactorPasskeyFinish))
	}
	r.Route("/account/mfa", func(r chi.Router) {
		r.Use(h.requireAccount(false), crossOrigin, formLimit, h.homeOnly(false))
		r.Method(http.MethodPost, "/totp/begin", h.wrap(h.postTOTPBegin))
		r.Method(http.MethodPost, "/totp/confirm", h.wrap(h.postTOTPConfirm))
		r.Method(http.MethodPost, "/totp/remove", h.wrap(h.postTOTPRemove))
		r.Method(http.MethodPost, "/recovery-codes", h.wrap(h.postRecoveryCodes))
		r.Method(http.MethodPost, "/require", h.wrap(h.postRequireMFA))
	})
}

// --- the sign-in step ---

// requireSecondFactor is called after a correct password: when the sign-in
// needs a second factor it leaves a pending sign-in, redirects to its page
// and returns true; no session is started.
func (h *Handler) requireSecondFactor(w http.ResponseWriter, r *http.Request, a *identity.Account, returnTo string, asked bool) (bool, error) {
	m := h.mfa()
	if m == nil {
		return false, nil
	}
	need, _, err := m.NeedsSecondFactor(r.Context(), a.DID, asked)
	if err != nil || !need {
		return false, err
	}
	p := &pendingSignIn{DID: a.DID, ReturnTo: returnTo, Expires: h.Now().UTC().Add(SecondFactorLifetime)}
	if err := h.putPending(w, r, p); err != nil {
		return false, err
	}
	http.Redirect(w, r, secondFactorPath, http.StatusSeeOther)
	return true, nil
}

func (h *Handler) putPending(w http.ResponseWriter, r *http.Request, p *pendingSignIn) error {
	tok, err := identity.NewToken()
	if err != nil {
		return err
	}
	data, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode pending sign-in: %w", err)
	}
	c := &identity.Ceremony{IDHash: identity.HashToken(tok), Kind: CeremonySecondFactor, Data: data, ExpiresAt: p.Expires}
	if err := h.Ceremonies.PutCeremony(r.Context(), c); err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: secondFactorCookie, Value: tok, Path: secondFactorPath, Expires: p.Expires,
		HttpOnly: true, Secure: h.SecureCookies, SameSite: http.SameSiteLaxMode})
	return nil
}

// takePending ends the pending sign-in of the request's cookie (nil, nil
// when there is none or it expired).
func (h *Handler) takePending(w http.ResponseWriter, r *http.Request) (*pendingSignIn, error) {
	http.SetCookie(w, &http.Cookie{Name: secondFactorCookie, Value: "", Path: secondFactorPath, MaxAge: -1,
		HttpOnly: true, Secure: h.SecureCookies, SameSite: http.SameSiteLaxMode})
	ck, err := r.Cookie(secondFactorCookie)
	if err != nil || ck.Value == "" {
		return nil, nil
	}
	c, err := h.Ceremonies.TakeCeremony(r.Context(), identity.HashToken(ck.Value), CeremonySecondFactor, h.Now().UTC())
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var p pendingSignIn
	if err := json.Unmarshal(c.Data, &p); err != nil {
		return nil, fmt.Errorf("decode pending sign-in: %w", err)
	}
	if !h.Now().UTC().Before(p.Expires) {
		return nil, nil
	}
	return &p, nil
}

func (h *Handler) secondFactorData(r *http.Request) map[string]any {
	return map[string]any{"Passkeys": h.passkeysOn()}
}

func (h *Handler) secondFactorForm(w http.ResponseWriter, r *http.Request) error {
	if ck, err := r.Cookie(secondFactorCookie); err != nil || ck.Value == "" {
		return h.startAgain(w, r, http.StatusOK, "Sign in first.")
	}
	h.Render(w, r, http.StatusOK, "login_second_factor", h.secondFactorData(r))
	return nil
}

// startAgain shows the sign-in page with msg.
func (h *Handler) startAgain(w http.ResponseWriter, r *http.Request, status int, msg string) error {
	d := h.loginData(r, "")
	d["Error"] = msg
	h.Render(w, r, status, "login", d)
	return nil
}

// pendingAccount returns the account of a pending sign-in if it can still
// sign in.
func (h *Handler) pendingAccount(ctx context.Context, p *pendingSignIn) (*identity.Account, error) {
	a, err := h.Accounts.Store.GetAccount(ctx, p.DID)
	if errors.Is(err, store.ErrNotFound) || err == nil && a.Status != identity.StatusActive {
		return nil, nil
	}
	return a, err
}

const msgExpired = "Your sign-in expired or was already used. Please sign in again."

// wrongAnswer counts a wrong answer: the pending sign-in comes back under a
// new cookie, or ends after SecondFactorAttempts. It returns whether the
// person may try again.
func (h *Handler) wrongAnswer(w http.ResponseWriter, r *http.Request, p *pendingSignIn) (bool, error) {
	p.Attempts++
	p.Passkey = nil
	if p.Attempts >= SecondFactorAttempts {
		h.Log.InfoContext(r.Context(), "second factor: too many wrong answers, sign-in ended")
		return false, nil
	}
	return true, h.putPending(w, r, p)
}

const msgTooMany = "Too many wrong codes. Please sign in again."

func (h *Handler) postSecondFactor(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p, err := h.takePending(w, r)
	if err != nil {
		return h.unavailable(w, r, "second factor", err)
	}
	if p == nil {
		return h.startAgain(w, r, http.StatusUnauthorized, msgExpired)
	}
	a, err := h.pendingAccount(ctx, p)
	if err != nil {
		return h.unavailable(w, r, "second factor", err)
	}
	if a == nil {
		return h.startAgain(w, r, http.StatusUnauthorized, msgExpired)
	}
	m := h.mfa()
	// The account's budget of codes, whatever the source and the pending
	// sign-in: over it, the pending sign-in is kept as it was for after
	// the wait (signin_limits.go).
	at, wait, err := h.Limits.Take(ctx, limits.SecondFactor, accountKey(a.DID))
	if err != nil {
		return h.unavailable(w, r, "second factor", err)
	}
	if wait > 0 {
		if err := h.putPending(w, r, p); err != nil {
			return h.unavailable(w, r, "second factor", err)
		}
		h.Log.InfoContext(ctx, "second factor: the account's budget of codes is spent", "wait", wait.String())
		h.TooManyPage(w, r, wait)
		return nil
	}
	code := r.PostFormValue("code")
	method := "password+totp"
	if !isAppCode(code) {
		method = "password+recovery_code"
		err = m.UseRecoveryCode(ctx, a.DID, code)
	} else {
		err = m.CheckTOTP(ctx, a.DID, code)
	}
	if err != nil && !errors.Is(err, identity.ErrBadCode) && !errors.Is(err, identity.ErrCodeUsed) && !errors.Is(err, identity.ErrNoFactor) {
		at.Refund(ctx) // no verdict
	}
	if errors.Is(err, identity.ErrBadCode) || errors.Is(err, identity.ErrCodeUsed) || errors.Is(err, identity.ErrNoFactor) {
		again, perr := h.wrongAnswer(w, r, p)
		if perr != nil {
			return h.unavailable(w, r, "second factor", perr)
		}
		if !again {
			return h.startAgain(w, r, http.StatusUnauthorized, msgTooMany)
		}
		d := h.secondFactorData(r)
		d["Error"] = "That code is not correct."
		if errors.Is(err, identity.ErrCodeUsed) {
			d["Error"] = "That code was already used. Wait for your app to show the next one."
		}
		d["Left"] = SecondFactorAttempts - p.Attempts
		h.Render(w, r, http.StatusUnauthorized, "login_second_factor", d)
		return nil
	}
	if err != nil {
		return h.unavailable(w, r, "second factor", err)
	}
	if method == "password+recovery_code" {
		h.logMFA(r, a.DID, ActivityRecoveryCodeUsed, nil)
	}
	if err := h.startSession(w, r, a, amrPasswordOTP, map[string]any{"method": method}); err != nil {
		return h.unavailable(w, r, "sign-in", err)
	}
	h.secondFactorPassed(r, a.DID)
	returnTo := p.ReturnTo
	if returnTo == "" {
		returnTo = "/"
	}
	http.Redirect(w, r, returnTo, http.StatusSeeOther)
	return nil
}

// isAppCode reports whether code, without spaces and dashes, is six digits
// (an authenticator app's code); anything else is tried as a recovery code.
func isAppCode(code string) bool {
	n := 0
	for _, c := range code {
		switch {
		case c == ' ' || c == '-' || c == '\t':
		case '0' <= c && c <= '9':
			n++
		default:
			return false
		}
	}
	return n == identity.TOTPDigits
}

// apiSecondFactorPasskeyBegin starts a passkey assertion for the pending
// sign-in's account (its own passkeys only, with user verification).
func (h *Handler) apiSecondFactorPasskeyBegin(w http.ResponseWriter, r *http.Request) (any, error) {
	ctx := r.Context()
	p, err := h.takePending(w, r)
	if err != nil {
		return nil, h.errUnavailable(r, "second factor", err)
	}
	if p == nil {
		return nil, &apiError{http.StatusUnauthorized, "sign_in_expired", msgExpired}
	}
	a, err := h.pendingAccount(ctx, p)
	if err != nil {
		return nil, h.errUnavailable(r, "second factor", err)
	}
	if a == nil {
		return nil, &apiError{http.StatusUnauthorized, "sign_in_expired", msgExpired}
	}
	keys, err := h.Passkeys.ListPasskeys(ctx, a.DID)
	if err != nil {
		return nil, h.errUnavailable(r, "second factor", err)
	}
	if len(keys) == 0 {
		if err := h.putPending(w, r, p); err != nil {
			return nil, h.errUnavailable(r, "second factor", err)
		}
		return nil, &apiError{http.StatusBadRequest, "no_passkey", "Your account has no passkey: use a code instead."}
	}
	user, err := h.passkeyUserOf(ctx, a)
	if err != nil {
		return nil, h.errUnavailable(r, "second factor", err)
	}
	opts, sess, err := h.WebAuthn.BeginLogin(user, webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return nil, fmt.Errorf("begin passkey second factor: %w", err)
	}
	p.Passkey = sess
	if err := h.putPending(w, r, p); err != nil {
		return nil, h.errUnavailable(r, "second factor", err)
	}
	return opts, nil
}

// apiSecondFactorPasskeyFinish checks the assertion and starts the session.
func (h *Handler) apiSecondFactorPasskeyFinish(w http.ResponseWriter, r *http.Request) (any, error) {
	ctx := r.Context()
	p, err := h.takePending(w, r)
	if err != nil {
		return nil, h.errUnavailable(r, "second factor", err)
	}
	if p == nil || p.Passkey == nil {
		return nil, &apiError{http.StatusUnauthorized, "sign_in_expired", msgExpired}
	}
	a, err := h.pendingAccount(ctx, p)
	if err != nil {
		return nil, h.errUnavailable(r, "second factor", err)
	}
	if a == nil {
		return nil, &apiError{http.StatusUnauthorized, "sign_in_expired", msgExpired}
	}
	refused := func() (any, error) {
		again, perr := h.wrongAnswer(w, r, p)
		if perr != nil {
			return nil, h.errUnavailable(r, "second factor", perr)
		}
		if !again {
			return nil, &apiError{http.StatusUnauthorized, "sign_in_expired", msgTooMany}
		}
		return nil, errPasskeyRefused
	}
	parsed, err := protocol.ParseCredentialRequestResponseBody(http.MaxBytesReader(w, r.Body, maxFormBytes))
	if err != nil {
		return refused()
	}
	user, err := h.passkeyUserOf(ctx, a)
	if err != nil {
		return nil, h.errUnavailable(r, "second factor", err)
	}
	cred, err := h.WebAuthn.ValidateLogin(user, *p.Passkey, parsed)
	if err != nil || cred.Authenticator.CloneWarning {
		h.Log.InfoContext(ctx, "passkey second factor refused", "reason", reason(err))
		return refused()
	}
	err = h.Passkeys.RecordPasskeyUse(ctx, cred.ID, cred.Authenticator.SignCount, cred.Flags.BackupState, h.Now().UTC())
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		return refused()
	}
	if err != nil {
		return nil, h.errUnavailable(r, "second factor", err)
	}
	if err := h.startSession(w, r, a, amrPasswordPasskey, map[string]any{"method": "password+passkey"}); err != nil {
		return nil, h.errUnavailable(r, "sign-in", err)
	}
	h.secondFactorPassed(r, a.DID)
	returnTo := p.ReturnTo
	if returnTo == "" {
		returnTo = "/"
	}
	return map[string]string{"redirect": returnTo}, nil
}

// --- the dashboard ---

func (h *Handler) logMFA(r *http.Request, did, kind string, detail map[string]any) {
	if h.Privacy == nil {
		return
	}
	err := h.Privacy.AppendActivity(r.Context(), &privacy.Activity{AccountDID: did, At: h.Now().UTC(), Kind: kind, Detail: detail,
		IP: clientIP(r), UserAgent: h.meta(r).UserAgent})
	if err != nil {
		h.Log.ErrorContext(r.Context(), "activity log", "err", err)
	}
}

// mfaData adds the "Second factors" part of the Security page to d.
func (h *Handler) mfaData(r *http.Request, d map[string]any) map[string]any {
	if d == nil {
		d = map[string]any{}
	}
	m := h.mfa()
	if m == nil {
		return d
	}
	st, err := m.Status(r.Context(), current(r).acct.DID)
	if err != nil {
		h.Log.ErrorContext(r.Context(), "second factors", "err", err)
		d["MFAError"] = "Your second factors could not be loaded. Please try again."
		return d
	}
	d["MFA"] = st
	if st.Enrolling {
		if e, err := m.PendingTOTP(r.Context(), current(r).acct); err == nil {
			// Made here from the secret: a PNG data URL the page may show.
			d["Enrolment"], d["EnrolmentQR"] = e, template.URL(e.QR)
		}
	}
	return d
}

func (h *Handler) securityData(r *http.Request) map[string]any {
	return h.mfaData(r, h.passkeyData(r))
}

// mfaError answers a failed second-factor form on the Security page.
func (h *Handler) mfaError(w http.ResponseWriter, r *http.Request, msg string) error {
	return h.formError(w, r, &apiError{http.StatusBadRequest, "invalid_request", msg}, "security", "account_security", h.securityData(r))
}

// checkPassword re-checks the signed-in person's password; false after
// answering the request.
func (h *Handler) checkPassword(w http.ResponseWriter, r *http.Request) (bool, error) {
	if _, err := h.recheckPassword(r, r.PostForm.Get("password")); err != nil {
		if errors.Is(err, identity.ErrBadCredentials) {
			return false, h.formError(w, r, &apiError{http.StatusForbidden, "reauth_failed", "The password is wrong."},
				"security", "account_security", h.securityData(r))
		}
		return false, err // over budget, or the 503 answer (signin_limits.go)
	}
	return true, nil
}

func (h *Handler) postTOTPBegin(w http.ResponseWriter, r *http.Request) error {
	if ok, err := h.checkPassword(w, r); !ok {
		return err
	}
	_, err := h.mfa().BeginTOTP(r.Context(), current(r).acct)
	if errors.Is(err, identity.ErrFactorExists) {
		return h.mfaError(w, r, "An authenticator app is already set up. Remove it first to set up another.")
	}
	if err != nil {
		return err
	}
	http.Redirect(w, r, "/account/security#second-factors", http.StatusSeeOther)
	return nil
}

func (h *Handler) postTOTPConfirm(w http.ResponseWriter, r *http.Request) error {
	m, a := h.mfa(), current(r).acct
	// A code checked behind a session spends a budget of its own, apart
	// from the sign-in's (a person fumbling with a new app does not slow
	// their own sign-in).
	at, wait, err := h.Limits.Take(r.Context(), limits.SecondFactor, "enrol\x00"+a.DID)
	if err != nil {
		return h.errUnavailable(r, "second factor", err)
	}
	if wait > 0 {
		return tooMany(wait, "Too many wrong codes.")
	}
	err = m.ConfirmTOTP(r.Context(), a.DID, r.PostForm.Get("code"))
	if err == nil {
		at.Clear(r.Context())
	} else if !errors.Is(err, identity.ErrBadCode) && !errors.Is(err, identity.ErrCodeUsed) {
		at.Refund(r.Context())
	}
	switch {
	case errors.Is(err, identity.ErrNoEnrolment):
		return h.mfaError(w, r, "No authenticator app is being set up: start again.")
	case errors.Is(err, identity.ErrBadCode), errors.Is(err, identity.ErrCodeUsed):
		return h.mfaError(w, r, "That code is not correct. Check the time on your phone and enter the code your app shows now.")
	case err != nil:
		return err
	}
	h.logMFA(r, a.DID, ActivityMFAAdded, map[string]any{"factor": "totp"})
	st, err := m.Status(r.Context(), a.DID)
	if err != nil {
		return err
	}
	if st.RecoveryTotal > 0 {
		http.Redirect(w, r, "/account/security?done=mfa-added#second-factors", http.StatusSeeOther)
		return nil
	}
	return h.showRecoveryCodes(w, r, true)
}

func (h *Handler) showRecoveryCodes(w http.ResponseWriter, r *http.Request, first bool) error {
	a := current(r).acct
	codes, err := h.mfa().NewRecoveryCodes(r.Context(), a.DID)
	if errors.Is(err, identity.ErrNoFactor) {
		return h.mfaError(w, r, "Set up an authenticator app or a passkey first.")
	}
	if err != nil {
		return err
	}
	h.logMFA(r, a.DID, ActivityRecoveryCodes, map[string]any{"count": len(codes)})
	h.page(w, r, "security", "account_mfa_codes", map[string]any{"Codes": codes, "First": first})
	return nil
}

func (h *Handler) postRecoveryCodes(w http.ResponseWriter, r *http.Request) error {
	if ok, err := h.checkPassword(w, r); !ok {
		return err
	}
	return h.showRecoveryCodes(w, r, false)
}

func (h *Handler) postTOTPRemove(w http.ResponseWriter, r *http.Request) error {
	if ok, err := h.checkPassword(w, r); !ok {
		return err
	}
	a := current(r).acct
	err := h.mfa().RemoveTOTP(r.Context(), a.DID)
	if errors.Is(err, identity.ErrNoFactor) {
		return h.mfaError(w, r, "There is no authenticator app to remove.")
	}
	if err != nil {
		return err
	}
	h.logMFA(r, a.DID, ActivityMFARemoved, map[string]any{"factor": "totp"})
	http.Redirect(w, r, "/account/security?done=mfa-removed#second-factors", http.StatusSeeOther)
	return nil
}

func (h *Handler) postRequireMFA(w http.ResponseWriter, r *http.Request) error {
	if ok, err := h.checkPassword(w, r); !ok {
		return err
	}
	a := current(r).acct
	required := slices.Contains(r.PostForm["required"], "on")
	err := h.mfa().SetRequired(r.Context(), a.DID, required)
	if errors.Is(err, identity.ErrRequireNoFactor) {
		return h.mfaError(w, r, "Set up an authenticator app or a passkey before requiring a second factor.")
	}
	if err != nil {
		return err
	}
	h.logMFA(r, a.DID, ActivityMFARequired, map[string]any{"required": required})
	http.Redirect(w, r, "/account/security?done=mfa-required#second-factors", http.StatusSeeOther)
	return nil
}
