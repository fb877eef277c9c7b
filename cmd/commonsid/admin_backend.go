package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/onecommons/commonsid/admin"
	"github.com/onecommons/commonsid/federation"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/internal/httpx"
	"github.com/onecommons/commonsid/keys"
	"github.com/onecommons/commonsid/oidc"
)

// adminBackend does the admin API's work (package admin) with what the
// CLI commands use: findAccount, the account functions of user.go
// (listAccounts, accountShown, disableAccount, …), the identity service, the
// client registrar, the key manager and addPeer, so that the API and
// `commonsid user|client|keys|peer` accept and refuse the same.
type adminBackend struct {
	cl  *cloud
	fed *federation.Federation
}

var _ admin.Backend = (*adminBackend)(nil)

// classify turns the errors of the shared functions into API errors.
func classify(err error) error {
	var me *oidc.MetadataError
	switch {
	case err == nil:
		return nil
	case isNotFound(err):
		return admin.NotFound("%s", err.Error())
	case errors.Is(err, identity.ErrBadTransition):
		return admin.Conflict("%s", err.Error())
	case errors.Is(err, identity.ErrUnavailable):
		return admin.Unavailable(err)
	case errors.As(err, &me):
		return &admin.Error{Status: 400, Code: me.Code, Description: me.Description}
	}
	return err
}

// find is findAccount with its refusals as API errors.
func (b *adminBackend) find(ctx context.Context, ref string) (*identity.Account, error) {
	a, err := findAccount(ctx, b.cl, ref)
	if err != nil {
		msg := err.Error()
		switch {
		case strings.HasPrefix(msg, "no account "):
			return nil, admin.NotFound("%s", msg)
		case strings.Contains(msg, "names accounts of several home clouds"):
			return nil, admin.Conflict("%s", msg)
		}
		return nil, err
	}
	return a, nil
}

// homed is find for a change: replicas are read-only here (changeable, as
// in `user disable|enable|delete`).
func (b *adminBackend) homed(ctx context.Context, ref string) (*identity.Account, error) {
	a, err := b.find(ctx, ref)
	if err != nil {
		return nil, err
	}
	if err := changeable(b.cl, a); err != nil {
		return nil, admin.Conflict("%s", err.Error())
	}
	return a, nil
}

// ListAccounts is `user list --json`, a page at a time.
func (b *adminBackend) ListAccounts(ctx context.Context, after string, limit int) (*admin.AccountPage, error) {
	page, err := listAccounts(ctx, b.cl, after, limit)
	if err != nil {
		return nil, classify(err)
	}
	out := &admin.AccountPage{Accounts: make([]any, 0, len(page))}
	for _, a := range page {
		out.Accounts = append(out.Accounts, a)
	}
	if len(page) == limit {
		out.NextAfter = page[len(page)-1].Handle
	}
	return out, nil
}

// ShowAccount is `user show`.
func (b *adminBackend) ShowAccount(ctx context.Context, ref string) (any, error) {
	a, err := b.find(ctx, ref)
	if err != nil {
		return nil, err
	}
	v, err := accountShown(ctx, b.cl, a)
	if err != nil {
		return nil, classify(err)
	}
	return v, nil
}

// reread answers a change with the account as it is now.
func (b *adminBackend) reread(ctx context.Context, didID string) (any, error) {
	a, err := b.cl.db.GetAccount(ctx, didID)
	if err != nil {
		return nil, classify(err)
	}
	return accountSummary(b.cl, a), nil
}

// DisableAccount is `user disable` (disableAccount).
func (b *adminBackend) DisableAccount(ctx context.Context, ref string) (any, error) {
	a, err := b.homed(ctx, ref)
	if err != nil {
		return nil, err
	}
	if err := disableAccount(ctx, b.cl, a); err != nil {
		return nil, classify(err)
	}
	return b.reread(ctx, a.DID)
}

