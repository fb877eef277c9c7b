package webvh

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gowebpki/jcs"
	"github.com/multiformats/go-multibase"
	"github.com/multiformats/go-multihash"
)

// Cryptosuite is the only Data Integrity cryptosuite of did:webvh 1.0.
const Cryptosuite = "eddsa-jcs-2022"

// ed25519Multicodec is the multicodec prefix of an Ed25519 public key (0xed, varint).
var ed25519Multicodec = []byte{0xed, 0x01}

// Multikey returns the multikey form of an Ed25519 public key: multibase
// base58btc of the multicodec-prefixed key ("z6Mk…").
func Multikey(pub ed25519.PublicKey) string {
	s, _ := multibase.Encode(multibase.Base58BTC, append(append([]byte{}, ed25519Multicodec...), pub...))
	return s
}

// ParseMultikey decodes an Ed25519 multikey.
func ParseMultikey(s string) (ed25519.PublicKey, error) {
	if len(s) > 128 || !strings.HasPrefix(s, "z") {
		return nil, fmt.Errorf("%q is not a base58btc multikey", s)
	}
	_, b, err := multibase.Decode(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not a base58btc multikey", s)
	}
	if len(b) != 2+ed25519.PublicKeySize || !bytes.HasPrefix(b, ed25519Multicodec) {
		return nil, fmt.Errorf("%q is not an Ed25519 multikey", s)
	}
	return ed25519.PublicKey(b[2:]), nil
}

// hashString returns base58btc(multihash-sha256(data)), without the
// multibase prefix: the form of SCIDs, entry hashes and key hashes.
func hashString(data []byte) string {
	mh, _ := multihash.Sum(data, multihash.SHA2_256, -1)
	s, _ := multibase.Encode(multibase.Base58BTC, mh)
	return s[1:]
}

// checkHashString reports whether s is a base58btc SHA-256 multihash, the
// only hash algorithm of did:webvh 1.0.
func checkHashString(s string) error {
	if len(s) == 0 || len(s) > 64 {
		return errors.New("not a base58btc multihash")
	}
	_, b, err := multibase.Decode("z" + s)
	if err != nil {
		return errors.New("not base58btc")
	}
	dm, err := multihash.Decode(b)
	if err != nil {
		return errors.New("not a multihash")
	}
	if dm.Code != multihash.SHA2_256 || dm.Length != sha256.Size {
		return fmt.Errorf("multihash algorithm 0x%x is not SHA-256, the only one did:webvh 1.0 allows", dm.Code)
	}
	return nil
}

// KeyHash returns the pre-rotation hash of a multikey, for nextKeyHashes.
func KeyHash(multikey string) string { return hashString([]byte(multikey)) }

// canonical returns the JCS (RFC 8785) form of a JSON value.
func canonical(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return jcs.Transform(b)
}

// Proof is a Data Integrity proof (eddsa-jcs-2022).
type Proof struct {
	Type               string `json:"type"`
	Cryptosuite        string `json:"cryptosuite"`
	VerificationMethod string `json:"verificationMethod"`
	Created            string `json:"created,omitempty"`
	ProofPurpose       string `json:"proofPurpose"`
	ProofValue         string `json:"proofValue"`
}

// proofKeys are the members a proof may have; anything else would be
// signed over unseen (it is part of the proof options) and is refused.
var proofKeys = map[string]bool{"type": true, "cryptosuite": true, "verificationMethod": true, "created": true, "proofPurpose": true, "proofValue": true}

// parseProof decodes one proof object strictly.
func parseProof(raw json.RawMessage) (*Proof, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, errors.New("proof is not a JSON object")
	}
	for k := range m {
		if !proofKeys[k] {
			return nil, fmt.Errorf("proof has unknown member %q", k)
		}
	}
	var p Proof
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("proof: %v", err)
	}
	return &p, nil
}

