package web

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/onecommons/commonsid/did"
	"github.com/onecommons/commonsid/did/webvh"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/privacy"
	"github.com/onecommons/commonsid/store"
)

// Recovery at a peer (/recover).
//
// A person whose home cloud is gone, or no longer acts for them, brings
// their did:webvh account to this cloud with their recovery kit. The form
// asks for the account (any DID it had, or handle@cloud host), the
// recovery phrase and a new password. This cloud must hold the account's
// log (a did_logs row, learned from the federation's did.log events); a
// fresher witnessed copy held by a peer is preferred when the federation
// can be asked (LatestDIDLog). Then:
//
//  1. the phrase's key must be a person key of the latest log
//     (identity.PersonKeys): a key the log had before a rotation is
//     refused as "no longer valid", any other as "not this account's";
//  2. a move entry to this cloud (identity.AppendMove) is signed by that
//     key, with a new custodial key and the commons' witnesses
//     (WitnessConfig of MemberWitnesses), and witnessed (CollectWitness):
//     when the witnesses refuse, nothing is written. The custodial key
//     (identity.RecoveryCustodialKey) and the versionTime (one second after
//     the last entry's) are derived, so that a retry after too few
//     witnesses answered signs the same entry: those that signed it then
//     take it again instead of seeing a fork;
//  3. in one transaction the account is made homed here: from the replica
//     this cloud holds when the person shared one (handle without its
//     "@home" suffix when free, profile, settings, and consents to this
//     cloud's own services), otherwise a minimal account under the handle
//     chosen on the form; its pairwise secret is the one escrowed under the
//     kit (identity.OpenEscrow), so every service sees the same subject as
//     before; the new password is hashed; the log is stored
//     (compare-and-swap on the copy read here), with a did.log event (the
//     old home stops serving the account once it sees the move) and the
//     activity entry "account.recovered".
//
// The answer lists what was recovered and what could not be. Attempts are
// limited per IP (recoverPerIP per hour) and per account
// (recoveryChecks per recoveryCheckWindow, as phrase checks), whatever the
// outcome; the form is protected from cross-site posts like every form.
// The phrase and the password are never logged, stored or shown again.

// recoverPerIP is the number of recovery attempts per IP and hour.
const recoverPerIP = 10

// ActivityRecovered is the activity kind of a recovery at this cloud.
const ActivityRecovered = "account.recovered"

func (h *Handler) mountRecover(r chi.Router) {
	perAccount := h.Limits.PerKeyBudget(recoveryChecks, recoveryCheckWindow)
	r.Method(http.MethodGet, "/recover", h.wrap(func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Cache-Control", "no-store")
		ref := r.URL.Query().Get("account")
		if len(ref) > 512 {
			ref = ""
		}
		h.Render(w, r, http.StatusOK, "recover", map[string]any{"Form": recoverForm{Account: ref}})
		return nil
	}))
	r.With(crossOrigin, h.Limits.PerIP(recoverPerIP, time.Hour, false), formLimit).Method(http.MethodPost, "/recover",
		h.wrap(func(w http.ResponseWriter, r *http.Request) error {
			w.Header().Set("Cache-Control", "no-store")
			return h.postRecover(w, r, perAccount)
		}))
}

type recoverForm struct{ Account, Handle string }

// recoverRefusal is a refusal shown on the form.
type recoverRefusal struct {
	status int
	msg    string
}

func (e *recoverRefusal) Error() string { return e.msg }

func refuse(status int, format string, args ...any) error {
	return &recoverRefusal{status, fmt.Sprintf(format, args...)}
}

// Recovered is what a recovery did, for the result page.
type Recovered struct {
	Account     *identity.Account
	DID         string // the account's DID now (on this cloud)
	From        string // the home the latest log named
	Version     int
	Recovered   []string
	NotShared   []string
	FromReplica bool
}

