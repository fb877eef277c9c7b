package oidc

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/handler/pkce"
	fstorage "github.com/ory/fosite/storage"

	"github.com/onecommons/commonsid/store"
)

// fositeStore adapts Store to fosite's storage interfaces.
type fositeStore struct {
	st  Store
	now func() time.Time
	// refreshClaims recomputes the ID-token claims of a stored grant from
	// the person's current consent and settings, so that a change applies
	// to the next ID token, from a code or a refresh alike.
	refreshClaims func(ctx context.Context, r fosite.Requester) error

	clients clientCache
	access  accessCache
	// resources are Config.Resources, which every client may ask for.
	resources []string
	// cacheIssued caches access-token grants as they are issued (see
	// Provider.RevocationsAnnounced).
	cacheIssued bool
}

// accessCache keeps decoded access-token grants for a second: introspection
// and UserInfo look the same token up again and again. It is emptied at
// once whenever access tokens may have been revoked (in this process, or
// announced by another through the store); the second bounds what a missed
// announcement could leave.
type accessCache = ttlCache[string, *fosite.Request]

const (
	accessTTL      = time.Second
	accessCacheMax = 4096 // per generation of accessTTL
)

// clientCache keeps clients for a few seconds: every token, introspection
// and authorization request looks its client up. Changes made through this
// process invalidate at once; other replicas see them within clientTTL.
type clientCache struct {
	m sync.Map // client_id → cachedClient
}

type cachedClient struct {
	c  *Client
	at time.Time
}

const clientTTL = 5 * time.Second

func (cc *clientCache) get(id string, now time.Time) (*Client, bool) {
	v, ok := cc.m.Load(id)
	if !ok {
		return nil, false
	}
	e := v.(cachedClient)
	if now.Sub(e.at) > clientTTL {
		cc.m.Delete(id)
		return nil, false
	}
	return e.c, true
}

func (cc *clientCache) put(c *Client, now time.Time) { cc.m.Store(c.ClientID, cachedClient{c, now}) }

func (cc *clientCache) forget(id string) { cc.m.Delete(id) }

var (
	_ fosite.Storage                     = (*fositeStore)(nil)
	_ oauth2.CoreStorage                 = (*fositeStore)(nil)
	_ oauth2.TokenRevocationStorage      = (*fositeStore)(nil)
	_ openid.OpenIDConnectRequestStorage = (*fositeStore)(nil)
	_ pkce.PKCERequestStorage            = (*fositeStore)(nil)
	_ fstorage.Transactional             = (*fositeStore)(nil)
)

// sigHash is how a token signature is stored.
func sigHash(sig string) string {
	sum := sha256.Sum256([]byte(sig))
	return hex.EncodeToString(sum[:])
}

// storedRequest is the serialized form of a fosite request.
type storedRequest struct {
	ID              string          `json:"id"`
	RequestedAt     time.Time       `json:"requested_at"`
	ClientID        string          `json:"client_id"`
	Scopes          []string        `json:"scopes"`
	GrantedScopes   []string        `json:"granted_scopes"`
	Audience        []string        `json:"audience,omitempty"`
	GrantedAudience []string        `json:"granted_audience,omitempty"`
	Form            string          `json:"form"`
	Session         json.RawMessage `json:"session"`
}

func (s *fositeStore) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	now := time.Now()
	if c, ok := s.clients.get(id, now); ok {
		return authViewOf(ctx, c), nil
	}
	sc, err := s.st.GetClient(ctx, id)
	if err != nil {
		// Not found is an unknown client; any other failure is not an
		// answer about the client and must not read as invalid_client.
		return nil, storeErr(err)
	}
	c, err := clientFromStored(sc)
	if err != nil {
		return nil, err
	}
	c.cloudResources = s.resources
	s.clients.put(c, now)
	return authViewOf(ctx, c), nil
}

func (s *fositeStore) ClientAssertionJWTValid(context.Context, string) error {
	// The check and the record happen together in SetClientAssertionJWT.
	return nil
}

// MaxClientAssertionLifetime bounds how far ahead a client assertion's exp
// may lie (RFC 7523 §3 leaves it to the server). Its jti is remembered
// until then, so an unbounded exp would keep a row for ever; an hour
// covers the libraries that sign assertions for that long.
const MaxClientAssertionLifetime = time.Hour