// EnableAccount is `user enable` (enableAccount).
func (b *adminBackend) EnableAccount(ctx context.Context, ref string) (any, error) {
	a, err := b.homed(ctx, ref)
	if err != nil {
		return nil, err
	}
	if err := enableAccount(ctx, b.cl, a); err != nil {
		return nil, classify(err)
	}
	return b.reread(ctx, a.DID)
}

// DeleteAccount is `user delete` (deleteAccount).
func (b *adminBackend) DeleteAccount(ctx context.Context, ref string) error {
	a, err := b.homed(ctx, ref)
	if err != nil {
		return err
	}
	return classify(deleteAccount(ctx, b.cl, a))
}

// ResetPassword sets the password of an active account homed here, with
// the identity service's checks; with none given, it generates one (22
// characters of base64url, 128 bits) and answers it once.
func (b *adminBackend) ResetPassword(ctx context.Context, ref, password string) (*admin.PasswordReset, error) {
	a, err := b.homed(ctx, ref)
	if err != nil {
		return nil, err
	}
	out := &admin.PasswordReset{Handle: a.Handle}
	if password == "" {
		raw := make([]byte, 16)
		if _, err := rand.Read(raw); err != nil {
			return nil, err
		}
		password = base64.RawURLEncoding.EncodeToString(raw)
		out.Password, out.Generated = password, true
	}
	if err := identity.ValidatePassword(password); err != nil {
		return nil, admin.BadRequest("password: %v", err)
	}
	if err := b.cl.accounts.SetPassword(ctx, a.DID, password); err != nil {
		return nil, classify(err)
	}
	return out, nil
}

// ListClients is `client list --json`.
func (b *adminBackend) ListClients(ctx context.Context) ([]any, error) {
	cs, err := b.cl.db.ListClients(ctx)
	if err != nil {
		return nil, classify(err)
	}
	out := make([]any, 0, len(cs))
	for _, sc := range cs {
		out = append(out, clientJSON(sc))
	}
	return out, nil
}

// ShowClient is `client show`.
func (b *adminBackend) ShowClient(ctx context.Context, id string) (any, error) {
	sc, err := b.cl.db.GetClient(ctx, id)
	if isNotFound(err) {
		return nil, admin.NotFound("no client %q", id)
	}
	if err != nil {
		return nil, classify(err)
	}
	return clientJSON(sc), nil
}

// CreateClient is `client create`: the registrar of dynamic registration
// with the metadata given, which may also carry client_secret (32 bytes or
// more) and forked_from as the command's flags do.
func (b *adminBackend) CreateClient(ctx context.Context, metadata []byte) (any, error) {
	var req oidc.RegisterRequest
	if err := (httpx.StrictJSON{}).Decode(metadata, &req); err != nil {
		return nil, admin.BadRequest("%v", err)
	}
	if len(req.GrantTypes) == 0 && len(req.RedirectURIs) > 0 {
		req.GrantTypes = []string{"authorization_code", "refresh_token"}
	}
	cl := b.cl
	// An operator may register a service outside the commons' terms: it
	// is marked so (commons_terms: outside).
	g := &oidc.Registrar{Store: cl.db, Issuer: cl.cfg.Issuer, Outbound: cl.cfg.Outbound(cl.log).Client, Now: time.Now, RemoteService: cl.remoteService,
		Operator: true}
	out, err := g.Register(ctx, &req)
	if err != nil {
		return nil, classify(err)
	}
	return out, nil
}

// DeleteClient is `client delete`.
func (b *adminBackend) DeleteClient(ctx context.Context, id string) error {
	if err := b.cl.db.DeleteClient(ctx, id); err != nil {
		if isNotFound(err) {
			return admin.NotFound("no client %q", id)
		}
		return classify(err)
	}
	return nil
}

// ListKeys is `keys list --json`.
func (b *adminBackend) ListKeys(ctx context.Context) ([]any, error) {
	ks, err := b.cl.keys.List(ctx)
	if err != nil {
		return nil, classify(err)
	}
	out := make([]any, 0, len(ks))
	for _, k := range ks {
		out = append(out, keyView(k))
	}
	return out, nil
}