func (h *Handler) postRecover(w http.ResponseWriter, r *http.Request, perAccount interface {
	TakeKey(*http.Request, string) (bool, time.Duration)
}) error {
	f := recoverForm{Account: strings.TrimSpace(r.PostForm.Get("account")), Handle: strings.TrimSpace(r.PostForm.Get("handle"))}
	show := func(err error) error {
		var rf *recoverRefusal
		if !errors.As(err, &rf) {
			return err
		}
		h.Render(w, r, rf.status, "recover", map[string]any{"Form": f, "Error": rf.msg})
		return nil
	}
	if len(f.Account) > 512 || len(f.Handle) > 256 {
		return show(refuse(http.StatusBadRequest, "The account or the handle is too long."))
	}
	accountDID, err := h.recoverAccountDID(r.Context(), f.Account)
	if err != nil {
		return show(err)
	}
	if ok, wait := perAccount.TakeKey(r, accountDID); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)))
		return show(refuse(http.StatusTooManyRequests, "Too many recovery attempts for this account. Please wait a few minutes and try again."))
	}
	out, err := h.recover(r.Context(), accountDID, f.Handle, r.PostForm.Get("phrase"), r.PostForm.Get("password"))
	if err != nil {
		var ve *identity.ValidationError
		if errors.As(err, &ve) {
			return show(refuse(http.StatusBadRequest, "%s", sentence(ve.Error())))
		}
		return show(err)
	}
	h.Log.InfoContext(r.Context(), "account recovered here with its recovery kit", "did", out.Account.DID, "from", out.From, "version", out.Version)
	h.Render(w, r, http.StatusOK, "recover_done", map[string]any{"R": out})
	return nil
}

// recoverAccountDID finds the account a person names on the form: any DID
// it had (account_dids, or the SCID of a did:webvh DID), or handle@host of
// a replica held here.
func (h *Handler) recoverAccountDID(ctx context.Context, ref string) (string, error) {
	unknown := refuse(http.StatusNotFound, "This cloud holds no copy of the history of %q. Recovery works on a cloud of the same commons as your home, which learns your account's history from it: try another cloud of your commons, or check the identifier.", ref)
	if ref == "" {
		return "", refuse(http.StatusBadRequest, "Please give your account's identifier (a DID) or handle@cloud.")
	}
	logs := h.Accounts.DIDLogs
	if logs == nil {
		return "", refuse(http.StatusNotFound, "This cloud does not keep did:webvh account histories: recovery is not possible here.")
	}
	if strings.HasPrefix(ref, "did:") {
		if a, err := logs.AccountForDID(ctx, ref); err == nil {
			return a, nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return "", err
		}
		if p, err := webvh.ParseDID(ref); err == nil {
			l, err := logs.GetDIDLogBySCID(ctx, p.SCID)
			if err == nil {
				return l.DID, nil
			}
			if !errors.Is(err, store.ErrNotFound) {
				return "", err
			}
		}
		return "", unknown
	}
	local, host, ok := strings.Cut(ref, "@")
	if !ok || host == "" {
		return "", refuse(http.StatusBadRequest, "Please give your account as handle@cloud (for example alice@id.example.org), or its DID.")
	}
	hd, err := identity.NormalizeHandle(local)
	if err != nil {
		return "", refuse(http.StatusBadRequest, "%q is not a handle.", local)
	}
	a, err := h.Accounts.Store.GetAccountByHandle(ctx, hd+"@"+strings.ToLower(host))
	if errors.Is(err, store.ErrNotFound) {
		return "", refuse(http.StatusNotFound, "This cloud holds no account %s: it knows accounts of other clouds only when their person shares them. Give your account's DID instead.", ref)
	}
	if err != nil {
		return "", err
	}
	return a.DID, nil
}

// headLog returns the latest witnessed copy of the log of row's SCID: the
// federation's (this cloud's and its peers') when it can be asked, else
// this cloud's row.
func (h *Handler) headLog(ctx context.Context, row *identity.DIDLog) (log, witness []byte, res *webvh.Result, err error) {
	log, witness = row.Log, row.Witness
	if h.LatestDIDLog != nil {
		if l, wt, err := h.LatestDIDLog(ctx, row.SCID); err == nil {
			log, witness = l, wt
		} else {
			h.Log.WarnContext(ctx, "the commons' copies of a DID log could not be read; this cloud's copy is used", "scid", row.SCID, "err", err)
		}
	}
	wf := witness
	if len(wf) == 0 {
		wf = []byte("[]")
	}
	res, err = webvh.Verify(log, webvh.Options{Now: h.Now, Witness: func() ([]byte, error) { return wf, nil }})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("the account's DID log does not verify: %w", err)
	}
	if res.Metadata.SCID != row.SCID {
		return nil, nil, nil, fmt.Errorf("the account's DID log has SCID %s, not %s", res.Metadata.SCID, row.SCID)
	}
	if !res.Metadata.Witnessed {
		return nil, nil, nil, errors.New("the account's latest DID log entry is not witnessed yet")
	}
	if err := identity.CheckAuthority(res, 0); err != nil {
		return nil, nil, nil, err
	}
	return log, witness, res, nil
}

