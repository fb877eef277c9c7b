package web

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/onecommons/commonsid/did/webvh"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/privacy"
	"github.com/onecommons/commonsid/store"
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
// spend the account's budget of phrase checks, kept in the database
// (spendCheck, signin_limits.go; 429 beyond), like guesses at a password,
// whatever the IP; a malformed phrase counts too. The phrase is never logged.
//
// The same page rotates the kit (POST /account/recovery/rotate: the old
// phrase, limited as checks; postRecoveryRotate) and, for a did:key
// account homed here, upgrades it to a did:webvh DID with a new kit (POST
// /account/recovery/upgrade, the password again unless the sign-in is
// recent; postRecoveryUpgrade). Both show the new kit once, as sign-up
// does.

// recoveryChecks per recoveryCheckWindow is the check budget of an account.
const (
	recoveryChecks      = 10
	recoveryCheckWindow = 15 * time.Minute
)

func (h *Handler) mountRecovery(r chi.Router) {
	r.Group(func(r chi.Router) {
		r.Use(h.requireAccount(false))
		r.Method(http.MethodGet, "/account/recovery", h.wrap(h.pageRecovery))
		r.With(crossOrigin, formLimit).Method(http.MethodPost, "/account/recovery/check", h.wrap(func(w http.ResponseWriter, r *http.Request) error {
			if ok, wait := h.spendCheck(r); !ok {
				w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)))
				return h.renderRecovery(w, r, http.StatusTooManyRequests, map[string]any{
					"Error": "Too many checks of your recovery phrase. " + TryAgainIn(wait) + "."})
			}
			return h.postRecoveryCheck(w, r)
		}))
		// A rotation asks for the old phrase: it spends the same budget.
		r.With(crossOrigin, formLimit, h.homeOnly(false)).Method(http.MethodPost, "/account/recovery/rotate", h.wrap(func(w http.ResponseWriter, r *http.Request) error {
			w.Header().Set("Cache-Control", "no-store")
			if ok, wait := h.spendCheck(r); !ok {
				w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)))
				return h.renderRecovery(w, r, http.StatusTooManyRequests, map[string]any{
					"Error": "Too many checks of your recovery phrase. " + TryAgainIn(wait) + "."})
			}
			return h.postRecoveryRotate(w, r)
		}))
		r.With(crossOrigin, formLimit, h.homeOnly(false)).Method(http.MethodPost, "/account/recovery/upgrade", h.wrap(h.postRecoveryUpgrade))
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
	if !identity.IsWebVH(m.acct.DID) && m.acct.HomeIssuer == h.Accounts.Issuer && h.Accounts.DIDLogs != nil {
		l, err := h.Accounts.DIDLogs.GetDIDLog(r.Context(), m.acct.DID)
		switch {
		case err == nil:
			data["WebVH"], data["CurrentDID"] = true, l.CurrentDID
		case !errors.Is(err, store.ErrNotFound):
			return err
		case identity.CheckDIDMethod(identity.DIDMethodWebVH, h.Accounts.Issuer) == nil:
			data["CanUpgrade"], data["NeedPassword"] = true, h.needReauth(m)
		}
	}
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
	h.Render(w, r, http.StatusOK, "recovery_kit", map[string]any{"Account": a, "DID": a.DID, "Words": kit.Words, "Next": next})
}

// Activity kinds of the person's key changes.
const (
	ActivityKitRotated = "recovery.rotated"
	ActivityUpgraded   = "did.upgraded"
)

