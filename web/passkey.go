package web

// Passkeys (WebAuthn). A signed-in person registers passkeys from the
// dashboard's Security section and signs in with one on /login. The
// ceremonies are JSON endpoints driven by /static/passkey.js; the challenge
// of each ceremony is kept in the database (any replica can finish it) under
// the hash of a random id carried in a short-lived cookie, and is taken
// exactly once.
//
//	POST   /login/passkey/begin                    discoverable-credential options
//	POST   /login/passkey/finish?return_to=…       verify; start the sign-on session
//	GET    /account/api/passkeys                   the person's passkeys
//	POST   /account/api/passkeys/register/begin    creation options (recent sign-in or {"password"})
//	POST   /account/api/passkeys/register/finish?name=…
//	PUT    /account/api/passkeys/{id}              rename: {"name": …}
//	DELETE /account/api/passkeys/{id}
//	POST   /account/passkeys/{id}/rename           the same as forms, without script
//	POST   /account/passkeys/{id}/delete

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/internal/metrics"
	"github.com/onecommons/commonsid/privacy"
	"github.com/onecommons/commonsid/store"
)

// NewWebAuthn configures passkeys for a cloud: the relying party id is the
// issuer's host name and the only accepted origin is the issuer's. Browsers
// refuse passkeys for an IP address, so an issuer on one gets an error (and
// the cloud runs without passkeys).
func NewWebAuthn(issuer string) (*webauthn.WebAuthn, error) {
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("passkeys: issuer %q is not a URL", issuer)
	}
	host := u.Hostname()
	if net.ParseIP(host) != nil {
		return nil, fmt.Errorf("passkeys need the issuer to be a domain name, not the IP address %s", host)
	}
	required := true
	return webauthn.New(&webauthn.Config{
		RPID:          host,
		RPDisplayName: "Commons ID",
		RPOrigins:     []string{u.Scheme + "://" + u.Host},
		// A passkey replaces the password: it must be discoverable (no
		// handle typed first) and the authenticator must verify the person.
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			RequireResidentKey: &required,
			ResidentKey:        protocol.ResidentKeyRequirementRequired,
			UserVerification:   protocol.VerificationRequired,
		},
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Timeout: identity.CeremonyLifetime, TimeoutUVD: identity.CeremonyLifetime},
			Registration: webauthn.TimeoutConfig{Timeout: identity.CeremonyLifetime, TimeoutUVD: identity.CeremonyLifetime},
		},
	})
}

func (h *Handler) passkeysOn() bool {
	return h.WebAuthn != nil && h.Passkeys != nil && h.Ceremonies != nil
}

// The ceremony cookie is scoped to the endpoints of its ceremony.
const (
	ceremonyCookie = "commonsid_passkey"
	loginPath      = "/login/passkey"
	registerPath   = "/account/api/passkeys/register"
)

// amrPasskey is the sign-in method of a passkey (RFC 8176): proof of
// possession of a key held by an authenticator, after a user test.
var amrPasskey = []string{"hwk", "user"}

func (h *Handler) mountPasskeys(r chi.Router) {
	if !h.passkeysOn() {
		return
	}
	// One budget per IP for both steps, as for password sign-in.
	perIP := h.Limits.PerIP(30, time.Minute, true)
	r.With(crossOrigin, perIP).Post(loginPath+"/begin", h.api(h.apiPasskeyLoginBegin))
	r.With(crossOrigin, perIP).Post(loginPath+"/finish", h.api(h.apiPasskeyLoginFinish))
	r.Group(func(r chi.Router) {
		r.Use(h.requireAccount(true), crossOrigin)
		r.Get("/account/api/passkeys", h.api(h.apiPasskeys))
		r.Post(registerPath+"/begin", h.api(h.apiPasskeyRegisterBegin))
		r.Post(registerPath+"/finish", h.api(h.apiPasskeyRegisterFinish))
		r.Put("/account/api/passkeys/{id}", h.api(h.apiRenamePasskey))
		r.Delete("/account/api/passkeys/{id}", h.api(h.apiDeletePasskey))
	})
	r.Group(func(r chi.Router) {
		r.Use(h.requireAccount(false), crossOrigin, formLimit)
		r.Method(http.MethodPost, "/account/passkeys/{id}/rename", h.wrap(h.postRenamePasskey))
		r.Method(http.MethodPost, "/account/passkeys/{id}/delete", h.wrap(h.postDeletePasskey))
	})
}

// --- the go-webauthn side ---

// passkeyUser is an account as go-webauthn sees it.
type passkeyUser struct {
	acct   *identity.Account
	handle []byte
	keys   []*identity.Passkey
}

