package oidfed

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Media types, header types, paths and bounds.
const (
	TypEntityStatement         = "entity-statement+jwt"
	TypTrustMark               = "trust-mark+jwt"
	ContentTypeEntityStatement = "application/entity-statement+jwt"
	ContentTypeTrustMark       = "application/trust-mark+jwt"

	// WellKnownPath is where an entity serves its configuration, under
	// its entity identifier.
	WellKnownPath = "/.well-known/openid-federation"
	// FetchPath is this project's federation_fetch_endpoint (?sub=).
	FetchPath = "/federation/v1/oidfed/fetch"
	// ListPath is this project's federation_list_endpoint.
	ListPath = "/federation/v1/oidfed/list"

	// MaxStatementBytes bounds an entity statement or a trust mark.
	MaxStatementBytes = 64 << 10
	// DefaultSkew is the clock difference tolerated on iat and exp.
	DefaultSkew = time.Minute
	// DefaultStatementTTL is the lifetime of subordinate statements.
	DefaultStatementTTL = time.Hour
	// DefaultConfigTTL is the lifetime of an entity configuration.
	DefaultConfigTTL = 24 * time.Hour

	// Entity types (metadata keys).
	EntityFederation = "federation_entity"
	EntityOP         = "openid_provider"
	EntityRP         = "openid_relying_party"

	// Kinds of trust marks a commons anchor issues.
	KindCommonsCloud   = "commons-cloud"
	KindCommonsService = "commons-service"

	maxKeys       = 16
	maxHints      = 8
	maxTrustMarks = 16
)

// Errors, for errors.Is.
var (
	ErrInvalid         = errors.New("invalid entity statement")
	ErrExpired         = errors.New("entity statement expired or not yet valid")
	ErrTooLarge        = fmt.Errorf("entity statement larger than %d bytes", MaxStatementBytes)
	ErrNotSubordinate  = errors.New("not a subordinate of that authority")
	ErrLoop            = errors.New("authority hints loop")
	ErrNoChain         = errors.New("no trust chain to a trust anchor accepted here")
	ErrUntrustedAnchor = errors.New("not a trust anchor accepted here")
)

// TrustMarkType is the trust mark type a commons anchor issues for kind.
func TrustMarkType(anchor, kind string) string {
	return strings.TrimRight(anchor, "/") + "/trust-marks/" + kind
}

// signingAlgs are the algorithms accepted on statements and trust marks.
var signingAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.ES512, jose.EdDSA, jose.RS256, jose.PS256}

// Statement is an entity statement.
type Statement struct {
	Issuer         string                    `json:"iss"`
	Subject        string                    `json:"sub"`
	IssuedAt       int64                     `json:"iat"`
	Expiry         int64                     `json:"exp"`
	JWKS           *jose.JSONWebKeySet       `json:"jwks,omitempty"`
	AuthorityHints []string                  `json:"authority_hints,omitempty"`
	Metadata       map[string]map[string]any `json:"metadata,omitempty"`
	TrustMarks     []TrustMarkRef            `json:"trust_marks,omitempty"`
	SourceEndpoint string                    `json:"source_endpoint,omitempty"`
	// TrustMarkIssuers, in an anchor's configuration, names who may
	// issue each trust mark type.
	TrustMarkIssuers map[string][]string `json:"trust_mark_issuers,omitempty"`
	// Crit lists extension claims a verifier must understand; any value
	// is refused here.
	Crit []string `json:"crit,omitempty"`
	// Raw is the compact JWS as signed or received.
	Raw string `json:"-"`
	// kid is the signing key's id from the header.
	kid string
}

// TrustMarkRef is an entry of a statement's trust_marks.
type TrustMarkRef struct {
	Type      string `json:"trust_mark_type"`
	TrustMark string `json:"trust_mark"`
}

// ExpiresAt is exp as a time.
func (s *Statement) ExpiresAt() time.Time { return time.Unix(s.Expiry, 0).UTC() }

// IsConfiguration reports whether s is an entity configuration (iss = sub).
func (s *Statement) IsConfiguration() bool { return s.Issuer == s.Subject }

