package oidc

// DPoP: sender-constrained tokens (RFC 9449).
//
// A client proves possession of a key by sending, with each request, a
// DPoP header holding a proof: a compact JWS with
//
//   - typ "dpop+jwt", alg one of DPoPSigningAlgs (never none or an HMAC),
//     and the public key in a jwk header (no private members);
//   - claims jti (unique), htm (the HTTP method), htu (the endpoint's URL,
//     without query or fragment, compared after normalising scheme, host and
//     default port), iat (within dpopProofWindow of the server's clock),
//     nonce (a server nonce, see below) and, at UserInfo, ath (base64url
//     SHA-256 of the access token).
//
// Replay: the pair (key thumbprint, jti) is accepted once; it is recorded
// in the store (DPoPStore, shared by every replica) until the proof's iat
// has left the window, after which the proof is refused for its age anyway.
// Rows past that time are purged with the other expiring rows.
//
// Nonces (§8, §9): a proof is accepted only with a nonce this server issued
// within the last dpopNonceLifetime, at the token endpoint and at UserInfo
// alike. A nonce is the time it was made and an HMAC of it under a key
// derived from GlobalSecret, so every replica issues and accepts the same
// nonces without storing them. Every answer to a request that carried a
// proof has a fresh DPoP-Nonce header; a proof without a valid nonce is
// answered with use_dpop_nonce (400 at the token endpoint, 401 with
// WWW-Authenticate at UserInfo), which clients retry once with the nonce.
//
// Token endpoint (§5): with a valid proof, the access token is bound to the
// key (cnf.jkt, the RFC 7638 thumbprint, in the JWT; token_type DPoP in the
// answer). A grant issued with a proof stays bound: refreshing it needs a
// proof, and for a public client, whose refresh token is bound to the key
// too, a proof of the same key (invalid_grant otherwise). A client
// registered with dpop_bound_access_tokens must always send a proof.
// Introspection reports cnf.jkt and token_type DPoP.
//
// UserInfo (§7): a bound token is accepted only with the DPoP scheme
// (Authorization: DPoP <token>) and a proof of its key carrying its ath; as
// a Bearer token, or in the form body, it is refused with invalid_token.
// An unbound token sent with the DPoP scheme is refused as well.

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/ory/fosite"

	"github.com/onecommons/commonsid/internal/httpx"
	"github.com/onecommons/commonsid/store"
)

// DPoPSigningAlgs are the proof algorithms accepted, as discovery's
// dpop_signing_alg_values_supported lists them.
var DPoPSigningAlgs = []string{"ES256", "EdDSA", "RS256", "PS256"}

var dpopJOSEAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA, jose.RS256, jose.PS256}

const (
	dpopHeader      = "DPoP"
	dpopNonceHeader = "DPoP-Nonce"
	// dpopProofWindow is how far a proof's iat may be from the server's
	// clock, either way.
	dpopProofWindow = 60 * time.Second
	// dpopNonceLifetime is how long a server nonce is accepted.
	dpopNonceLifetime = 5 * time.Minute
	// dpopNonceSkew is how far in the future a nonce's time may be: the
	// clocks of replicas differ a little.
	dpopNonceSkew = 5 * time.Second
	// dpopMaxProof bounds the DPoP header (an RSA-4096 key and the claims
	// take about 1.5 KiB).
	dpopMaxProof = 8 << 10
	// dpopMaxRSABits bounds the RSA keys accepted: verifying is cheap, but
	// not with any modulus.
	dpopMaxRSABits = 8192
)

// DPoP error codes (RFC 9449 §5, §7.1, §8, §12.2).
const (
	errInvalidDPoPProof = "invalid_dpop_proof"
	errUseDPoPNonce     = "use_dpop_nonce"
)

// DPoPStore records DPoP proof ids; the provider's Store implements it.
type DPoPStore interface {
	// UseDPoPJTI records a proof id until expiresAt; it returns
	// store.ErrAlreadyExists when the id is recorded and has not expired.
	UseDPoPJTI(ctx context.Context, jtiHash string, expiresAt, now time.Time) error
}