// account is the account of u; nil when u is.
func (u *passkeyUser) account() *identity.Account {
	if u == nil {
		return nil
	}
	return u.acct
}

func (u *passkeyUser) WebAuthnID() []byte   { return u.handle }
func (u *passkeyUser) WebAuthnName() string { return u.acct.Handle }

func (u *passkeyUser) WebAuthnDisplayName() string {
	if u.acct.Name != "" {
		return u.acct.Name
	}
	return u.acct.Handle
}

func (u *passkeyUser) WebAuthnCredentials() []webauthn.Credential {
	out := make([]webauthn.Credential, 0, len(u.keys))
	for _, p := range u.keys {
		out = append(out, toCredential(p))
	}
	return out
}

func toCredential(p *identity.Passkey) webauthn.Credential {
	flags := protocol.FlagUserPresent
	if p.UserVerified {
		flags |= protocol.FlagUserVerified
	}
	if p.BackupEligible {
		flags |= protocol.FlagBackupEligible
	}
	if p.BackupState {
		flags |= protocol.FlagBackupState
	}
	var tr []protocol.AuthenticatorTransport
	for _, t := range p.Transports {
		tr = append(tr, protocol.AuthenticatorTransport(t))
	}
	return webauthn.Credential{
		ID: p.ID, PublicKey: p.PublicKey, AttestationType: p.AttestationType, AttestationFormat: p.AttestationFormat,
		Transport: tr, Flags: webauthn.NewCredentialFlags(flags),
		Authenticator: webauthn.Authenticator{AAGUID: p.AAGUID, SignCount: p.SignCount, Attachment: protocol.AuthenticatorAttachment(p.Attachment)},
	}
}

func fromCredential(c *webauthn.Credential, did, name string, now time.Time) *identity.Passkey {
	var tr []string
	for _, t := range c.Transport {
		if s := strings.TrimSpace(string(t)); s != "" && !strings.Contains(s, " ") {
			tr = append(tr, s)
		}
	}
	return &identity.Passkey{
		ID: c.ID, AccountDID: did, Name: name, PublicKey: c.PublicKey, AttestationType: c.AttestationType,
		AttestationFormat: c.AttestationFormat, AAGUID: c.Authenticator.AAGUID, SignCount: c.Authenticator.SignCount,
		Transports: tr, Attachment: string(c.Authenticator.Attachment), UserVerified: c.Flags.UserVerified,
		BackupEligible: c.Flags.BackupEligible, BackupState: c.Flags.BackupState, CreatedAt: now,
	}
}

// --- ceremonies ---

// ceremonyState is what a ceremony keeps between its two steps.
type ceremonyState struct {
	Session webauthn.SessionData `json:"session"`
	// Bound is the sign-on session that began a registration: only it can
	// finish it.
	Bound string `json:"bound,omitempty"`
}

var errNoCeremony = &apiError{http.StatusBadRequest, "ceremony_expired",
	"the passkey request expired or was already used; please try again"}

func (h *Handler) beginCeremony(w http.ResponseWriter, r *http.Request, kind, path string, st *ceremonyState) error {
	tok, err := identity.NewToken()
	if err != nil {
		return err
	}
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode ceremony: %w", err)
	}
	c := &identity.Ceremony{IDHash: identity.HashToken(tok), Kind: kind, Data: data, ExpiresAt: h.Now().UTC().Add(identity.CeremonyLifetime)}
	if err := h.Ceremonies.PutCeremony(r.Context(), c); err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: ceremonyCookie, Value: tok, Path: path, MaxAge: int(identity.CeremonyLifetime / time.Second),
		HttpOnly: true, Secure: h.SecureCookies, SameSite: http.SameSiteLaxMode})
	return nil
}

// takeCeremony ends the ceremony of the request's cookie: whatever happens
// next, its challenge cannot be answered again.
func (h *Handler) takeCeremony(w http.ResponseWriter, r *http.Request, kind, path string) (*ceremonyState, error) {
	http.SetCookie(w, &http.Cookie{Name: ceremonyCookie, Value: "", Path: path, MaxAge: -1,
		HttpOnly: true, Secure: h.SecureCookies, SameSite: http.SameSiteLaxMode})
	ck, err := r.Cookie(ceremonyCookie)
	if err != nil || ck.Value == "" {
		return nil, errNoCeremony
	}
	c, err := h.Ceremonies.TakeCeremony(r.Context(), identity.HashToken(ck.Value), kind, h.Now().UTC())
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNoCeremony
	}
	if err != nil {
		return nil, err
	}
	var st ceremonyState
	if err := json.Unmarshal(c.Data, &st); err != nil {
		return nil, fmt.Errorf("decode ceremony: %w", err)
	}
	return &st, nil
}

