package federation

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/onecommons/commonsid/did"
	"github.com/onecommons/commonsid/keys"
	"github.com/onecommons/commonsid/store"
)

// maxDocument bounds what is read from a peer's discovery, JWKS and DID
// documents.
const maxDocument = 1 << 20

// NormalizeIssuer checks a peer URL: absolute http(s), no query, fragment or
// user info; https unless the host is a loopback address. The trailing
// slash is dropped.
func NormalizeIssuer(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || !u.IsAbs() || u.Host == "" {
		return "", fmt.Errorf("%q is not an absolute URL", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("%q must not carry a query, fragment or user info", raw)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !loopback(u.Hostname()) {
			return "", fmt.Errorf("%q: peers are reached over https (plain http only on loopback hosts)", raw)
		}
	default:
		return "", fmt.Errorf("%q: scheme must be https", raw)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

func loopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1" || strings.HasPrefix(host, "127.")
}

// getJSON fetches a JSON document of at most maxDocument bytes.
func (f *Federation) getJSON(ctx context.Context, u string, into any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := f.client().Do(req)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch %s: %s", u, resp.Status)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxDocument+1))
	if err != nil {
		return fmt.Errorf("fetch %s: %w", u, err)
	}
	if len(raw) > maxDocument {
		return fmt.Errorf("fetch %s: document larger than %d bytes", u, maxDocument)
	}
	if err := json.Unmarshal(raw, into); err != nil {
		return fmt.Errorf("fetch %s: not JSON: %w", u, err)
	}
	return nil
}

// Discover fetches a cloud's discovery document, JWKS and did:web document
// and checks that they agree: the issuer is the URL asked for, the DID is
// did:web of its host, and every JWKS key is a verification method of the
// DID. It returns the peer, not yet stored.
func (f *Federation) Discover(ctx context.Context, issuer string) (*Peer, error) {
	issuer, err := NormalizeIssuer(issuer)
	if err != nil {
		return nil, err
	}
	if issuer == f.Issuer {
		return nil, errors.New("that is this cloud's own issuer")
	}
	var meta map[string]any
	if err := f.getJSON(ctx, issuer+"/.well-known/openid-configuration", &meta); err != nil {
		return nil, err
	}
	if got, _ := meta["issuer"].(string); got != issuer {
		return nil, fmt.Errorf("%s: its discovery document names issuer %q", issuer, got)
	}
	jwksURI, _ := meta["jwks_uri"].(string)
	if jwksURI == "" {
		return nil, fmt.Errorf("%s: its discovery document has no jwks_uri", issuer)
	}
	if _, ok := meta["federation_events_endpoint"].(string); !ok {
		return nil, fmt.Errorf("%s: not a Commons ID cloud with federation (no federation_events_endpoint in its discovery document)", issuer)
	}
	set, _, err := f.fetchKeys(ctx, issuer, jwksURI)
	if err != nil {
		return nil, err
	}
	cloudDID, err := did.WebDID(issuer)
	if err != nil {
		return nil, err
	}
	raw, _ := json.Marshal(meta)
	now := f.now()
	return &Peer{Issuer: issuer, DID: cloudDID, JWKSURI: jwksURI, JWKS: *set, Metadata: raw, AddedAt: now, KeysAt: now}, nil
}

// fetchKeys loads a peer's JWKS and checks it against its did:web
// document (every key in it, with the same key material); it returns the
// document too.
func (f *Federation) fetchKeys(ctx context.Context, issuer, jwksURI string) (*jose.JSONWebKeySet, *did.Document, error) {
	var set jose.JSONWebKeySet
	if err := f.getJSON(ctx, jwksURI, &set); err != nil {
		return nil, nil, err
	}
	if len(set.Keys) == 0 {
		return nil, nil, fmt.Errorf("%s: its JWKS holds no keys", issuer)
	}
	if len(set.Keys) > maxKeySetKeys {
		return nil, nil, fmt.Errorf("%s: its JWKS holds %d keys, more than %d", issuer, len(set.Keys), maxKeySetKeys)
	}
	doc, err := f.didDocument(ctx, issuer)
	if err != nil {
		return nil, nil, err
	}
	if err := checkInDocument(issuer, doc, &set); err != nil {
		return nil, nil, err
	}
	return &set, doc, nil
}

// AddPeer discovers a cloud and records it as a peer (or refreshes the
// record of an existing one, keeping its cursor). endpoint, when set, is
// the base URL its feed is fetched from.
func (f *Federation) AddPeer(ctx context.Context, issuer, endpoint string) (*Peer, error) {
	return f.AddPeerWithKeys(ctx, issuer, endpoint, nil)
}

// AddPeerWithKeys is AddPeer pinning keys (when not nil) instead of the
// JWKS the cloud serves: the keys of a verified OpenID Federation trust
// chain (package oidfed).
func (f *Federation) AddPeerWithKeys(ctx context.Context, issuer, endpoint string, keys *jose.JSONWebKeySet) (*Peer, error) {
	p, err := f.Discover(ctx, issuer)
	if err != nil {
		return nil, err
	}
	if keys != nil {
		if len(keys.Keys) == 0 || len(keys.Keys) > maxKeySetKeys {
			return nil, fmt.Errorf("%s: a key set of %d keys cannot be pinned", p.Issuer, len(keys.Keys))
		}
		p.JWKS = *keys
	}
	if endpoint != "" {
		if p.Endpoint, err = NormalizeIssuer(endpoint); err != nil {
			return nil, fmt.Errorf("endpoint: %w", err)
		}
	}
	if old, err := f.Store.GetPeer(ctx, p.Issuer); err == nil {
		p.AddedAt, p.Cursor = old.AddedAt, old.Cursor
	}
	if err := f.Store.PutPeer(ctx, p); err != nil {
		return nil, err
	}
	// What it publishes now is pinned: no key of it is pending any more.
	if err := f.Store.ClearPendingKeys(ctx, p.Issuer); err != nil {
		return nil, err
	}
	return p, nil
}

// peerKey returns the peer's pinned key kid. An unknown kid is looked
// up again in the store (an operator may have trusted new keys), then
// (at most every 10 seconds per peer) in the key set the peer vouches for
// with a pinned key (keytrust.go): keys never change without a pinned
// key's signature or an operator's `peer trust`.
func (f *Federation) peerKey(ctx context.Context, p *Peer, kid string) (*jose.JSONWebKey, error) {
	if ks := p.JWKS.Key(kid); len(ks) > 0 {
		return &ks[0], nil
	}
	if cur, err := f.Store.GetPeer(ctx, p.Issuer); err == nil {
		p.JWKS, p.KeysAt = cur.JWKS, cur.KeysAt
		if ks := p.JWKS.Key(kid); len(ks) > 0 {
			return &ks[0], nil
		}
	}
	if !f.throttleKeys(p.Issuer) {
		return nil, fmt.Errorf("key %q is not a pinned key of %s; if %s rotated its keys, confirm the new key with its operator, then run: commonsid peer trust %s",
			shorten(kid), p.Issuer, p.Issuer, p.Issuer)
	}
	if err := f.refreshKeys(ctx, p, kid); err != nil {
		return nil, err
	}
	ks := p.JWKS.Key(kid)
	return &ks[0], nil
}

// signingAlgs are what peers sign with.
var signingAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA, jose.RS256}

// cloudSigner signs with this cloud's active key.
func (f *Federation) cloudSigner(ctx context.Context, typ string) (jose.Signer, error) {
	active := f.Keys.Active
	if f.ActiveKey != nil {
		active = f.ActiveKey
	}
	k, err := active(ctx, keys.DefaultAlg)
	if err != nil {
		return nil, err
	}
	opts := (&jose.SignerOptions{}).WithType(jose.ContentType(typ)).WithHeader("kid", k.KID)
	return jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(k.Alg), Key: k.Key}, opts)
}