// dpopProof is a parsed proof whose signature verified against its own key.
type dpopProof struct {
	JKT   string // RFC 7638 SHA-256 thumbprint of the key, base64url
	JTI   string
	HTM   string
	HTU   string
	IAT   time.Time
	ATH   string
	Nonce string
}

// dpopClaims is the proof's payload as sent.
type dpopClaims struct {
	JTI   string     `json:"jti"`
	HTM   string     `json:"htm"`
	HTU   string     `json:"htu"`
	IAT   jsonNumber `json:"iat"`
	ATH   string     `json:"ath,omitempty"`
	Nonce string     `json:"nonce,omitempty"`
}

// dpopError is a refusal of a proof, with its OAuth error code.
type dpopError struct {
	code, desc string
}

func (e *dpopError) Error() string { return e.code + ": " + e.desc }

func badProof(format string, args ...any) *dpopError {
	return &dpopError{errInvalidDPoPProof, fmt.Sprintf(format, args...)}
}

// parseDPoPProof verifies a proof's form and signature, and the shape of
// its claims; checkDPoPProof then checks them against the request.
func parseDPoPProof(raw string) (*dpopProof, *dpopError) {
	if raw == "" {
		return nil, badProof("The DPoP header is empty.")
	}
	if len(raw) > dpopMaxProof {
		return nil, badProof("The DPoP proof is longer than %d bytes.", dpopMaxProof)
	}
	jws, err := jose.ParseSignedCompact(raw, dpopJOSEAlgs)
	if err != nil {
		return nil, badProof("The DPoP proof is not a JWS signed with one of %s and a public jwk header.", strings.Join(DPoPSigningAlgs, ", "))
	}
	if len(jws.Signatures) != 1 {
		return nil, badProof("The DPoP proof must have one signature.")
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); !strings.EqualFold(typ, "dpop+jwt") {
		return nil, badProof("The DPoP proof's typ header must be dpop+jwt.")
	}
	jwk := h.JSONWebKey
	if jwk == nil || !jwk.Valid() || !jwk.IsPublic() {
		return nil, badProof("The DPoP proof must carry its public key in the jwk header.")
	}
	if !dpopKeyFits(jose.SignatureAlgorithm(h.Algorithm), jwk.Key) {
		return nil, badProof("The DPoP proof's key does not fit its alg %q.", h.Algorithm)
	}
	payload, err := jws.Verify(jwk)
	if err != nil {
		return nil, badProof("The DPoP proof's signature does not verify with its jwk.")
	}
	var c dpopClaims
	if err := (httpx.StrictJSON{}).Decode(payload, &c); err != nil {
		return nil, badProof("The DPoP proof's claims are not a JSON object of the DPoP claims.")
	}
	switch {
	case c.JTI == "" || len(c.JTI) > 256:
		return nil, badProof("The DPoP proof needs a jti of at most 256 characters.")
	case c.HTM == "" || len(c.HTM) > 16:
		return nil, badProof("The DPoP proof needs an htm claim.")
	case c.HTU == "" || len(c.HTU) > 2048:
		return nil, badProof("The DPoP proof needs an htu claim.")
	case len(c.ATH) > 128 || len(c.Nonce) > 256:
		return nil, badProof("The DPoP proof's ath or nonce is too long.")
	}
	iat, ok := c.IAT.time()
	if !ok {
		return nil, badProof("The DPoP proof needs an iat claim, in seconds since 1970.")
	}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, badProof("The DPoP proof's key has no thumbprint.")
	}
	return &dpopProof{JKT: base64.RawURLEncoding.EncodeToString(tp), JTI: c.JTI, HTM: c.HTM, HTU: c.HTU,
		IAT: iat, ATH: c.ATH, Nonce: c.Nonce}, nil
}