// --- sign-in ---

// errPasskeyRefused is the one answer to every failed passkey sign-in:
// unknown credential, bad signature, another account's key, an account that
// cannot sign in.
var errPasskeyRefused = &apiError{http.StatusUnauthorized, "passkey_refused", "this passkey could not sign you in"}

func (h *Handler) apiPasskeyLoginBegin(w http.ResponseWriter, r *http.Request) (any, error) {
	opts, sess, err := h.WebAuthn.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return nil, fmt.Errorf("begin passkey login: %w", err)
	}
	if err := h.beginCeremony(w, r, identity.CeremonyLogin, loginPath, &ceremonyState{Session: *sess}); err != nil {
		return nil, err
	}
	return opts, nil
}

func (h *Handler) apiPasskeyLoginFinish(w http.ResponseWriter, r *http.Request) (any, error) {
	ctx := r.Context()
	returnTo := localPath(r.URL.Query().Get("return_to"))
	st, err := h.takeCeremony(w, r, identity.CeremonyLogin, loginPath)
	if err != nil {
		if errors.Is(err, errNoCeremony) {
			return nil, err
		}
		return nil, h.errUnavailable(r, "passkey sign-in", err)
	}
	parsed, err := protocol.ParseCredentialRequestResponseBody(http.MaxBytesReader(w, r.Body, maxFormBytes))
	if err != nil {
		return nil, &apiError{http.StatusBadRequest, "invalid_request", "the browser's answer could not be read"}
	}
	var (
		user    *passkeyUser
		storeEr error // a failure of ours, not the person's
	)
	lookup := func(rawID, userHandle []byte) (webauthn.User, error) {
		did, err := h.Passkeys.PasskeyUser(ctx, userHandle)
		if err != nil {
			if !errors.Is(err, store.ErrNotFound) {
				storeEr = err
			}
			return nil, err
		}
		a, err := h.Accounts.Store.GetAccount(ctx, did)
		if err != nil {
			if !errors.Is(err, store.ErrNotFound) {
				storeEr = err
			}
			return nil, err
		}
		if a.Status != identity.StatusActive {
			return nil, errors.New("the account cannot sign in")
		}
		keys, err := h.Passkeys.ListPasskeys(ctx, did)
		if err != nil {
			storeEr = err
			return nil, err
		}
		user = &passkeyUser{acct: a, handle: userHandle, keys: keys}
		return user, nil
	}
	_, cred, err := h.WebAuthn.ValidatePasskeyLogin(lookup, st.Session, parsed)
	if storeEr != nil {
		return nil, h.errUnavailable(r, "passkey sign-in", storeEr)
	}
	if err != nil {
		h.Log.InfoContext(ctx, "passkey sign-in refused", "reason", reason(err))
		h.signInFailed(r, metrics.MethodPasskey, metrics.OutcomeBadCredentials, "", user.account())
		return nil, errPasskeyRefused
	}
	if cred.Authenticator.CloneWarning {
		h.Log.WarnContext(ctx, "passkey sign-in refused: the signature counter did not advance (cloned authenticator?)")
		h.signInFailed(r, metrics.MethodPasskey, metrics.OutcomeBadCredentials, "", user.account())
		return nil, errPasskeyRefused
	}
	now := h.Now().UTC()
	err = h.Passkeys.RecordPasskeyUse(ctx, cred.ID, cred.Authenticator.SignCount, cred.Flags.BackupState, now)
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		h.Log.WarnContext(ctx, "passkey sign-in refused", "reason", err.Error())
		h.signInFailed(r, metrics.MethodPasskey, metrics.OutcomeBadCredentials, "", user.account())
		return nil, errPasskeyRefused
	}
	if err != nil {
		return nil, h.errUnavailable(r, "passkey sign-in", err)
	}
	name := ""
	for _, k := range user.keys {
		if bytes.Equal(k.ID, cred.ID) {
			name = k.Name
		}
	}
	if err := h.startSession(w, r, user.acct, amrPasskey, map[string]any{"method": "passkey", "passkey": name}); err != nil {
		return nil, h.errUnavailable(r, "passkey sign-in", err)
	}
	if returnTo == "" {
		returnTo = "/account"
	}
	return map[string]string{"redirect": returnTo}, nil
}

// reason is the library's description of a refused ceremony, for the log.
func reason(err error) string {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		if pe.DevInfo != "" {
			return pe.Details + ": " + pe.DevInfo
		}
		return pe.Details
	}
	return err.Error()
}