// postRecoveryRotate replaces the account's recovery kit: the old phrase
// signs an entry replacing its key by a new kit's (identity.AppendPersonKey),
// witnessed by the commons; the log, a new escrow of the pairwise secret
// under the new kit, a did.log event and the activity entry are stored in
// one transaction; the new kit is shown once. From then on the old phrase
// is refused, here and for recovery at any cloud.
func (h *Handler) postRecoveryRotate(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	a := current(r).acct
	fail := func(err error) error {
		var rf *recoverRefusal
		if errors.As(err, &rf) {
			return h.renderRecovery(w, r, rf.status, map[string]any{"Error": rf.msg})
		}
		return err
	}
	if h.Accounts.DIDLogs == nil {
		return fail(refuse(http.StatusConflict, "Your account has no recovery kit to replace."))
	}
	row, err := h.Accounts.DIDLogs.GetDIDLog(ctx, a.DID)
	if errors.Is(err, store.ErrNotFound) {
		return fail(refuse(http.StatusConflict, "Your account has no recovery kit to replace."))
	}
	if err != nil {
		return err
	}
	l, err := webvh.Open(row.Log, webvh.Options{Now: h.Now})
	if err != nil {
		return fmt.Errorf("account DID log: %w", err)
	}
	res := l.Result()
	signer, _, err := kitSigner(res, r.PostForm.Get("phrase"))
	if err != nil {
		return fail(err)
	}
	now := h.Now().UTC()
	pending := row.SCID + "|" + res.Metadata.VersionID + "|" + webvh.Multikey(signer.Public().(ed25519.PublicKey))
	kit, at, err := pendingKits.get(pending, now, signingTime(now, res))
	if err != nil {
		return err
	}
	nl, err := identity.AppendPersonKey(l, signer.Public().(ed25519.PublicKey), kit.Public, signer, at)
	if err != nil {
		return fmt.Errorf("rotate the recovery kit: %w", err)
	}
	witness, nres, err := h.collect(ctx, nl, row.Witness, res.Metadata.VersionNumber)
	if err != nil {
		return fail(err)
	}
	secret, err := h.Accounts.PairwiseSecret(a)
	if err != nil {
		return err
	}
	escrow, err := identity.SealEscrow(kit.Seed(), row.SCID, secret)
	if err != nil {
		return err
	}
	next := *row
	next.Log, next.Witness, next.Escrow, next.Version = nl.Bytes(), witness, escrow, nres.Metadata.VersionNumber
	next.CurrentDID, next.UpdatedAt = nres.DID, now
	err = h.storeLogChange(ctx, &next, row.Version, &privacy.Activity{AccountDID: a.DID, At: now, Kind: ActivityKitRotated,
		Detail: map[string]any{"version": next.Version, "key": shortMultikey(kit.Multikey)}})
	if err != nil {
		return fail(err)
	}
	pendingKits.done(pending)
	h.Log.InfoContext(ctx, "recovery kit rotated", "did", a.DID, "version", next.Version)
	h.Render(w, r, http.StatusOK, "recovery_kit", map[string]any{"Account": a, "DID": next.CurrentDID, "Words": kit.Words,
		"Next": "/account/recovery", "Rotated": true})
	return nil
}

// postRecoveryUpgrade gives a did:key account homed here a did:webvh DID
// with a new recovery kit (identity.Service.UpgradeDID): the account keeps
// its did:key as its key (its public sub and pairwise subs do not change),
// and its new DID lists the did:key in alsoKnownAs. The kit is shown once.
func (h *Handler) postRecoveryUpgrade(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	m := current(r)
	a := m.acct
	fail := func(status int, msg string) error {
		return h.renderRecovery(w, r, status, map[string]any{"Error": msg})
	}
	if identity.IsWebVH(a.DID) || h.Accounts.DIDLogs == nil {
		return fail(http.StatusConflict, "Your account already has a did:webvh identifier, or this cloud does not give them.")
	}
	if err := h.reauth(r, m, r.PostForm.Get("password")); err != nil {
		var ae *apiError
		if errors.As(err, &ae) {
			return fail(ae.status, sentence("To change your identifier, "+ae.msg))
		}
		return err
	}
	key, err := h.Accounts.SigningKey(ctx, a)
	if err != nil {
		return err
	}
	kit, err := identity.NewRecoveryKit()
	if err != nil {
		return err
	}
	l, err := h.Accounts.UpgradeDID(ctx, a, key, kit.Public, nil)
	if err != nil {
		return fail(http.StatusConflict, sentence(err.Error()))
	}
	secret, err := h.Accounts.PairwiseSecret(a)
	if err != nil {
		return err
	}
	if l.Escrow, err = identity.SealEscrow(kit.Seed(), l.SCID, secret); err != nil {
		return err
	}
	now := h.Now().UTC()
	err = h.storeLogChange(ctx, l, 0, &privacy.Activity{AccountDID: a.DID, At: now, Kind: ActivityUpgraded,
		Detail: map[string]any{"did": l.CurrentDID}})
	if err != nil {
		var rf *recoverRefusal
		if errors.As(err, &rf) {
			return fail(rf.status, rf.msg)
		}
		return err
	}
	h.Log.InfoContext(ctx, "account upgraded to a did:webvh DID", "did", a.DID, "current_did", l.CurrentDID)
	h.Render(w, r, http.StatusOK, "recovery_kit", map[string]any{"Account": a, "DID": l.CurrentDID, "Words": kit.Words,
		"Next": "/account/recovery", "Upgraded": true})
	return nil
}

// storeLogChange stores a new version of the account's log (a
// compare-and-swap on prev), its did.log event and an activity entry, in
// one transaction.
func (h *Handler) storeLogChange(ctx context.Context, l *identity.DIDLog, prev int, act *privacy.Activity) error {
	return h.Privacy.InTx(ctx, func(ctx context.Context) error {
		ok, err := h.Accounts.DIDLogs.PutDIDLog(ctx, l, prev)
		if err != nil {
			return err
		}
		if !ok {
			return refuse(http.StatusConflict, "Your identifier's history changed meanwhile: please try again.")
		}
		if h.Events != nil {
			if err := h.Events.AppendEvent(ctx, "did.log", l.DID, act.At, map[string]any{"scid": l.SCID}); err != nil {
				return err
			}
		}
		return h.Privacy.AppendActivity(ctx, act)
	})
}