func (s *fositeStore) SetClientAssertionJWT(ctx context.Context, jti string, exp time.Time) error {
	if exp.After(s.now().Add(MaxClientAssertionLifetime)) {
		return fosite.ErrInvalidClient.WithHint("The client assertion expires more than an hour from now; sign it for a shorter time.")
	}
	err := s.st.UseClientAssertionJTI(ctx, sigHash(jti), exp, s.now())
	if errors.Is(err, store.ErrAlreadyExists) {
		return fosite.ErrJTIKnown.WithHint("Claim 'jti' from 'client_assertion' MUST only be used once.")
	}
	return storeErr(err)
}

func (s *fositeStore) create(ctx context.Context, kind, sig, accessSig string, r fosite.Requester, tokenType fosite.TokenType) error {
	sess, err := json.Marshal(r.GetSession())
	if err != nil {
		return fmt.Errorf("serialize session: %w", err)
	}
	sr := storedRequest{
		ID: r.GetID(), RequestedAt: r.GetRequestedAt(), ClientID: r.GetClient().GetID(),
		Scopes: r.GetRequestedScopes(), GrantedScopes: r.GetGrantedScopes(),
		Audience: r.GetRequestedAudience(), GrantedAudience: r.GetGrantedAudience(),
		Form: r.GetRequestForm().Encode(), Session: sess,
	}
	raw, err := json.Marshal(sr)
	if err != nil {
		return err
	}
	subject := ""
	expires := s.now().Add(24 * time.Hour)
	if ss, ok := r.GetSession().(*Session); ok {
		subject = ss.AccountDID
		if e := ss.GetExpiresAt(tokenType); !e.IsZero() {
			expires = e
		}
	}
	if accessSig != "" {
		accessSig = sigHash(accessSig)
	}
	var after func()
	if kind == KindAccess && s.cacheIssued {
		// A revocation announced between now and the commit (the grant
		// revoked by a concurrent reuse) keeps the new token out.
		epoch := s.access.since()
		after = func() { s.cacheIssuedGrant(epoch, sig, r, sr) }
	}
	return storeErr(s.store(ctx, &OAuthRequest{
		Kind: kind, SignatureHash: sigHash(sig), RequestID: r.GetID(), ClientID: r.GetClient().GetID(),
		Subject: subject, Active: true, RequestedAt: r.GetRequestedAt(), ExpiresAt: expires,
		AccessSignatureHash: accessSig, Request: raw,
	}, after))
}

// cacheIssuedGrant puts the grant of a person's new access token (soon
// presented to UserInfo) in the cache as GetAccessTokenSession would read
// it back from the store: the sanitized request, with a copy of its session
// as it is now (what follows in the token request, such as the ID token's
// at_hash, is not part of it). Should the surrounding transaction roll
// back, the token was never handed out and the entry is never asked for.
func (s *fositeStore) cacheIssuedGrant(epoch uint64, sig string, r fosite.Requester, sr storedRequest) {
	sess, ok := r.GetSession().(*Session)
	if !ok || sess.AccountDID == "" {
		return // a client's own token: cached once read, if ever
	}
	form, _ := url.ParseQuery(sr.Form)
	now := time.Now()
	s.access.putSince(epoch, sig, &fosite.Request{
		ID: sr.ID, RequestedAt: sr.RequestedAt, Client: r.GetClient(),
		RequestedScope: slices.Clone(sr.Scopes), GrantedScope: slices.Clone(sr.GrantedScopes),
		RequestedAudience: slices.Clone(sr.Audience), GrantedAudience: slices.Clone(sr.GrantedAudience),
		Form: form, Session: sess.copy(),
	}, now, now)
}

// codeRows remembers, for one token request, the authorization code's row:
// fosite's code, PKCE and OpenID Connect handlers each read it (four reads
// of one row per exchange). Only the request's own invalidation changes it
// meanwhile; a concurrent exchange of the same code is still stopped by the
// store's conditional deactivation.
type codeRows struct {
	mu      sync.Mutex
	rows    map[string]*OAuthRequest
	decoded map[string]*storedRequest
}

type codeRowsKey struct{}