// --- registration ---

// passkeyUserOf returns the signed-in person as go-webauthn sees them,
// giving the account its user handle the first time.
func (h *Handler) passkeyUserOf(ctx context.Context, a *identity.Account) (*passkeyUser, error) {
	fresh, err := identity.NewUserHandle()
	if err != nil {
		return nil, err
	}
	handle, err := h.Passkeys.PutPasskeyUser(ctx, a.DID, fresh)
	if err != nil {
		return nil, err
	}
	keys, err := h.Passkeys.ListPasskeys(ctx, a.DID)
	if err != nil {
		return nil, err
	}
	return &passkeyUser{acct: a, handle: handle, keys: keys}, nil
}

func (h *Handler) apiPasskeyRegisterBegin(w http.ResponseWriter, r *http.Request) (any, error) {
	m := current(r)
	var in struct {
		Password string `json:"password"`
	}
	if err := decodeOptionalJSON(w, r, &in); err != nil {
		return nil, err
	}
	if err := h.reauth(r, m, in.Password); err != nil {
		return nil, err
	}
	u, err := h.passkeyUserOf(r.Context(), m.acct)
	if err != nil {
		return nil, err
	}
	// The authenticators that already hold one of the person's passkeys
	// are told so, and do not make a second one.
	opts, sess, err := h.WebAuthn.BeginRegistration(u, webauthn.WithExclusions(webauthn.Credentials(u.WebAuthnCredentials()).CredentialDescriptors()))
	if err != nil {
		return nil, fmt.Errorf("begin passkey registration: %w", err)
	}
	if err := h.beginCeremony(w, r, identity.CeremonyRegister, registerPath, &ceremonyState{Session: *sess, Bound: m.sess.IDHash}); err != nil {
		return nil, err
	}
	return opts, nil
}

func (h *Handler) apiPasskeyRegisterFinish(w http.ResponseWriter, r *http.Request) (any, error) {
	ctx := r.Context()
	m := current(r)
	now := h.Now().UTC()
	name := strings.TrimSpace(r.URL.Query().Get("name"))
	if name == "" {
		name = "Passkey added " + now.Format("2006-01-02")
	}
	name, err := identity.ValidatePasskeyName(name)
	if err != nil {
		return nil, err
	}
	st, err := h.takeCeremony(w, r, identity.CeremonyRegister, registerPath)
	if err != nil {
		return nil, err
	}
	if st.Bound != m.sess.IDHash {
		return nil, errNoCeremony
	}
	parsed, err := protocol.ParseCredentialCreationResponseBody(http.MaxBytesReader(w, r.Body, maxFormBytes))
	if err != nil {
		return nil, &apiError{http.StatusBadRequest, "invalid_request", "the browser's answer could not be read: " + reason(err)}
	}
	u, err := h.passkeyUserOf(ctx, m.acct)
	if err != nil {
		return nil, err
	}
	cred, err := h.WebAuthn.CreateCredential(u, st.Session, parsed)
	if err != nil {
		return nil, &apiError{http.StatusBadRequest, "passkey_refused", "the new passkey could not be verified: " + reason(err)}
	}
	p := fromCredential(cred, m.acct.DID, name, now)
	if err := h.Passkeys.CreatePasskey(ctx, p); err != nil {
		if errors.Is(err, store.ErrAlreadyExists) {
			return nil, &apiError{http.StatusConflict, "already_registered", "this passkey is already registered"}
		}
		return nil, err
	}
	h.logPasskey(r, "passkey.added", name)
	return toView(p), nil
}

func (h *Handler) logPasskey(r *http.Request, kind, name string) {
	m := current(r)
	err := h.Privacy.AppendActivity(r.Context(), &privacy.Activity{AccountDID: m.acct.DID, At: h.Now().UTC(), Kind: kind,
		Detail: map[string]any{"name": name}, IP: clientIP(r), UserAgent: h.meta(r).UserAgent})
	if err != nil {
		h.Log.ErrorContext(r.Context(), "activity log", "err", err)
	}
}

// decodeOptionalJSON is decodeJSON that also accepts an empty body.
func decodeOptionalJSON(w http.ResponseWriter, r *http.Request, v any) error {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFormBytes))
	if err != nil {
		return &apiError{http.StatusBadRequest, "invalid_request", "the body could not be read"}
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &apiError{http.StatusBadRequest, "invalid_request", "the body is not the expected JSON: " + err.Error()}
	}
	return nil
}

// --- list, rename, remove ---