// peerTokenLifetime is how long a request token of a peer is good for.
const peerTokenLifetime = 2 * time.Minute

// PeerToken makes the bearer token this cloud presents to a peer: a JWT
// signed by the cloud key, issuer and subject this cloud, audience the peer.
func (f *Federation) PeerToken(ctx context.Context, audience string) (string, error) {
	s, err := f.cloudSigner(ctx, "JWT")
	if err != nil {
		return "", err
	}
	jti := make([]byte, 16)
	rand.Read(jti)
	now := f.now()
	return jwt.Signed(s).Claims(jwt.Claims{
		Issuer: f.Issuer, Subject: f.Issuer, Audience: jwt.Audience{audience},
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now.Add(-30 * time.Second)),
		Expiry: jwt.NewNumericDate(now.Add(peerTokenLifetime)), ID: base64.RawURLEncoding.EncodeToString(jti),
	}).Serialize()
}

// ErrUnauthorized reports a request without a valid peer token.
var ErrUnauthorized = errors.New("a peer token is required")

// authenticatePeer checks a request's peer token and returns the peer.
func (f *Federation) authenticatePeer(r *http.Request) (*Peer, error) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || raw == "" {
		return nil, ErrUnauthorized
	}
	tok, err := jwt.ParseSigned(raw, signingAlgs)
	if err != nil || len(tok.Headers) != 1 {
		return nil, fmt.Errorf("%w: malformed token", ErrUnauthorized)
	}
	var unverified jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return nil, fmt.Errorf("%w: malformed token", ErrUnauthorized)
	}
	p, err := f.Store.GetPeer(r.Context(), unverified.Issuer)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %q is %v", ErrUnauthorized, unverified.Issuer, ErrNotPeer)
	}
	if err != nil {
		return nil, err
	}
	key, err := f.peerKey(r.Context(), p, tok.Headers[0].KeyID)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnauthorized, err)
	}
	var c jwt.Claims
	if err := tok.Claims(key.Key, &c); err != nil {
		return nil, fmt.Errorf("%w: signature does not verify", ErrUnauthorized)
	}
	if err := c.ValidateWithLeeway(jwt.Expected{Issuer: p.Issuer, Subject: p.Issuer, AnyAudience: jwt.Audience{f.Issuer}, Time: f.now()}, 30*time.Second); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnauthorized, err)
	}
	if c.Expiry == nil || c.Expiry.Time().Sub(f.now()) > peerTokenLifetime+time.Minute {
		return nil, fmt.Errorf("%w: token lives too long", ErrUnauthorized)
	}
	return p, nil
}