// dpopKeyFits reports whether key is one alg signs with: P-256 for ES256,
// Ed25519 for EdDSA, RSA of 2048 to dpopMaxRSABits bits for RS256 and PS256.
func dpopKeyFits(alg jose.SignatureAlgorithm, key any) bool {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		return alg == jose.ES256 && k.Curve == elliptic.P256()
	case ed25519.PublicKey:
		return alg == jose.EdDSA && len(k) == ed25519.PublicKeySize
	case *rsa.PublicKey:
		n := k.N.BitLen()
		return (alg == jose.RS256 || alg == jose.PS256) && n >= 2048 && n <= dpopMaxRSABits
	}
	return false
}

// jsonNumber is iat as JSON has it: any number; fractions are allowed
// (RFC 7519 NumericDate).
type jsonNumber string

func (n *jsonNumber) UnmarshalJSON(b []byte) error {
	s := string(b)
	if _, err := strconv.ParseFloat(s, 64); err != nil {
		return errors.New("not a number")
	}
	*n = jsonNumber(s)
	return nil
}

func (n jsonNumber) time() (time.Time, bool) {
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1<<40 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), true
}

// checkDPoPProof checks a parsed proof against the request: method, URL,
// time, nonce and, when accessToken is not "", its hash.
func (p *Provider) checkDPoPProof(pr *dpopProof, method, endpoint, accessToken string, now time.Time) *dpopError {
	if pr.HTM != method {
		return badProof("The DPoP proof's htm is not the request's method %s.", method)
	}
	if !sameHTU(pr.HTU, endpoint) {
		return badProof("The DPoP proof's htu is not %s.", endpoint)
	}
	if d := now.Sub(pr.IAT); d > dpopProofWindow || d < -dpopProofWindow {
		return badProof("The DPoP proof's iat is more than %d seconds from the server's time.", int(dpopProofWindow/time.Second))
	}
	if accessToken != "" {
		sum := sha256.Sum256([]byte(accessToken))
		if pr.ATH != base64.RawURLEncoding.EncodeToString(sum[:]) {
			return badProof("The DPoP proof's ath is not the hash of the access token.")
		}
	} else if pr.ATH != "" {
		return badProof("The DPoP proof has an ath, but no access token goes with it.")
	}
	if !p.dpopNonceValid(pr.Nonce, now) {
		return &dpopError{errUseDPoPNonce, "Authorization server requires nonce in DPoP proof."}
	}
	return nil
}

// sameHTU compares an htu claim with an endpoint URL (RFC 9449 §4.3: no
// query or fragment; syntax-based normalisation of RFC 3986 §6.2.2 and
// scheme-based of §6.2.3).
func sameHTU(htu, endpoint string) bool {
	a, ok1 := normalHTU(htu)
	b, ok2 := normalHTU(endpoint)
	return ok1 && ok2 && a == b
}