type passkeyView struct {
	ID         string     `json:"id"` // base64url credential id
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	Synced     bool       `json:"synced"`
}

func toView(p *identity.Passkey) passkeyView {
	return passkeyView{ID: base64.RawURLEncoding.EncodeToString(p.ID), Name: p.Name, CreatedAt: p.CreatedAt,
		LastUsedAt: p.LastUsedAt, Synced: p.BackupState}
}

func (h *Handler) passkeyViews(ctx context.Context, did string) ([]passkeyView, error) {
	ps, err := h.Passkeys.ListPasskeys(ctx, did)
	if err != nil {
		return nil, err
	}
	out := []passkeyView{}
	for _, p := range ps {
		out = append(out, toView(p))
	}
	return out, nil
}

// passkeyID reads the {id} of a route; a malformed one is simply not there.
func passkeyID(r *http.Request) ([]byte, error) {
	id, err := base64.RawURLEncoding.DecodeString(chi.URLParam(r, "id"))
	if err != nil || len(id) == 0 {
		return nil, store.ErrNotFound
	}
	return id, nil
}

func (h *Handler) renamePasskey(r *http.Request, name string) error {
	id, err := passkeyID(r)
	if err != nil {
		return err
	}
	if name, err = identity.ValidatePasskeyName(name); err != nil {
		return err
	}
	return h.Passkeys.RenamePasskey(r.Context(), current(r).acct.DID, id, name)
}

// deletePasskey removes one of the person's own passkeys; another
// person's is not there.
func (h *Handler) deletePasskey(r *http.Request) error {
	id, err := passkeyID(r)
	if err != nil {
		return err
	}
	did := current(r).acct.DID
	ps, err := h.Passkeys.ListPasskeys(r.Context(), did)
	if err != nil {
		return err
	}
	name := ""
	for _, p := range ps {
		if bytes.Equal(p.ID, id) {
			name = p.Name
		}
	}
	if err := h.Passkeys.DeletePasskey(r.Context(), did, id); err != nil {
		return err
	}
	h.logPasskey(r, "passkey.removed", name)
	if m := h.mfa(); m != nil {
		// The last factor gone: no recovery codes, nothing required.
		return m.AfterFactorRemoved(r.Context(), did)
	}
	return nil
}

func (h *Handler) apiPasskeys(w http.ResponseWriter, r *http.Request) (any, error) {
	return h.passkeyViews(r.Context(), current(r).acct.DID)
}

func (h *Handler) apiRenamePasskey(w http.ResponseWriter, r *http.Request) (any, error) {
	var in struct {
		Name string `json:"name"`
	}
	if err := decodeJSON(w, r, &in); err != nil {
		return nil, err
	}
	if err := h.renamePasskey(r, in.Name); err != nil {
		return nil, err
	}
	id, _ := passkeyID(r)
	vs, err := h.passkeyViews(r.Context(), current(r).acct.DID)
	if err != nil {
		return nil, err
	}
	for _, v := range vs {
		if v.ID == base64.RawURLEncoding.EncodeToString(id) {
			return v, nil
		}
	}
	return nil, store.ErrNotFound
}

func (h *Handler) apiDeletePasskey(w http.ResponseWriter, r *http.Request) (any, error) {
	return nil, h.deletePasskey(r)
}

// passkeyData is the Passkeys part of the Security page.
func (h *Handler) passkeyData(r *http.Request) map[string]any {
	d := map[string]any{"NeedReauth": h.needReauth(current(r))}
	if !h.passkeysOn() {
		d["PasskeyState"] = "off"
		return d
	}
	vs, err := h.passkeyViews(r.Context(), current(r).acct.DID)
	if err != nil {
		h.Log.ErrorContext(r.Context(), "list passkeys", "err", err)
		d["PasskeyState"], d["PasskeyError"] = "error", "Your passkeys could not be loaded. Please try again."
		return d
	}
	d["PasskeyState"], d["Passkeys"] = "on", vs
	return d
}

func (h *Handler) postRenamePasskey(w http.ResponseWriter, r *http.Request) error {
	if err := h.renamePasskey(r, r.PostForm.Get("name")); err != nil {
		return h.formError(w, r, err, "security", "account_security", h.passkeyData(r))
	}
	http.Redirect(w, r, "/account/security?done=passkey-renamed#passkeys", http.StatusSeeOther)
	return nil
}

func (h *Handler) postDeletePasskey(w http.ResponseWriter, r *http.Request) error {
	if err := h.deletePasskey(r); err != nil {
		return err
	}
	http.Redirect(w, r, "/account/security?done=passkey-removed#passkeys", http.StatusSeeOther)
	return nil
}