// withCodeRows gives ctx a memo of authorization-code rows.
func withCodeRows(ctx context.Context) context.Context {
	return context.WithValue(ctx, codeRowsKey{}, &codeRows{rows: map[string]*OAuthRequest{}, decoded: map[string]*storedRequest{}})
}

func codeRowsOf(ctx context.Context) *codeRows {
	m, _ := ctx.Value(codeRowsKey{}).(*codeRows)
	return m
}

func (s *fositeStore) row(ctx context.Context, kind, hash string) (*OAuthRequest, error) {
	ctx = readCtx(ctx)
	m := codeRowsOf(ctx)
	if kind != KindCode || m == nil {
		return s.st.GetOAuthRequest(ctx, kind, hash)
	}
	m.mu.Lock()
	row, ok := m.rows[hash]
	m.mu.Unlock()
	if ok {
		return row, nil
	}
	row, err := s.st.GetOAuthRequest(ctx, kind, hash)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.rows[hash] = row
	m.mu.Unlock()
	return row, nil
}

// get loads an artefact into session; it returns the request even when the
// artefact is inactive, together with inactiveErr.
func (s *fositeStore) get(ctx context.Context, kind, sig string, session fosite.Session, inactiveErr error) (fosite.Requester, error) {
	hash := sigHash(sig)
	row, err := s.row(ctx, kind, hash)
	if err != nil {
		err = storeErr(err)
		noteFailure(ctx, err)
		return nil, err
	}
	sr, err := s.decode(ctx, kind, hash, row)
	if err != nil {
		return nil, err
	}
	if session == nil {
		session = newSession()
	}
	// Decoded into the caller's session, which may be the token request's
	// own: what the JSON holds replaces or joins what is there.
	if err := json.Unmarshal(sr.Session, session); err != nil {
		return nil, fmt.Errorf("stored %s session: %w", kind, err)
	}
	client, err := s.GetClient(ctx, sr.ClientID)
	if err != nil {
		noteFailure(ctx, err)
		return nil, err
	}
	form, _ := url.ParseQuery(sr.Form)
	req := &fosite.Request{
		ID: sr.ID, RequestedAt: sr.RequestedAt, Client: client,
		RequestedScope: slices.Clone(sr.Scopes), GrantedScope: slices.Clone(sr.GrantedScopes),
		RequestedAudience: slices.Clone(sr.Audience), GrantedAudience: slices.Clone(sr.GrantedAudience),
		Form: form, Session: session,
	}
	if !row.Active {
		return req, inactiveErr
	}
	return req, nil
}

// decode parses a stored request. An authorization code's is parsed once
// per token request (the code, PKCE and OpenID Connect handlers each load
// it); the result is not changed by its users.
func (s *fositeStore) decode(ctx context.Context, kind, hash string, row *OAuthRequest) (*storedRequest, error) {
	m := codeRowsOf(ctx)
	if kind == KindCode && m != nil {
		m.mu.Lock()
		sr, ok := m.decoded[hash]
		m.mu.Unlock()
		if ok {
			return sr, nil
		}
	}
	sr := &storedRequest{}
	if err := json.Unmarshal(row.Request, sr); err != nil {
		return nil, fmt.Errorf("stored %s: %w", kind, err)
	}
	if kind == KindCode && m != nil {
		m.mu.Lock()
		m.decoded[hash] = sr
		m.mu.Unlock()
	}
	return sr, nil
}

// CreateAuthorizeCodeSession stores a code with the audience it grants
// (audience.go): what the authorization request asked for, else the client.
func (s *fositeStore) CreateAuthorizeCodeSession(ctx context.Context, code string, r fosite.Requester) error {
	return s.create(ctx, KindCode, code, "", withGrantAudience{r, grantedAudience(r)}, fosite.AuthorizeCode)
}

func (s *fositeStore) GetAuthorizeCodeSession(ctx context.Context, code string, session fosite.Session) (fosite.Requester, error) {
	return s.get(ctx, KindCode, code, session, fosite.ErrInvalidatedAuthorizeCode)
}

