package did

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"strings"

	"github.com/go-jose/go-jose/v4"
)

// ErrBadSignature reports a JWS that does not verify against its signer's DID.
var ErrBadSignature = errors.New("signature does not verify")

// verifyAlgs are the JWS algorithms accepted from DIDs. "none" and HMAC are
// never accepted.
var verifyAlgs = []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256, jose.ES384, jose.ES512, jose.RS256, jose.PS256}

// Sign makes a compact JWS of payload with key, naming keyID (a DID URL) in the
// protected "kid" header. The algorithm follows the key: EdDSA for Ed25519,
// ES256/384/512 for ECDSA, RS256 for RSA.
func Sign(key crypto.Signer, keyID string, payload []byte, extraHeaders map[string]any) (string, error) {
	alg, err := AlgForKey(key.Public())
	if err != nil {
		return "", err
	}
	opts := (&jose.SignerOptions{}).WithHeader("kid", keyID)
	for k, v := range extraHeaders {
		opts = opts.WithHeader(jose.HeaderKey(k), v)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		return "", fmt.Errorf("jws signer: %w", err)
	}
	obj, err := s.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("jws sign: %w", err)
	}
	return obj.CompactSerialize()
}

// AlgForKey returns the JWS algorithm used with a public key.
func AlgForKey(pub crypto.PublicKey) (jose.SignatureAlgorithm, error) {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return jose.EdDSA, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return jose.ES256, nil
		case elliptic.P384():
			return jose.ES384, nil
		case elliptic.P521():
			return jose.ES512, nil
		}
	case *rsa.PublicKey:
		return jose.RS256, nil
	}
	return "", fmt.Errorf("unsupported signing key type %T", pub)
}

// Verified is a JWS whose signature checked out.
type Verified struct {
	Payload []byte
	DID     string // the DID whose verification method signed
	KeyID   string // the full DID URL of that method
	Header  jose.Header
}

// Verify checks a compact JWS whose "kid" header is a DID URL: it resolves the
// DID, finds the verification method and verifies the signature with it.
func (r *Resolver) Verify(ctx context.Context, compact string) (*Verified, error) {
	obj, err := jose.ParseSignedCompact(compact, verifyAlgs)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	if len(obj.Signatures) != 1 {
		return nil, fmt.Errorf("%w: want one signature, got %d", ErrBadSignature, len(obj.Signatures))
	}
	kid := obj.Signatures[0].Protected.KeyID
	didPart, _, found := strings.Cut(kid, "#")
	if !found || !strings.HasPrefix(didPart, "did:") {
		return nil, fmt.Errorf("%w: kid %q is not a DID URL", ErrBadSignature, kid)
	}
	doc, err := r.Resolve(ctx, didPart)
	if err != nil {
		return nil, err
	}
	return VerifyWithDocument(doc, compact)
}

// VerifyWithDocument checks a compact JWS against a resolved DID document.
func VerifyWithDocument(doc *Document, compact string) (*Verified, error) {
	obj, err := jose.ParseSignedCompact(compact, verifyAlgs)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	if len(obj.Signatures) != 1 {
		return nil, fmt.Errorf("%w: want one signature, got %d", ErrBadSignature, len(obj.Signatures))
	}
	h := obj.Signatures[0].Protected
	kid := h.KeyID
	if strings.HasPrefix(kid, "#") {
		kid = doc.ID + kid
	}
	if d, _, _ := strings.Cut(kid, "#"); d != doc.ID {
		return nil, fmt.Errorf("%w: kid %q is not a key of %s", ErrBadSignature, h.KeyID, doc.ID)
	}
	pub, err := doc.PublicKey(kid)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	want, err := AlgForKey(pub)
	if err != nil || (want != jose.SignatureAlgorithm(h.Algorithm) && !rsaFamily(pub, h.Algorithm)) {
		return nil, fmt.Errorf("%w: algorithm %s does not match key of %s", ErrBadSignature, h.Algorithm, kid)
	}
	payload, err := obj.Verify(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	return &Verified{Payload: payload, DID: doc.ID, KeyID: kid, Header: h}, nil
}

func rsaFamily(pub crypto.PublicKey, alg string) bool {
	_, ok := pub.(*rsa.PublicKey)
	return ok && (alg == string(jose.RS256) || alg == string(jose.PS256))
}