func keyView(k *keys.SigningKey) keyJSON {
	return keyJSON{KID: k.KID, Alg: k.Alg, Status: k.Status, CreatedAt: k.CreatedAt, RotatedAt: k.RotatedAt, RetiredAt: k.RetiredAt, PublicJWK: json.RawMessage(k.PublicJWK)}
}

// RotateKey is `keys rotate`.
func (b *adminBackend) RotateKey(ctx context.Context, alg string) (any, error) {
	if alg == "" {
		alg = keys.DefaultAlg
	}
	k, err := b.cl.keys.Rotate(ctx, alg)
	if errors.Is(err, keys.ErrUnsupportedAlg) {
		return nil, admin.BadRequest("alg: %v", err)
	}
	if err != nil {
		return nil, classify(err)
	}
	return keyView(k), nil
}

// ListPeers is `peer list --json`.
func (b *adminBackend) ListPeers(ctx context.Context) ([]any, error) {
	cl := b.cl
	peers, err := cl.db.ListPeers(ctx)
	if err != nil {
		return nil, classify(err)
	}
	out := make([]any, 0, len(peers))
	for _, p := range peers {
		pj := peerJSON{Issuer: p.Issuer, DID: p.DID, JWKSURI: p.JWKSURI, Endpoint: p.Endpoint, Cursor: p.Cursor, AddedAt: p.AddedAt, LastError: p.LastError, Keys: []string{}}
		for _, k := range p.JWKS.Keys {
			pj.Keys = append(pj.Keys, k.KeyID)
		}
		if !p.LastEventAt.IsZero() {
			t := p.LastEventAt
			pj.LastEventAt = &t
		}
		rej, err := cl.db.ListRejected(ctx, p.Issuer, 1000)
		if err != nil {
			return nil, classify(err)
		}
		pj.Rejected = len(rej)
		if pj.Quarantined, pj.QuarantineDropped, err = cl.db.QuarantineCount(ctx, p.Issuer); err != nil {
			return nil, classify(err)
		}
		if pj.Feed, err = peerFeed(ctx, cl, p.Issuer); err != nil {
			return nil, classify(err)
		}
		if pj.PendingKeys, err = pendingKeys(ctx, cl, p.Issuer); err != nil {
			return nil, classify(err)
		}
		out = append(out, pj)
	}
	return out, nil
}

// AddPeer is `peer add`: the peer's configuration and keys are fetched and
// pinned, and the peer becomes an OpenID Connect client here.
func (b *adminBackend) AddPeer(ctx context.Context, issuer, endpoint string) (any, error) {
	cl := b.cl
	p, err := addPeer(ctx, cl, b.fed, issuer, endpoint)
	if err != nil {
		if isNotFound(err) {
			return nil, classify(err)
		}
		return nil, admin.BadRequest("%v", err)
	}
	if err := oidc.EnsurePeerClient(ctx, cl.db, p.Issuer, p.Issuer+federation.CallbackPath, p.JWKSURI, time.Now().UTC()); err != nil {
		return nil, classify(err)
	}
	keys := []string{}
	for _, k := range p.JWKS.Keys {
		keys = append(keys, k.KeyID)
	}
	return peerJSON{Issuer: p.Issuer, DID: p.DID, JWKSURI: p.JWKSURI, Endpoint: p.Endpoint, AddedAt: p.AddedAt, Keys: keys}, nil
}

// RemovePeer is `peer remove`: the peer goes with its replicated
// accounts, revocations and services.
func (b *adminBackend) RemovePeer(ctx context.Context, issuer string) error {
	cl := b.cl
	iss, err := federation.NormalizeIssuer(issuer)
	if err != nil {
		return admin.BadRequest("%v", err)
	}
	if err := cl.db.DeletePeer(ctx, iss); err != nil {
		if isNotFound(err) {
			return admin.NotFound("%s is not a peer", iss)
		}
		return classify(err)
	}
	if err := cl.db.DeleteClient(ctx, iss); err != nil && !isNotFound(err) {
		return classify(err)
	}
	return nil
}