func (s *fositeStore) InvalidateAuthorizeCodeSession(ctx context.Context, code string) error {
	hash := sigHash(code)
	if err := s.deactivate(ctx, KindCode, hash); err != nil {
		return storeErr(err)
	}
	if m := codeRowsOf(ctx); m != nil {
		m.mu.Lock()
		if row, ok := m.rows[hash]; ok {
			used := *row
			used.Active = false
			m.rows[hash] = &used
		}
		m.mu.Unlock()
	}
	return nil
}

func (s *fositeStore) CreateAccessTokenSession(ctx context.Context, sig string, r fosite.Requester) error {
	return s.create(ctx, KindAccess, sig, "", r, fosite.AccessToken)
}

func (s *fositeStore) GetAccessTokenSession(ctx context.Context, sig string, session fosite.Session) (fosite.Requester, error) {
	now := time.Now()
	if r, _, ok := s.access.get(sig, now); ok {
		// A copy: the caller's session gets the grant's, and nothing the
		// caller changes reaches the cache.
		cp := *r
		cp.RequestedScope, cp.GrantedScope = slices.Clone(r.RequestedScope), slices.Clone(r.GrantedScope)
		cp.RequestedAudience, cp.GrantedAudience = slices.Clone(r.RequestedAudience), slices.Clone(r.GrantedAudience)
		sess := r.Session.(*Session).copy()
		if dst, ok := session.(*Session); ok {
			*dst = *sess
			cp.Session = dst
		} else {
			cp.Session = sess
		}
		return &cp, nil
	}
	epoch := s.access.since()
	req, err := s.get(ctx, KindAccess, sig, session, fosite.ErrInactiveToken)
	if err == nil {
		if fr, ok := req.(*fosite.Request); ok {
			if sess, ok := fr.Session.(*Session); ok {
				cp := *fr
				cp.Session = sess.copy()
				// Not if a revocation was announced during the read.
				s.access.putSince(epoch, sig, &cp, now, now)
			}
		}
	}
	return req, err
}

func (s *fositeStore) DeleteAccessTokenSession(ctx context.Context, sig string) error {
	ctx, err := s.txCtx(ctx)
	if err != nil {
		return storeErr(err)
	}
	return storeErr(s.st.DeleteOAuthRequest(ctx, KindAccess, sigHash(sig)))
}

// CreateRefreshTokenSession stores a refresh token with the grant's whole
// audience, even when the access token issued with it was narrowed.
func (s *fositeStore) CreateRefreshTokenSession(ctx context.Context, sig, accessSig string, r fosite.Requester) error {
	if aud, ok := ctx.Value(grantAudienceKey{}).(fosite.Arguments); ok {
		r = withGrantAudience{r, aud}
	}
	return s.create(ctx, KindRefresh, sig, accessSig, r, fosite.RefreshToken)
}

func (s *fositeStore) GetRefreshTokenSession(ctx context.Context, sig string, session fosite.Session) (fosite.Requester, error) {
	req, err := s.get(ctx, KindRefresh, sig, session, fosite.ErrInactiveToken)
	if err == nil && s.refreshClaims != nil {
		if rerr := s.refreshClaims(ctx, req); rerr != nil {
			return nil, rerr
		}
	}
	return req, err
}

func (s *fositeStore) DeleteRefreshTokenSession(ctx context.Context, sig string) error {
	ctx, err := s.txCtx(ctx)
	if err != nil {
		return storeErr(err)
	}
	return storeErr(s.st.DeleteOAuthRequest(ctx, KindRefresh, sigHash(sig)))
}

// RotateRefreshToken retires the used refresh token, kept inactive so that
// a reuse is recognised (and then revokes the whole grant, access tokens
// included). Access tokens issued before stay valid until they expire, as
// with most providers; revoking them is what revocation and reuse do.
func (s *fositeStore) RotateRefreshToken(ctx context.Context, requestID, sig string) error {
	return storeErr(s.deactivate(ctx, KindRefresh, sigHash(sig)))
}

// RevokeRefreshToken revokes every refresh token of a grant; at the
// revocation endpoint, the whole grant (see revocation).
func (s *fositeStore) RevokeRefreshToken(ctx context.Context, requestID string) error {
	if rv := revocationOf(ctx); rv != nil {
		return s.revokeGrantOnce(ctx, rv, requestID)
	}
	ctx, err := s.txCtx(ctx)
	if err != nil {
		return storeErr(err)
	}
	return storeErr(s.st.DeleteOAuthRequestsByRequestID(ctx, KindRefresh, requestID))
}

