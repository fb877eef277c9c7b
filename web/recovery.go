package web

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/onecommons/commonsid/identity"
)

// Recovery kits on the web (identity/recovery.go has the rules).
//
// Sign-up on a cloud whose accounts get did:webvh DIDs answers with the
// recovery kit page instead of the welcome page: the 24 words, numbered,
// shown once in the answer to the sign-up POST (never in a URL, a log line
// or anything stored; the page is no-store like every page), with a print
// stylesheet and a link to continue ("I have written it down").
//
// The dashboard's "Account recovery" page (/account/recovery) says whether
// the account's DID log holds a recovery key (its multikey, shortened) and
// lets the person check a phrase they wrote down: POST
// /account/recovery/check answers "matches" or "does not match". Checks
// are limited per account (recoveryChecks per recoveryCheckWindow, 429
// beyond), like guesses at a password, whatever the IP; a malformed
// phrase counts too. The phrase is never logged.

// recoveryChecks per recoveryCheckWindow is the check budget of an account.
const (
	recoveryChecks      = 10
	recoveryCheckWindow = 15 * time.Minute
)

func (h *Handler) mountRecovery(r chi.Router) {
	checks := h.Limits.PerKeyBudget(recoveryChecks, recoveryCheckWindow)
	r.Group(func(r chi.Router) {
		r.Use(h.requireAccount(false))
		r.Method(http.MethodGet, "/account/recovery", h.wrap(h.pageRecovery))
		r.With(crossOrigin, formLimit).Method(http.MethodPost, "/account/recovery/check", h.wrap(func(w http.ResponseWriter, r *http.Request) error {
			if ok, wait := checks.TakeKey(r, current(r).acct.DID); !ok {
				w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)))
				return h.renderRecovery(w, r, http.StatusTooManyRequests, map[string]any{
					"Error": "Too many checks of your recovery phrase. Please wait a few minutes and try again."})
			}
			return h.postRecoveryCheck(w, r)
		}))
	})
}

func (h *Handler) pageRecovery(w http.ResponseWriter, r *http.Request) error {
	return h.renderRecovery(w, r, http.StatusOK, nil)
}

// renderRecovery renders the Account recovery page with data.
func (h *Handler) renderRecovery(w http.ResponseWriter, r *http.Request, status int, data map[string]any) error {
	m := current(r)
	keys, err := h.Accounts.RecoveryKeys(r.Context(), m.acct.DID)
	if err != nil {
		return err
	}
	if data == nil {
		data = map[string]any{}
	}
	var short []string
	for _, k := range keys {
		short = append(short, shortMultikey(k))
	}
	data["RecoveryKeys"], data["WebVH"] = short, identity.IsWebVH(m.acct.DID)
	data["Section"], data["Account"] = "recovery", m.acct
	if m.acct.HomeIssuer != h.Accounts.Issuer {
		data["HomeElsewhere"] = m.acct.HomeIssuer
	}
	h.Render(w, r, status, "account_recovery", data)
	return nil
}

// shortMultikey shows the start and end of a multikey, enough to recognise it.
func shortMultikey(k string) string {
	if len(k) <= 20 {
		return k
	}
	return k[:10] + "…" + k[len(k)-6:]
}

func (h *Handler) postRecoveryCheck(w http.ResponseWriter, r *http.Request) error {
	ok, err := h.Accounts.CheckRecoveryPhrase(r.Context(), current(r).acct.DID, r.PostForm.Get("phrase"))
	switch {
	case errors.Is(err, identity.ErrRecoveryPhrase):
		return h.renderRecovery(w, r, http.StatusBadRequest, map[string]any{"Error": sentence(err.Error())})
	case err != nil:
		return err
	case ok:
		return h.renderRecovery(w, r, http.StatusOK, map[string]any{"Verdict": "matches"})
	}
	return h.renderRecovery(w, r, http.StatusOK, map[string]any{"Verdict": "does not match"})
}

// sentence capitalises msg and ends it with a full stop.
func sentence(msg string) string {
	if msg == "" {
		return msg
	}
	return strings.ToUpper(msg[:1]) + msg[1:] + "."
}

// recoveryKit answers a sign-up with the account's recovery kit, shown
// once; next is where "I have written it down" leads.
func (h *Handler) recoveryKit(w http.ResponseWriter, r *http.Request, a *identity.Account, kit *identity.RecoveryKit, next string) {
	h.Render(w, r, http.StatusOK, "recovery_kit", map[string]any{"Account": a, "Words": kit.Words, "Next": next})
}
