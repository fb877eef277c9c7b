package federation

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/onecommons/commonsid/store"
)

// Member is one issuer of the commons whose tokens services here honor.
// A peer's JWKS is the key set this cloud has pinned for it (changed only
// by a vouched key-set update or peer trust, keytrust.go): a resource
// server verifies the peer's tokens with those keys, never with whatever
// the peer's jwks_uri serves at the moment. This cloud's own entry has
// none: its jwks_uri is the service's own cloud.
type Member struct {
	Issuer  string              `json:"issuer"`
	DID     string              `json:"did"`
	JWKSURI string              `json:"jwks_uri"`
	JWKS    *jose.JSONWebKeySet `json:"jwks,omitempty"`
	Self    bool                `json:"self,omitempty"`
}

// Members lists this cloud and its peers.
func (f *Federation) Members(ctx context.Context) ([]Member, error) {
	peers, err := f.Store.ListPeers(ctx)
	if err != nil {
		return nil, err
	}
	out := []Member{{Issuer: f.Issuer, DID: f.DID, JWKSURI: f.Issuer + "/jwks.json", Self: true}}
	for _, p := range peers {
		jwks := p.JWKS
		out = append(out, Member{Issuer: p.Issuer, DID: p.DID, JWKSURI: p.JWKSURI, JWKS: &jwks})
	}
	return out, nil
}

func (f *Federation) serveMembers(w http.ResponseWriter, r *http.Request) {
	ms, err := f.Members(r.Context())
	if err != nil {
		f.log().ErrorContext(r.Context(), "members", "err", err)
		writeError(w, http.StatusInternalServerError, "server_error", "the member list could not be read")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=60")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	writeJSONBody(w, map[string]any{"issuer": f.Issuer, "members": ms})
}

// TokenHash is how a revoked access token is named in token.revoked
// events: hex SHA-256 of its JWT signature segment.
func TokenHash(token string) string {
	sig := token[strings.LastIndexByte(token, '.')+1:]
	sum := sha256.Sum256([]byte(sig))
	return hex.EncodeToString(sum[:])
}

// PeerToken is the result of checking a peer's access token.
type PeerTokenInfo struct {
	Active bool
	Claims map[string]any
}

// ErrNotPeerToken reports a token that no peer issued (it may be this
// cloud's own).
var ErrNotPeerToken = errors.New("not a peer's token")

// IntrospectPeerToken checks an RFC 9068 access token issued by a peer:
// signature by the peer's key (rotations picked up), lifetime, and the
// revocations replicated from the peer. It returns ErrNotPeerToken for a
// token whose issuer is not a peer.
func (f *Federation) IntrospectPeerToken(ctx context.Context, token string) (*PeerTokenInfo, error) {
	tok, err := jwt.ParseSigned(token, signingAlgs)
	if err != nil || len(tok.Headers) != 1 {
		return nil, ErrNotPeerToken
	}
	var claims map[string]any
	if err := tok.UnsafeClaimsWithoutVerification(&claims); err != nil {
		return nil, ErrNotPeerToken
	}
	iss, _ := claims["iss"].(string)
	if iss == "" || iss == f.Issuer {
		return nil, ErrNotPeerToken
	}
	p, err := f.Store.GetPeer(ctx, iss)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNotPeerToken
	}
	if err != nil {
		return nil, err
	}
	inactive := &PeerTokenInfo{}
	if typ, _ := tok.Headers[0].ExtraHeaders["typ"].(string); !strings.EqualFold(typ, "at+jwt") && !strings.EqualFold(typ, "application/at+jwt") {
		return inactive, nil
	}
	key, err := f.peerKey(ctx, p, tok.Headers[0].KeyID)
	if err != nil {
		return inactive, nil
	}
	var std jwt.Claims
	if err := tok.Claims(key.Key, &std, &claims); err != nil {
		return inactive, nil
	}
	if std.Expiry == nil || std.ValidateWithLeeway(jwt.Expected{Issuer: p.Issuer, Time: f.now()}, 30*time.Second) != nil {
		return inactive, nil
	}
	revoked, err := f.Store.TokenRevoked(ctx, p.Issuer, TokenHash(token))
	if err != nil {
		return nil, err
	}
	if revoked {
		return inactive, nil
	}
	claims["active"] = true
	claims["token_type"] = "access_token"
	return &PeerTokenInfo{Active: true, Claims: claims}, nil
}

// Mount adds the federation routes.
func (f *Federation) Mount(r chi.Router) {
	r.Get("/federation/v1/events", f.serveEvents)
	r.Get("/federation/v1/stream", f.serveStream)
	r.Get("/federation/v1/members", f.serveMembers)
	r.Get(KeysPath, f.serveKeys)
	r.Get("/federation/v1/broker", f.brokerStart)
	r.Get("/federation/v1/callback", f.brokerCallback)
	r.Post(SubjectsPath, f.serveSubjects)
	r.Post(WitnessPath, f.serveWitness)
	f.mountDIDs(r)
}