// RevokeAccessToken revokes every access token of a grant; at the
// revocation endpoint, the whole grant (see revocation).
func (s *fositeStore) RevokeAccessToken(ctx context.Context, requestID string) error {
	if rv := revocationOf(ctx); rv != nil {
		return s.revokeGrantOnce(ctx, rv, requestID)
	}
	ctx, err := s.txCtx(ctx)
	if err != nil {
		return storeErr(err)
	}
	return storeErr(s.st.DeleteOAuthRequestsByRequestID(ctx, KindAccess, requestID))
}

// revocation is the state of one request to the revocation endpoint (RFC
// 7009). fosite revokes a grant's refresh tokens and then its access tokens
// as two writes, and answers 200 if the second fails after the first
// succeeded; a retry then finds the refresh token gone and answers 200
// again while the access tokens live on. Here the first of the two calls
// revokes the whole grant in one transaction (Store.RevokeGrant) and the
// second reports its outcome: the grant is revoked entirely or not at all,
// and a failure is waited for once, not twice. It also keeps the storage
// failure fosite's revocation handler turns into a bare
// temporarily_unavailable, for the log.
type revocation struct {
	requestID string
	done      bool
	err       error
	failure   error // the last storage failure seen during the request
}

type revocationKey struct{}

func withRevocation(ctx context.Context) (context.Context, *revocation) {
	rv := &revocation{}
	return context.WithValue(ctx, revocationKey{}, rv), rv
}

func revocationOf(ctx context.Context) *revocation {
	rv, _ := ctx.Value(revocationKey{}).(*revocation)
	return rv
}

// noteFailure remembers a storage failure for the revocation endpoint's log.
func noteFailure(ctx context.Context, err error) {
	if rv := revocationOf(ctx); rv != nil {
		if cause, ok := unavailableCause(err); ok {
			rv.failure = cause
		}
	}
}

func (s *fositeStore) revokeGrantOnce(ctx context.Context, rv *revocation, requestID string) error {
	if rv.done && rv.requestID == requestID {
		return rv.err
	}
	rv.requestID, rv.done = requestID, true
	rv.err = storeErr(s.st.RevokeGrant(ctx, requestID))
	if errors.Is(rv.err, fosite.ErrNotFound) {
		rv.err = nil // nothing left to revoke is a revoked grant
	}
	noteFailure(ctx, rv.err)
	return rv.err
}

// The OpenID Connect and PKCE data of an authorization are the code's own
// request (the code row keeps the parameters they need, see
// sanitationAllowList): they are read from the code row rather than stored
// three times, which saves two writes per authorization and four statements
// per code exchange.

// codeSignature is the signature part of an HMAC-opaque code.
func codeSignature(code string) string {
	if i := strings.LastIndexByte(code, '.'); i >= 0 {
		return code[i+1:]
	}
	return code
}

func (s *fositeStore) CreateOpenIDConnectSession(context.Context, string, fosite.Requester) error {
	return nil
}

// GetOpenIDConnectSession reads the code's request, also once the code was
// spent in this same exchange (the token handler marks it used first).
func (s *fositeStore) GetOpenIDConnectSession(ctx context.Context, code string, r fosite.Requester) (fosite.Requester, error) {
	req, err := s.get(ctx, KindCode, codeSignature(code), r.GetSession(), nil)
	if errors.Is(err, fosite.ErrNotFound) {
		return nil, openid.ErrNoSessionFound
	}
	if err == nil && s.refreshClaims != nil {
		if rerr := s.refreshClaims(ctx, req); rerr != nil {
			return nil, rerr
		}
	}
	return req, err
}

func (s *fositeStore) DeleteOpenIDConnectSession(context.Context, string) error { return nil }

func (s *fositeStore) CreatePKCERequestSession(context.Context, string, fosite.Requester) error {
	return nil
}

func (s *fositeStore) GetPKCERequestSession(ctx context.Context, sig string, session fosite.Session) (fosite.Requester, error) {
	return s.get(ctx, KindCode, sig, session, nil)
}

func (s *fositeStore) DeletePKCERequestSession(context.Context, string) error { return nil }