// KeyID is the kid of the key that signed s.
func (s *Statement) KeyID() string { return s.kid }

// MetadataString returns a string parameter of one entity type's metadata.
func (s *Statement) MetadataString(entityType, param string) string {
	v, _ := s.Metadata[entityType][param].(string)
	return v
}

// SigningKey is a private key to sign statements with.
type SigningKey struct {
	KID string
	Alg jose.SignatureAlgorithm
	Key any
}

func signer(k SigningKey, typ string) (jose.Signer, error) {
	if k.KID == "" || k.Key == nil {
		return nil, errors.New("oidfed: a signing key needs a kid")
	}
	opts := (&jose.SignerOptions{}).WithType(jose.ContentType(typ)).WithHeader("kid", k.KID)
	return jose.NewSigner(jose.SigningKey{Algorithm: k.Alg, Key: k.Key}, opts)
}

// Sign signs st as an entity statement and sets st.Raw.
func Sign(st *Statement, k SigningKey) (string, error) {
	if err := checkClaims(st); err != nil {
		return "", err
	}
	payload, err := json.Marshal(st)
	if err != nil {
		return "", err
	}
	s, err := signer(k, TypEntityStatement)
	if err != nil {
		return "", err
	}
	jws, err := s.Sign(payload)
	if err != nil {
		return "", err
	}
	raw, err := jws.CompactSerialize()
	if err != nil {
		return "", err
	}
	if len(raw) > MaxStatementBytes {
		return "", ErrTooLarge
	}
	st.Raw, st.kid = raw, k.KID
	return raw, nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// parseJWS checks the outer rules shared by statements and trust marks:
// size, compact form, one signature, alg, typ, kid, no crit header.
func parseJWS(raw []byte, typ string) (*jose.JSONWebSignature, string, error) {
	if len(raw) > MaxStatementBytes {
		return nil, "", ErrTooLarge
	}
	raw = bytes.TrimSpace(raw)
	if bytes.Count(raw, []byte(".")) != 2 {
		return nil, "", invalid("not a compact JWS")
	}
	jws, err := jose.ParseSignedCompact(string(raw), signingAlgs)
	if err != nil {
		return nil, "", invalid("%v", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, "", invalid("one signature expected")
	}
	h := jws.Signatures[0].Protected
	if got, _ := h.ExtraHeaders[jose.HeaderType].(string); got != typ {
		return nil, "", invalid("typ header is %q, not %q", got, typ)
	}
	if _, ok := h.ExtraHeaders["crit"]; ok {
		return nil, "", invalid("crit header is not supported")
	}
	if h.KeyID == "" {
		return nil, "", invalid("no kid in the header")
	}
	return jws, h.KeyID, nil
}

// Parse checks a statement's form without its signature: size, compact
// JWS, typ, alg, kid, the claims and their types. Use Verify to trust it.
func Parse(raw []byte) (*Statement, error) {
	jws, kid, err := parseJWS(raw, TypEntityStatement)
	if err != nil {
		return nil, err
	}
	st, err := decodeClaims(jws.UnsafePayloadWithoutVerification())
	if err != nil {
		return nil, err
	}
	st.Raw, st.kid = string(bytes.TrimSpace(raw)), kid
	return st, nil
}

// decodeClaims reads and checks a statement's claims.
func decodeClaims(payload []byte) (*Statement, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(payload, &probe); err != nil {
		return nil, invalid("claims are not a JSON object")
	}
	if _, ok := probe["metadata_policy"]; ok {
		return nil, invalid("metadata_policy is not supported here")
	}
	if _, ok := probe["crit"]; ok {
		return nil, invalid("crit claims are not supported here")
	}
	var st Statement
	if err := json.Unmarshal(payload, &st); err != nil {
		return nil, invalid("claims: %v", err)
	}
	if err := checkClaims(&st); err != nil {
		return nil, err
	}
	return &st, nil
}

func checkClaims(st *Statement) error {
	if err := CheckEntityID(st.Issuer); err != nil {
		return invalid("iss: %v", err)
	}
	if err := CheckEntityID(st.Subject); err != nil {
		return invalid("sub: %v", err)
	}
	if st.IssuedAt <= 0 || st.Expiry <= 0 {
		return invalid("iat and exp are required")
	}
	if st.Expiry <= st.IssuedAt {
		return invalid("exp is not after iat")
	}
	if st.JWKS == nil || len(st.JWKS.Keys) == 0 {
		return invalid("jwks is required")
	}
	if len(st.JWKS.Keys) > maxKeys {
		return invalid("jwks holds more than %d keys", maxKeys)
	}
	for _, k := range st.JWKS.Keys {
		if k.KeyID == "" || !k.IsPublic() || !k.Valid() {
			return invalid("jwks: every key must be a public key with a kid")
		}
	}
	if len(st.AuthorityHints) > maxHints {
		return invalid("more than %d authority_hints", maxHints)
	}
	for _, h := range st.AuthorityHints {
		if err := CheckEntityID(h); err != nil {
			return invalid("authority_hints: %v", err)
		}
	}
	if len(st.TrustMarks) > maxTrustMarks {
		return invalid("more than %d trust_marks", maxTrustMarks)
	}
	if len(st.Crit) > 0 {
		return invalid("crit claims are not supported here")
	}
	return nil
}

// CheckEntityID checks an entity identifier: an absolute https URL
// without query, fragment or user info (plain http on loopback hosts).
func CheckEntityID(id string) error {
	u, err := url.Parse(id)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", id)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil || u.Opaque != "" {
		return fmt.Errorf("%q must not carry a query, fragment or user info", id)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !loopback(u.Hostname()) {
			return fmt.Errorf("%q: entity identifiers are https URLs", id)
		}
	default:
		return fmt.Errorf("%q: entity identifiers are https URLs", id)
	}
	return nil
}

func loopback(host string) bool {
	return host == "localhost" || host == "::1" || strings.HasPrefix(host, "127.")
}

// Verify parses raw and checks its signature with the key of its kid in
// jwks and its times against now.
func Verify(raw []byte, jwks *jose.JSONWebKeySet, now time.Time) (*Statement, error) {
	jws, kid, err := parseJWS(raw, TypEntityStatement)
	if err != nil {
		return nil, err
	}
	payload, err := verifyWith(jws, kid, jwks)
	if err != nil {
		return nil, err
	}
	st, err := decodeClaims(payload)
	if err != nil {
		return nil, err
	}
	if err := checkTimes(st.IssuedAt, st.Expiry, now); err != nil {
		return nil, err
	}
	st.Raw, st.kid = string(bytes.TrimSpace(raw)), kid
	return st, nil
}

func verifyWith(jws *jose.JSONWebSignature, kid string, jwks *jose.JSONWebKeySet) ([]byte, error) {
	if jwks == nil {
		return nil, invalid("no keys to verify with")
	}
	ks := jwks.Key(kid)
	if len(ks) == 0 {
		return nil, invalid("signed with key %q, which is not in the issuer's jwks", short(kid))
	}
	payload, err := jws.Verify(ks[0].Public().Key)
	if err != nil {
		return nil, invalid("signature does not verify with key %q", short(kid))
	}
	return payload, nil
}

func checkTimes(iat, exp int64, now time.Time) error {
	if time.Unix(iat, 0).After(now.Add(DefaultSkew)) {
		return fmt.Errorf("%w: issued in the future (iat %s)", ErrExpired, time.Unix(iat, 0).UTC().Format(time.RFC3339))
	}
	if !time.Unix(exp, 0).Add(DefaultSkew).After(now) {
		return fmt.Errorf("%w: expired at %s", ErrExpired, time.Unix(exp, 0).UTC().Format(time.RFC3339))
	}
	return nil
}

// VerifyConfiguration verifies an entity configuration: iss and sub are
// entityID and it verifies with its own jwks.
func VerifyConfiguration(raw []byte, entityID string, now time.Time) (*Statement, error) {
	st, err := Parse(raw)
	if err != nil {
		return nil, err
	}
	if st.Issuer != entityID || st.Subject != entityID {
		return nil, invalid("configuration of %q names iss %q and sub %q", entityID, st.Issuer, st.Subject)
	}
	return Verify(raw, st.JWKS, now)
}

func short(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