// kitSigner derives the kit key of phrase and checks it is a person key
// of res; a key that was one before a rotation, or none, is refused.
func kitSigner(res *webvh.Result, phrase string) (priv ed25519.PrivateKey, seed []byte, err error) {
	seed, err = identity.RecoverySeed(phrase)
	if err != nil {
		return nil, nil, refuse(http.StatusBadRequest, "%s", sentence(err.Error()))
	}
	priv, err = identity.RecoveryKeyFromSeed(seed)
	if err != nil {
		return nil, nil, err
	}
	mk := webvh.Multikey(priv.Public().(ed25519.PublicKey))
	persons := identity.PersonKeys(res)
	if slices.Contains(persons, mk) {
		return priv, seed, nil
	}
	for _, e := range res.Entries {
		if len(e.UpdateKeys) > 1 && slices.Contains(e.UpdateKeys[1:], mk) {
			return nil, nil, refuse(http.StatusForbidden, "This recovery phrase is no longer valid: the account's recovery kit was replaced by a new one (rotated). Use the newest recovery phrase you were given.")
		}
	}
	if len(persons) == 0 {
		return nil, nil, refuse(http.StatusForbidden, "This account has no recovery kit: it cannot be recovered with a phrase.")
	}
	return nil, nil, refuse(http.StatusForbidden, "This recovery phrase is not the one of this account's recovery kit.")
}

// signingTime is the versionTime of a new entry after res's last: now to
// the second, after the last entry's.
func signingTime(now time.Time, res *webvh.Result) time.Time {
	at := now.UTC().Truncate(time.Second)
	if last := res.Metadata.VersionTime; !at.After(last) {
		at = last.Add(time.Second)
	}
	return at
}

// witnessRefusal explains a CollectWitness error.
func witnessRefusal(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "fork") || strings.Contains(msg, "stale"):
		return refuse(http.StatusConflict, "The commons' witnesses refused: another change of this account (a move or a key change at another cloud) was confirmed first. Nothing was changed here.")
	case errors.Is(err, identity.ErrPersonKeyRequired):
		return refuse(http.StatusConflict, "The commons' witnesses refused the change: %s.", msg)
	}
	return refuse(http.StatusServiceUnavailable, "Not enough of the commons' witnesses confirmed the change (%s). Nothing was changed; please try again later.", msg)
}

// collect has the new log witnessed and checks the result.
func (h *Handler) collect(ctx context.Context, l *webvh.Log, existing []byte, from int) ([]byte, *webvh.Result, error) {
	if h.CollectWitness == nil {
		return nil, nil, refuse(http.StatusServiceUnavailable, "This cloud cannot reach the commons' witnesses (it has no federation): the change cannot be confirmed.")
	}
	witness, err := h.CollectWitness(ctx, l.Bytes(), existing)
	if err != nil {
		return nil, nil, witnessRefusal(err)
	}
	res, err := webvh.Verify(l.Bytes(), webvh.Options{Now: h.Now, Witness: func() ([]byte, error) { return witness, nil }})
	if err == nil && !res.Metadata.Witnessed {
		err = webvh.ErrWitness
	}
	if err == nil {
		err = identity.CheckAuthority(res, from)
	}
	if err != nil {
		return nil, nil, witnessRefusal(err)
	}
	return witness, res, nil
}

// memberWitnesses is the witness parameter of the logs homed here.
func (h *Handler) memberWitnesses(ctx context.Context) (*webvh.Witness, error) {
	if h.MemberWitnesses == nil {
		return nil, refuse(http.StatusServiceUnavailable, "This cloud cannot reach the commons' witnesses (it has no federation): the change cannot be confirmed.")
	}
	ids, err := h.MemberWitnesses(ctx)
	if err != nil {
		return nil, fmt.Errorf("the commons' witnesses: %w", err)
	}
	return identity.WitnessConfig(ids), nil
}