func normalHTU(s string) (string, bool) {
	u, err := url.Parse(s)
	if err != nil || u.User != nil || u.Opaque != "" {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "https" && scheme != "http" {
		return "", false
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if host == "" {
		return "", false
	}
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	path := u.Path
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + path, true
}

// dpopNonceKey derives the nonce key from GlobalSecret.
func (p *Provider) dpopNonceKey() []byte {
	m := hmac.New(sha256.New, p.GlobalSecret)
	m.Write([]byte("commonsid dpop nonce v1"))
	return m.Sum(nil)
}

// dpopNonce makes a server nonce: the time, and its MAC.
func (p *Provider) dpopNonce(now time.Time) string {
	var b [8 + 16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.Unix()))
	m := hmac.New(sha256.New, p.dpopNonceKey())
	m.Write(b[:8])
	copy(b[8:], m.Sum(nil))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// dpopNonceValid reports whether n is a nonce made by this cloud within
// dpopNonceLifetime.
func (p *Provider) dpopNonceValid(n string, now time.Time) bool {
	b, err := base64.RawURLEncoding.DecodeString(n)
	if err != nil || len(b) != 24 {
		return false
	}
	m := hmac.New(sha256.New, p.dpopNonceKey())
	m.Write(b[:8])
	if !hmac.Equal(b[8:], m.Sum(nil)[:16]) {
		return false
	}
	at := time.Unix(int64(binary.BigEndian.Uint64(b[:8])), 0)
	return !at.After(now.Add(dpopNonceSkew)) && now.Sub(at) <= dpopNonceLifetime
}

// readDPoP reads the request's proof: nil, nil when it has none. The
// proof's id is not recorded yet (useDPoPJTI).
func (p *Provider) readDPoP(r *http.Request, endpoint, accessToken string) (*dpopProof, *dpopError) {
	vals := r.Header.Values(dpopHeader)
	switch len(vals) {
	case 0:
		return nil, nil
	case 1:
	default:
		return nil, badProof("The request has more than one DPoP header.")
	}
	pr, derr := parseDPoPProof(strings.TrimSpace(vals[0]))
	if derr != nil {
		return nil, derr
	}
	if derr := p.checkDPoPProof(pr, r.Method, endpoint, accessToken, p.now()); derr != nil {
		return nil, derr
	}
	return pr, nil
}

// useDPoPJTI records the proof's id; a replay is refused. The id is kept
// as long as the proof's iat is within the window.
func (p *Provider) useDPoPJTI(ctx context.Context, pr *dpopProof) (*dpopError, error) {
	ds, ok := p.Store.(DPoPStore)
	if !ok {
		return nil, errors.New("the store does not record DPoP proofs")
	}
	sum := sha256.Sum256([]byte(pr.JKT + "\x00" + pr.JTI))
	err := ds.UseDPoPJTI(ctx, hex.EncodeToString(sum[:]), pr.IAT.Add(dpopProofWindow), p.now())
	if errors.Is(err, store.ErrAlreadyExists) {
		return badProof("The DPoP proof was already used; make a new one, with a new jti, for every request."), nil
	}
	return nil, err
}

// dpopAtToken applies DPoP to a token request that fosite has validated
// and not yet answered: it binds the tokens to be issued to the proof's
// key, or refuses the request (having written the answer) and returns
// false.
func (p *Provider) dpopAtToken(w http.ResponseWriter, r *http.Request, ar fosite.AccessRequester) bool {
	ctx := r.Context()
	sess, ok := ar.GetSession().(*Session)
	if !ok {
		return true
	}
	client, _ := ar.GetClient().(*Client)
	if len(r.Header.Values(dpopHeader)) > 0 {
		w.Header().Set(dpopNonceHeader, p.dpopNonce(p.now()))
	}
	pr, derr := p.readDPoP(r, p.Issuer+"/token", "")
	if derr != nil {
		writeOAuthError(w, http.StatusBadRequest, derr.code, derr.desc)
		return false
	}
	refresh := ar.GetGrantTypes().ExactOne("refresh_token")
	bound := boundJKT(sess)
	switch {
	case pr == nil && client != nil && client.DPoPBoundAccessTokens:
		writeOAuthError(w, http.StatusBadRequest, errInvalidDPoPProof, "This client is registered with dpop_bound_access_tokens: a DPoP proof is required.")
		return false
	case pr == nil && refresh && bound != "":
		writeOAuthError(w, http.StatusBadRequest, errInvalidDPoPProof, "The grant is bound to a DPoP key: a DPoP proof is required.")
		return false
	case pr != nil && refresh && bound != "" && pr.JKT != bound && ar.GetClient().IsPublic():
		// A public client's refresh token is bound to the key (§5).
		writeOAuthError(w, http.StatusBadRequest, fosite.ErrInvalidGrant.ErrorField, "The refresh token is bound to another DPoP key.")
		return false
	}
	if pr == nil {
		bindDPoP(sess, "")
		return true
	}
	derr, err := p.useDPoPJTI(ctx, pr)
	if err != nil {
		p.writeAccessError(ctx, w, ar, "dpop proof", err)
		return false
	}
	if derr != nil {
		writeOAuthError(w, http.StatusBadRequest, derr.code, derr.desc)
		return false
	}
	bindDPoP(sess, pr.JKT)
	return true
}

// boundJKT is the thumbprint of the key a grant's tokens are bound to, ""
// for bearer tokens. The binding is the access token's cnf claim (RFC 9449
// §6.1), kept with the other access-token claims of the session, so that
// the JWT, introspection and the stored grant all carry it.
func boundJKT(sess *Session) string {
	cnf, _ := sess.AccessExtra["cnf"].(map[string]any)
	jkt, _ := cnf["jkt"].(string)
	return jkt
}

// bindDPoP binds the tokens about to be issued for sess to the key of
// thumbprint jkt, or to none when jkt is "". The map is replaced, not
// changed: copies of the session may share it.
func bindDPoP(sess *Session, jkt string) {
	if jkt == "" && sess.AccessExtra["cnf"] == nil {
		return
	}
	ae := maps.Clone(sess.AccessExtra)
	if ae == nil {
		ae = map[string]any{}
	}
	if jkt == "" {
		delete(ae, "cnf")
	} else {
		ae["cnf"] = map[string]any{"jkt": jkt}
	}
	sess.AccessExtra = ae
}

// dpopTokenType names the token type of a bound access token (§5).
func dpopTokenType(ar fosite.AccessRequester, resp fosite.AccessResponder) {
	if s, ok := ar.GetSession().(*Session); ok && boundJKT(s) != "" {
		resp.SetTokenType("DPoP")
	}
}

// authScheme is the scheme of the Authorization header, lower case; "" when
// there is none (a token in the form body, or none at all).
func authScheme(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if i := strings.IndexByte(h, ' '); i > 0 {
		return strings.ToLower(h[:i])
	}
	return ""
}

// dpopAtResource checks the request of a protected resource (UserInfo) for
// the access token tok, whose grant is sess: a bound token needs the DPoP
// scheme and a proof of its key; an unbound one must not come with the
// DPoP scheme. On refusal it writes the answer and returns false.
func (p *Provider) dpopAtResource(w http.ResponseWriter, r *http.Request, endpoint, tok string, sess *Session) bool {
	ctx := r.Context()
	scheme := authScheme(r)
	bound := boundJKT(sess)
	if len(r.Header.Values(dpopHeader)) > 0 || scheme == "dpop" {
		w.Header().Set(dpopNonceHeader, p.dpopNonce(p.now()))
	}
	switch {
	case bound == "" && scheme != "dpop":
		return true
	case bound == "":
		dpopResourceError(w, http.StatusUnauthorized, "invalid_token", "The access token is not DPoP-bound; send it as a Bearer token.")
		return false
	case scheme != "dpop":
		dpopResourceError(w, http.StatusUnauthorized, "invalid_token", "The access token is DPoP-bound: send it with the DPoP scheme and a DPoP proof.")
		return false
	}
	pr, derr := p.readDPoP(r, endpoint, tok)
	if derr == nil && pr == nil {
		derr = badProof("A DPoP proof is required with the DPoP scheme.")
	}
	if derr == nil && pr.JKT != bound {
		derr = badProof("The DPoP proof is signed with another key than the access token is bound to.")
	}
	if derr == nil {
		var err error
		if derr, err = p.useDPoPJTI(ctx, pr); err != nil {
			p.logUnavailable(ctx, "userinfo", err)
			writeUnavailable(w, "userinfo")
			return false
		}
	}
	if derr != nil {
		dpopResourceError(w, http.StatusUnauthorized, derr.code, derr.desc)
		return false
	}
	return true
}

// dpopResourceError answers a protected-resource request with a DPoP
// challenge (§7.1).
func dpopResourceError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("WWW-Authenticate", `DPoP error="`+code+`", error_description="`+desc+`", algs="`+strings.Join(DPoPSigningAlgs, " ")+`"`)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

// resourceToken is the access token of a protected-resource request: sent
// with the DPoP scheme (then checked by dpopAtResource), or as a bearer
// token.
func resourceToken(r *http.Request) string {
	if h := r.Header.Get("Authorization"); len(h) > 5 && strings.EqualFold(h[:5], "dpop ") {
		return strings.TrimSpace(h[5:])
	}
	return bearerToken(r)
}