// signingInput is SHA-256(JCS(proof options)) ‖ SHA-256(JCS(document)), the
// data an eddsa-jcs-2022 signature covers. doc must not hold "proof".
func signingInput(doc map[string]json.RawMessage, p *Proof) ([]byte, error) {
	opts := map[string]any{
		"type":               p.Type,
		"cryptosuite":        p.Cryptosuite,
		"verificationMethod": p.VerificationMethod,
		"proofPurpose":       p.ProofPurpose,
	}
	if p.Created != "" {
		opts["created"] = p.Created
	}
	if c, ok := doc["@context"]; ok {
		opts["@context"] = c
	}
	co, err := canonical(opts)
	if err != nil {
		return nil, err
	}
	cd, err := canonical(doc)
	if err != nil {
		return nil, err
	}
	h1, h2 := sha256.Sum256(co), sha256.Sum256(cd)
	return append(h1[:], h2[:]...), nil
}

// signProof makes an eddsa-jcs-2022 assertionMethod proof over doc with the
// did:key verification method of priv.
func signProof(doc map[string]json.RawMessage, priv ed25519.PrivateKey, created time.Time) (*Proof, error) {
	mk := Multikey(priv.Public().(ed25519.PublicKey))
	p := &Proof{
		Type:               "DataIntegrityProof",
		Cryptosuite:        Cryptosuite,
		VerificationMethod: "did:key:" + mk + "#" + mk,
		Created:            created.UTC().Format(time.RFC3339),
		ProofPurpose:       "assertionMethod",
	}
	in, err := signingInput(doc, p)
	if err != nil {
		return nil, err
	}
	p.ProofValue, _ = multibase.Encode(multibase.Base58BTC, ed25519.Sign(priv, in))
	return p, nil
}

// verifyProof checks the form of p and its signature over doc, and returns
// the multikey that signed (the did:key body, equal to its fragment).
func verifyProof(doc map[string]json.RawMessage, p *Proof) (string, error) {
	if p.Type != "DataIntegrityProof" {
		return "", fmt.Errorf("proof type %q is not DataIntegrityProof", p.Type)
	}
	if p.Cryptosuite != Cryptosuite {
		return "", fmt.Errorf("cryptosuite %q is not %s", p.Cryptosuite, Cryptosuite)
	}
	if p.ProofPurpose != "assertionMethod" {
		return "", fmt.Errorf("proofPurpose %q is not assertionMethod", p.ProofPurpose)
	}
	if p.Created != "" {
		if _, err := parseUTC(p.Created); err != nil {
			return "", fmt.Errorf("proof created: %v", err)
		}
	}
	mk, err := didKeyMultikey(p.VerificationMethod)
	if err != nil {
		return "", err
	}
	pub, err := ParseMultikey(mk)
	if err != nil {
		return "", fmt.Errorf("verificationMethod: %v", err)
	}
	if len(p.ProofValue) > 128 || !strings.HasPrefix(p.ProofValue, "z") {
		return "", errors.New("proofValue is not base58btc multibase")
	}
	_, sig, err := multibase.Decode(p.ProofValue)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return "", errors.New("proofValue is not a base58btc Ed25519 signature")
	}
	in, err := signingInput(doc, p)
	if err != nil {
		return "", err
	}
	if !ed25519.Verify(pub, in, sig) {
		return "", errors.New("signature does not verify")
	}
	return mk, nil
}

// didKeyMultikey parses did:key:{K}#{K} and returns K; body and fragment
// must be byte-for-byte equal.
func didKeyMultikey(vm string) (string, error) {
	rest, ok := strings.CutPrefix(vm, "did:key:")
	if !ok {
		return "", fmt.Errorf("verificationMethod %q is not a did:key", vm)
	}
	body, frag, ok := strings.Cut(rest, "#")
	if !ok || body == "" || body != frag {
		return "", fmt.Errorf("verificationMethod %q is not did:key:{key}#{key}", vm)
	}
	return body, nil
}

// parseUTC parses an RFC 3339 timestamp that must be in UTC ("Z" or "+00:00").
func parseUTC(s string) (time.Time, error) {
	if len(s) > 40 {
		return time.Time{}, fmt.Errorf("timestamp %.40q… too long", s)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("timestamp %q is not RFC 3339", s)
	}
	if !strings.HasSuffix(s, "Z") && !strings.HasSuffix(s, "+00:00") {
		return time.Time{}, fmt.Errorf("timestamp %q is not in UTC", s)
	}
	return t, nil
}