// recover does the recovery of accountDID (see the top of this file).
func (h *Handler) recover(ctx context.Context, accountDID, handle, phrase, password string) (*Recovered, error) {
	logs := h.Accounts.DIDLogs
	row, err := logs.GetDIDLog(ctx, accountDID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, refuse(http.StatusNotFound, "This cloud holds no copy of this account's DID history: recovery works on a cloud of the same commons that has learned it.")
	}
	if err != nil {
		return nil, err
	}
	log, witness, res, err := h.headLog(ctx, row)
	if err != nil {
		h.Log.WarnContext(ctx, "recovery refused: the account's log is not usable", "scid", row.SCID, "err", err)
		return nil, refuse(http.StatusConflict, "The copy of this account's DID history held here cannot be relied on (%s). Try again later or at another cloud of your commons.", err.Error())
	}
	fromHome, _, err := identity.IssuerOfWebVH(res.DID)
	if err != nil {
		return nil, refuse(http.StatusConflict, "The account's DID does not name a cloud this one can take over from: %s.", err.Error())
	}
	existing, err := h.Accounts.Store.GetAccount(ctx, accountDID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		existing = nil
	case err != nil:
		return nil, err
	case existing.Status == identity.StatusDeleted:
		return nil, refuse(http.StatusConflict, "This account was deleted on this cloud; it cannot be recovered here.")
	}
	if strings.TrimRight(fromHome, "/") == strings.TrimRight(h.Accounts.Issuer, "/") {
		return nil, refuse(http.StatusConflict, "This account is already homed on this cloud: sign in, or reset its password here.")
	}
	if res.Metadata.Deactivated {
		return nil, refuse(http.StatusConflict, "This account's DID was deactivated: it cannot be recovered.")
	}
	signer, seed, err := kitSigner(res, phrase)
	if err != nil {
		return nil, err
	}
	if err := identity.ValidatePassword(password); err != nil {
		return nil, err
	}

	out := &Recovered{From: fromHome}
	// The handle: the replica's, without its "@home" suffix, when free;
	// else the one chosen on the form.
	want := handle
	if want == "" && existing != nil {
		want = bareHandle(existing.Handle)
	}
	if want == "" {
		return nil, refuse(http.StatusBadRequest, "This cloud holds no profile of this account: please choose a handle for it here.")
	}
	if want, err = identity.NormalizeHandle(want); err != nil {
		return nil, refuse(http.StatusBadRequest, "%s", sentence(err.Error()))
	}
	if other, err := h.Accounts.Store.GetAccountByHandle(ctx, want); err == nil && other.DID != accountDID {
		return nil, refuse(http.StatusConflict, "The handle %s is taken on this cloud: please choose another one.", want)
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}

	// The pairwise secret: the escrowed one, else a new one (the services
	// then see a new person).
	secret, escrowed := []byte(nil), false
	if len(row.Escrow) > 0 {
		if s, err := identity.OpenEscrow(seed, row.SCID, row.Escrow); err == nil {
			secret, escrowed = s, true
		} else {
			h.Log.WarnContext(ctx, "the escrowed pairwise secret does not open with the kit that signs the recovery", "scid", row.SCID)
		}
	}
	if secret == nil {
		secret = make([]byte, identity.PairwiseSecretSize)
		if _, err := rand.Read(secret); err != nil {
			return nil, err
		}
	}
	hash, err := identity.HashPassword(password, h.Accounts.Argon2)
	if err != nil {
		return nil, err
	}

	// The move, witnessed; nothing is written when it is refused.
	wc, err := h.memberWitnesses(ctx)
	if err != nil {
		return nil, err
	}
	l, err := webvh.Open(log, webvh.Options{Now: h.Now})
	if err != nil {
		return nil, err
	}
	// The custodial key and the entry's time are derived from the kit and
	// the last entry: a retry after witnesses fell short signs the same
	// entry, which the witnesses that signed it take again.
	custodial, err := identity.RecoveryCustodialKey(seed, row.SCID, res.Metadata.VersionID, h.Accounts.Issuer)
	if err != nil {
		return nil, err
	}
	custodialPub := custodial.Public().(ed25519.PublicKey)
	now := h.Now().UTC()
	at := res.Metadata.VersionTime.UTC().Truncate(time.Second).Add(time.Second)
	moved, err := identity.AppendMove(l, h.Accounts.Issuer, custodialPub, wc, signer, at)
	if err != nil {
		return nil, fmt.Errorf("move the account's DID: %w", err)
	}
	witness, mres, err := h.collect(ctx, moved, witness, res.Metadata.VersionNumber)
	if err != nil {
		return nil, err
	}
	_, name, err := identity.IssuerOfWebVH(mres.DID)
	if err != nil {
		return nil, err
	}
	sealedKey, sealedSecret, err := h.Accounts.SealSecrets(&did.Key{DID: accountDID, Private: custodial}, secret)
	if err != nil {
		return nil, err
	}

	a := &identity.Account{DID: accountDID, Handle: want, Status: identity.StatusActive, HomeIssuer: h.Accounts.Issuer,
		PasswordHash: hash, DIDKeySealed: sealedKey, PairwiseSecretSealed: sealedSecret, CreatedAt: now, UpdatedAt: now}
	if existing != nil && existing.Status != identity.StatusMoved {
		a.Email, a.EmailVerified, a.Name, a.CreatedAt = existing.Email, existing.EmailVerified, existing.Name, existing.CreatedAt
		out.FromReplica = true
	}
	newRow := &identity.DIDLog{DID: accountDID, SCID: row.SCID, CurrentDID: mres.DID, Name: name, HomeIssuer: h.Accounts.Issuer,
		Log: moved.Bytes(), Witness: witness, Escrow: row.Escrow, Version: mres.Metadata.VersionNumber, UpdatedAt: now}
	var kept, dropped []string
	err = h.Privacy.InTx(ctx, func(ctx context.Context) error {
		// The log and its did.log event first: peers then learn the move
		// before the account events that follow it.
		ok, err := logs.PutDIDLog(ctx, newRow, row.Version)
		if err != nil {
			return err
		}
		if !ok {
			return refuse(http.StatusConflict, "The account's DID history changed on this cloud during the recovery: please try again.")
		}
		if h.Events != nil {
			if err := h.Events.AppendEvent(ctx, "did.log", accountDID, now, map[string]any{"scid": row.SCID}); err != nil {
				return err
			}
		}
		if existing == nil {
			if err := h.Accounts.Store.CreateAccount(ctx, a); err != nil {
				return err
			}
		} else if err := h.Accounts.Store.UpdateAccount(ctx, accountDID, func(x *identity.Account) error {
			created := x.CreatedAt
			*x = *a
			x.CreatedAt = created
			return nil
		}); err != nil {
			return err
		}
		// Consents held for the account's former home's services become
		// consents here where the service is one of this cloud's.
		cs, err := h.Privacy.ListConsents(ctx, accountDID)
		if err != nil {
			return err
		}
		for _, c := range cs {
			issuer, clientID, ok := strings.Cut(c.ClientID, "#")
			if !ok {
				continue
			}
			if err := h.Privacy.DeleteConsent(ctx, accountDID, c.ClientID); err != nil {
				return err
			}
			if h.Services == nil || !strings.HasPrefix(issuer, "http") {
				dropped = append(dropped, clientID)
				continue
			}
			if si, err := h.Services(ctx, clientID); err != nil || si == nil {
				dropped = append(dropped, clientID)
				continue
			}
			lc := *c
			lc.ClientID = clientID
			if err := h.Privacy.PutConsent(ctx, &lc); err != nil {
				return err
			}
			kept = append(kept, clientID)
		}
		return h.Privacy.AppendActivity(ctx, &privacy.Activity{AccountDID: accountDID, At: now, Kind: ActivityRecovered,
			Detail: map[string]any{"from": fromHome, "did": mres.DID, "version": mres.Metadata.VersionNumber,
				"from_replica": out.FromReplica, "pairwise_secret": escrowed, "consents_kept": len(kept), "consents_dropped": len(dropped)}})
	})
	if err != nil {
		var dup *store.DuplicateError
		if errors.As(err, &dup) && dup.Field == "handle" {
			return nil, refuse(http.StatusConflict, "The handle %s is taken on this cloud: please choose another one.", want)
		}
		return nil, err
	}
	out.Account, out.DID, out.Version = a, mres.DID, mres.Metadata.VersionNumber
	out.Recovered = append(out.Recovered, "your identifier: "+accountDID+" (now "+mres.DID+"), confirmed by the commons' witnesses")
	if escrowed {
		out.Recovered = append(out.Recovered, "your identifiers at services: every service sees you as before")
	} else {
		out.NotShared = append(out.NotShared, "your identifiers at services: the kit held none for this account, so services will see you as a new person")
	}
	out.Recovered = append(out.Recovered, "your handle here: "+want, "a new password")
	if out.FromReplica {
		if a.Name != "" || a.Email != "" {
			out.Recovered = append(out.Recovered, "the profile you shared with this cloud (name, email)")
		} else {
			out.NotShared = append(out.NotShared, "your email and name were not shared with this cloud")
		}
		out.Recovered = append(out.Recovered, "your privacy settings as shared with this cloud")
	} else {
		out.NotShared = append(out.NotShared, "your email, name and privacy settings were not shared with this cloud")
	}
	if len(kept) > 0 {
		out.Recovered = append(out.Recovered, fmt.Sprintf("%d consent(s) to services of this cloud", len(kept)))
	}
	out.NotShared = append(out.NotShared, "consents to services on other clouds: each asks again at your next sign-in",
		"passkeys: add them again on your security page", "your activity history on your former home")
	return out, nil
}

// bareHandle strips the home host of a replica handle.
func bareHandle(h string) string {
	if i := strings.LastIndexByte(h, '@'); i > 0 {
		return h[:i]
	}
	return h
}
