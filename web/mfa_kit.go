package web

// The recovery kit in place of a lost second factor
// (/login/second-factor/kit).
//
// A person who signed in with their password and must pass a second factor
// they no longer have (phone lost, passkey broken, recovery codes gone)
// gives their recovery phrase instead. The phrase's key must be a person
// key of the account's did:webvh log as held here, exactly as a recovery at
// a peer checks it (kitSigner, recover.go): a key replaced by a rotation is
// refused as no longer valid, any other as not this account's. Then:
//
//   - states: the pending sign-in of the password step (mfa.go) is taken
//     by each answer; a wrong phrase puts it back with one attempt less
//     (the same SecondFactorAttempts as codes), a right one starts the
//     session with amr ["pwd","swk","mfa"] (RFC 8176: proof of possession
//     of a software-secured key) and the activity entry
//     "recovery_kit.used", and mails the person (signin_notices.go);
//   - limits: every answer spends the account's budget of phrase checks
//     (limits.Phrase, shared with the checks behind a session), whatever
//     its answer; over it the 429 page, and the pending sign-in is kept
//     for after the wait;
//   - the phrase is never logged, stored or shown again; the second factor
//     stays as it was (the person removes or replaces it on the Security
//     page).

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/onecommons/commonsid/did/webvh"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/internal/limits"
	"github.com/onecommons/commonsid/store"
)

// secondFactorKitPath is the page of the recovery kit at the second-factor
// step (under the pending sign-in cookie's path).
const secondFactorKitPath = secondFactorPath + "/kit"

// ActivityRecoveryKitUsed is the activity kind of a sign-in that passed
// the second-factor step with the recovery kit.
const ActivityRecoveryKitUsed = "recovery_kit.used"

// methodKit is the sign-in method of the activity entry.
const methodKit = "password+recovery_kit"

// amrPasswordKit is the methods of a sign-in with the password and the
// recovery kit.
var amrPasswordKit = []string{"pwd", "swk", "mfa"}

func (h *Handler) secondFactorKitForm(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Cache-Control", "no-store")
	if ck, err := r.Cookie(secondFactorCookie); err != nil || ck.Value == "" {
		return h.startAgain(w, r, http.StatusOK, "Sign in first.")
	}
	h.Render(w, r, http.StatusOK, "login_recovery_kit", nil)
	return nil
}

// kitOf checks that phrase is the account's recovery kit: a
// *recoverRefusal when it is not (or there is none), another error when
// the log could not be read.
func (h *Handler) kitOf(ctx context.Context, accountDID, phrase string) error {
	noKit := refuse(http.StatusForbidden, "This account has no recovery kit: use your second factor, or ask the operator of this cloud.")
	if h.Accounts.DIDLogs == nil {
		return noKit
	}
	row, err := h.Accounts.DIDLogs.GetDIDLog(ctx, accountDID)
	if errors.Is(err, store.ErrNotFound) {
		return noKit
	}
	if err != nil {
		return err
	}
	l, err := webvh.Open(row.Log, webvh.Options{Now: h.Now})
	if err != nil {
		return fmt.Errorf("account DID log: %w", err)
	}
	_, _, err = kitSigner(l.Result(), phrase)
	return err
}

func (h *Handler) postSecondFactorKit(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Cache-Control", "no-store")
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
	// Every answer counts, as the phrase checks behind a session.
	_, wait, err := h.Limits.Take(ctx, limits.Phrase, a.DID)
	if err != nil {
		return h.unavailable(w, r, "second factor", err)
	}
	if wait > 0 {
		if err := h.putPending(w, r, p); err != nil {
			return h.unavailable(w, r, "second factor", err)
		}
		h.TooManyPage(w, r, wait)
		return nil
	}
	err = h.kitOf(ctx, a.DID, r.PostFormValue("phrase"))
	var rf *recoverRefusal
	if errors.As(err, &rf) {
		again, perr := h.wrongAnswer(w, r, p)
		if perr != nil {
			return h.unavailable(w, r, "second factor", perr)
		}
		if !again {
			return h.startAgain(w, r, http.StatusUnauthorized, "Too many wrong answers. Please sign in again.")
		}
		h.Render(w, r, http.StatusUnauthorized, "login_recovery_kit", map[string]any{
			"Error": rf.msg, "Left": SecondFactorAttempts - p.Attempts})
		return nil
	}
	if err != nil {
		if perr := h.putPending(w, r, p); perr != nil {
			h.Log.WarnContext(ctx, "pending sign-in not kept", "err", identity.RootCause(perr))
		}
		return h.unavailable(w, r, "second factor", err)
	}
	h.logMFA(r, a.DID, ActivityRecoveryKitUsed, map[string]any{"in_place_of": "second factor"})
	if err := h.startSession(w, r, a, amrPasswordKit, map[string]any{"method": methodKit}); err != nil {
		return h.unavailable(w, r, "sign-in", err)
	}
	h.secondFactorPassed(r, a.DID)
	h.notifyKitSignIn(r, a)
	h.Log.InfoContext(ctx, "second factor: passed with the recovery kit")
	returnTo := p.ReturnTo
	if returnTo == "" || !strings.HasPrefix(returnTo, "/") {
		returnTo = "/"
	}
	http.Redirect(w, r, returnTo, http.StatusSeeOther)
	return nil
}
