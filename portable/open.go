package portable

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/go-jose/go-jose/v4"

	"github.com/onecommons/commonsid/did"
	"github.com/onecommons/commonsid/did/webvh"
	"github.com/onecommons/commonsid/identity"
)

// Errors of Open, one per check, in the order the checks are made. They are
// wrapped with context; test with errors.Is.
var (
	ErrTooLarge        = errors.New("export file is too large")
	ErrMalformed       = errors.New("export file is malformed")
	ErrDuplicateKey    = errors.New("export file repeats a JSON key")
	ErrUnknownVersion  = errors.New("export file has an unknown format version")
	ErrBadSignature    = errors.New("export file signature does not verify")
	ErrWrongKey        = errors.New("export file is not signed by its account's DID")
	ErrCloudSignature  = errors.New("export file is not signed by the cloud it names")
	ErrWeakEncryption  = errors.New("export file secrets are encrypted too weakly")
	ErrWrongPassphrase = errors.New("wrong passphrase")
	ErrKeyMismatch     = errors.New("export file key does not match its DID")
)

// DefaultMaxSize is the default largest export file Open reads.
const DefaultMaxSize = 50 << 20

// VerifyOptions are the options of Open's checks.
type VerifyOptions struct {
	// Resolver resolves the account DID (did:key offline) and the cloud's
	// did:web; nil means a zero did.Resolver.
	Resolver *did.Resolver
	// MaxSize is the largest file accepted, in bytes; zero means
	// DefaultMaxSize.
	MaxSize int64
}

// Opened is a verified, decrypted export.
type Opened struct {
	Document       Document
	DIDKey         *did.Key
	PairwiseSecret []byte
	CloudDID       string // the did:web of the cloud that signed the file

	// Log is, for a did:webvh account, the log the file carries, verified
	// (DIDKey is then the custodial key under its current DID); nil for a
	// did:key account.
	Log *webvh.Result
	// LogWitnessed reports that the carried log met its witness threshold
	// with the carried witness file.
	LogWitnessed bool
	// CloudUnverified is, for a did:webvh account, why the exporting
	// cloud's signature could not be checked (its did:web document could
	// not be fetched, or no longer lists the key); "" when it verified.
	// The file is accepted on the strength of the account signature and
	// its log.
	CloudUnverified string
}

// Open verifies an export file and decrypts its secrets with passphrase. It
// writes nothing anywhere; a nil error means every check passed.
func Open(ctx context.Context, file []byte, passphrase string, opt VerifyOptions) (*Opened, error) {
	maxSize := opt.MaxSize
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	if int64(len(file)) > maxSize {
		return nil, fmt.Errorf("open export: %w: %d bytes, limit %d", ErrTooLarge, len(file), maxSize)
	}
	r := opt.Resolver
	if r == nil {
		r = &did.Resolver{}
	}
	f, err := parseFile(file)
	if err != nil {
		return nil, fmt.Errorf("open export: %w", err)
	}
	doc := &f.doc
	if err := f.verify(ctx, r); err != nil {
		return nil, fmt.Errorf("open export of %s: %w", doc.Account.DID, err)
	}
	out, err := decrypt(doc, passphrase, f)
	if err != nil {
		return nil, fmt.Errorf("open export of %s: %w", doc.Account.DID, err)
	}
	return out, nil
}

// parsed is an export file whose structure has been checked and whose
// signatures have not.
type parsed struct {
	file       []byte
	payload    []byte
	doc        Document
	rawDIDDoc  json.RawMessage
	protected  []protectedHeader
	signatures []string

	// Set by verify: the carried did:webvh log (nil for a did:key
	// account), the account signature's key, and why the cloud signature
	// could not be checked ("" when it was).
	log             *embeddedLog
	accountKID      string
	accountPub      crypto.PublicKey
	cloudUnverified string
}

type protectedHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`

	unprotected bool   // the signature also has an unprotected header
	problem     string // why the header is not acceptable, if it is not
}

// parseFile makes the structural checks: JSON, JWS JSON shape, duplicate
// keys, format version.
func parseFile(file []byte) (*parsed, error) {
	if err := checkJSON(file); err != nil {
		return nil, err
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(file, &top); err != nil {
		return nil, fmt.Errorf("%w: not a JSON object", ErrMalformed)
	}
	if err := exactKeys(top, "payload", "signatures"); err != nil {
		return nil, fmt.Errorf("%w: JWS: %v", ErrMalformed, err)
	}
	p := &parsed{file: file}
	var payloadB64 string
	if err := json.Unmarshal(top["payload"], &payloadB64); err != nil {
		return nil, fmt.Errorf("%w: payload is not a string", ErrMalformed)
	}
	var err error
	if p.payload, err = base64.RawURLEncoding.DecodeString(payloadB64); err != nil {
		return nil, fmt.Errorf("%w: payload is not base64url: %v", ErrMalformed, err)
	}
	var sigs []map[string]json.RawMessage
	if err := json.Unmarshal(top["signatures"], &sigs); err != nil {
		return nil, fmt.Errorf("%w: signatures is not a list of objects", ErrMalformed)
	}
	for i, s := range sigs {
		_, unprotected := s["header"]
		delete(s, "header")
		if err := exactKeys(s, "protected", "signature"); err != nil {
			return nil, fmt.Errorf("%w: signature %d: %v", ErrMalformed, i+1, err)
		}
		var prot, sig string
		if json.Unmarshal(s["protected"], &prot) != nil || json.Unmarshal(s["signature"], &sig) != nil {
			return nil, fmt.Errorf("%w: signature %d: members are not strings", ErrMalformed, i+1)
		}
		hb, err := base64.RawURLEncoding.DecodeString(prot)
		if err != nil {
			return nil, fmt.Errorf("%w: signature %d: protected header is not base64url", ErrMalformed, i+1)
		}
		if err := checkJSON(hb); err != nil {
			return nil, fmt.Errorf("signature %d protected header: %w", i+1, err)
		}
		var hm map[string]json.RawMessage
		if err := json.Unmarshal(hb, &hm); err != nil {
			return nil, fmt.Errorf("%w: signature %d: protected header is not an object", ErrMalformed, i+1)
		}
		h := protectedHeader{unprotected: unprotected}
		// Only these three: no "crit", "b64", "jwk", "jku", "x5u" or "x5c"
		// to change how the signature is read or where its key comes from.
		if err := exactKeys(hm, "alg", "kid", "typ"); err != nil {
			h.problem = err.Error()
		} else if err := json.Unmarshal(hb, &h); err != nil {
			h.problem = err.Error()
		}
		p.protected = append(p.protected, h)
		p.signatures = append(p.signatures, sig)
	}
	if err := checkJSON(p.payload); err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	var head struct {
		Format      json.RawMessage `json:"format"`
		DIDDocument json.RawMessage `json:"did_document"`
	}
	if err := json.Unmarshal(p.payload, &head); err != nil {
		return nil, fmt.Errorf("%w: payload is not a JSON object", ErrMalformed)
	}
	var format string
	if json.Unmarshal(head.Format, &format) != nil || format != Format {
		got := truncate(head.Format)
		if got == "" {
			got = "missing"
		}
		return nil, fmt.Errorf("%w: format %s, this reader knows %q", ErrUnknownVersion, got, Format)
	}
	if err := json.Unmarshal(p.payload, &p.doc); err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	p.rawDIDDoc = head.DIDDocument
	return p, nil
}

// verify checks both signatures: the account's, then the cloud's.
func (p *parsed) verify(ctx context.Context, r *did.Resolver) error {
	if len(p.signatures) != 2 {
		return fmt.Errorf("%w: %d signatures, want 2 (account, cloud)", ErrBadSignature, len(p.signatures))
	}
	for i, h := range p.protected {
		if h.unprotected {
			return fmt.Errorf("%w: signature %d has an unprotected header", ErrBadSignature, i+1)
		}
		if h.problem != "" {
			return fmt.Errorf("%w: signature %d protected header: %s", ErrBadSignature, i+1, h.problem)
		}
		if !slices.Contains(signatureAlgs, jose.SignatureAlgorithm(h.Alg)) {
			return fmt.Errorf("%w: signature %d: algorithm %q is not allowed", ErrBadSignature, i+1, h.Alg)
		}
		if h.Typ != SignatureType {
			return fmt.Errorf("%w: signature %d: typ %q, want %q", ErrBadSignature, i+1, h.Typ, SignatureType)
		}
	}
	obj, err := jose.ParseSignedJSON(string(p.file), signatureAlgs)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	if len(obj.Signatures) != 2 || !bytes.Equal(obj.UnsafePayloadWithoutVerification(), p.payload) {
		return fmt.Errorf("%w: JWS does not read as two signatures over the payload", ErrBadSignature)
	}
	doc := &p.doc

	// The account signature. A did:key account DID is resolved offline; a
	// did:webvh account's key is read from the log the file carries: a
	// file cannot make the reader fetch anything for it.
	var resolved *did.Document
	if doc.DIDLog != "" {
		l, err := verifyEmbeddedLog(doc.Account.DID, []byte(doc.DIDLog), doc.DIDWitness)
		if err != nil {
			return err
		}
		if doc.DIDLogVersion != l.res.Metadata.VersionNumber {
			return fmt.Errorf("%w: did_log_version %d, the log's last entry is %d", ErrBadLog, doc.DIDLogVersion, l.res.Metadata.VersionNumber)
		}
		p.log, resolved = l, l.doc
	} else {
		if len(doc.DIDWitness) > 0 || doc.DIDLogVersion != 0 {
			return fmt.Errorf("%w: did_witness or did_log_version without did_log", ErrMalformed)
		}
		if !strings.HasPrefix(doc.Account.DID, "did:key:") {
			if identity.IsWebVH(doc.Account.DID) {
				return fmt.Errorf("%w: account.did %q is a did:webvh DID and the file carries no did_log", ErrWrongKey, truncate([]byte(doc.Account.DID)))
			}
			return fmt.Errorf("%w: account.did %q is not a did:key", ErrWrongKey, truncate([]byte(doc.Account.DID)))
		}
	}
	// The DID the account signature is made under: the account's did:key,
	// or the current DID of its log.
	signerDID := doc.Account.DID
	if p.log != nil {
		signerDID = p.log.res.DID
	}
	kid := p.protected[0].Kid
	if d, frag, ok := strings.Cut(kid, "#"); !ok || frag == "" || d != signerDID {
		return fmt.Errorf("%w: account signature kid %q is not a key of %s", ErrWrongKey, kid, signerDID)
	}
	if resolved == nil {
		var err error
		if resolved, err = r.Resolve(ctx, doc.Account.DID); err != nil {
			return fmt.Errorf("%w: resolve account DID: %v", ErrWrongKey, err)
		}
	}
	pub, err := resolved.PublicKey(kid)
	if err != nil {
		return fmt.Errorf("%w: account signature: %v", ErrWrongKey, err)
	}
	if err := verifyOne(obj, 0, pub, p.protected[0].Alg); err != nil {
		return fmt.Errorf("account signature: %w", err)
	}
	if err := sameDocument(p.rawDIDDoc, resolved); err != nil {
		return fmt.Errorf("%w: %v", ErrWrongKey, err)
	}
	p.accountKID, p.accountPub = kid, pub

	// The cloud signature.
	wantCloud, err := did.WebDID(doc.Issuer)
	if err != nil || wantCloud != doc.CloudDID {
		return fmt.Errorf("%w: cloud_did %q is not the did:web of issuer %q", ErrCloudSignature, doc.CloudDID, doc.Issuer)
	}
	kid = p.protected[1].Kid
	if d, frag, ok := strings.Cut(kid, "#"); !ok || frag == "" || d != doc.CloudDID {
		return fmt.Errorf("%w: cloud signature kid %q is not a key of %s", ErrCloudSignature, kid, doc.CloudDID)
	}
	// A did:webvh account's authority is its log: when the exporting cloud
	// is gone or has retired the key, the file still stands, and the
	// reader is told that its cloud signature could not be checked. A
	// signature that can be checked and fails is refused all the same.
	cloudDoc, err := r.Resolve(ctx, doc.CloudDID)
	if err == nil {
		pub, err = cloudDoc.PublicKey(kid)
	}
	if err != nil {
		if p.log != nil {
			p.cloudUnverified = fmt.Sprintf("the signature of %s could not be checked: %v", doc.Issuer, err)
			return nil
		}
		return fmt.Errorf("%w: %v", ErrCloudSignature, err)
	}
	if err := verifyOne(obj, 1, pub, p.protected[1].Alg); err != nil {
		return fmt.Errorf("cloud signature: %w", err)
	}
	return nil
}

// verifyOne verifies signature i of obj with pub.
func verifyOne(obj *jose.JSONWebSignature, i int, pub crypto.PublicKey, alg string) error {
	want, err := did.AlgForKey(pub)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	_, isRSA := pub.(*rsa.PublicKey)
	if string(want) != alg && !(isRSA && alg == string(jose.PS256)) {
		return fmt.Errorf("%w: algorithm %s does not fit the key", ErrBadSignature, alg)
	}
	one := *obj
	one.Signatures = []jose.Signature{obj.Signatures[i]}
	if _, err := one.Verify(pub); err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	return nil
}

// sameDocument reports whether the DID document carried in the file says
// exactly what the resolver says.
func sameDocument(raw json.RawMessage, resolved *did.Document) error {
	want, err := json.Marshal(resolved)
	if err != nil {
		return fmt.Errorf("marshal resolved DID document: %w", err)
	}
	var a, b any
	if json.Unmarshal(raw, &a) != nil || json.Unmarshal(want, &b) != nil || !reflect.DeepEqual(a, b) {
		return fmt.Errorf("the DID document in the file is not the one %s resolves to", resolved.ID)
	}
	return nil
}

// decrypt opens both secrets and checks that the key makes account.did
// (for a did:webvh account: that it is the key of the account signature,
// the custodial key under the log's current DID).
func decrypt(doc *Document, passphrase string, p *parsed) (*Opened, error) {
	seed, err := decryptSecret(doc.Secrets.DIDKey, passphrase)
	if err != nil {
		return nil, fmt.Errorf("did_key: %w", err)
	}
	secret, err := decryptSecret(doc.Secrets.PairwiseSecret, passphrase)
	if err != nil {
		return nil, fmt.Errorf("pairwise_secret: %w", err)
	}
	if len(secret) != SecretSize {
		return nil, fmt.Errorf("%w: pairwise secret has %d bytes, want %d", ErrMalformed, len(secret), SecretSize)
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: DID key seed has %d bytes, want %d", ErrKeyMismatch, len(seed), ed25519.SeedSize)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	if p.log != nil {
		pub, ok := p.accountPub.(ed25519.PublicKey)
		if !ok || !pub.Equal(priv.Public()) {
			return nil, fmt.Errorf("%w: the key is not the one of %s", ErrKeyMismatch, p.accountKID)
		}
		return &Opened{Document: *doc, DIDKey: &did.Key{DID: p.log.res.DID, KeyID: p.accountKID, Private: priv},
			PairwiseSecret: secret, CloudDID: doc.CloudDID, Log: p.log.res, LogWitnessed: p.log.witnessed,
			CloudUnverified: p.cloudUnverified}, nil
	}
	key, err := did.KeyFromPrivate(priv)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyMismatch, err)
	}
	if key.DID != doc.Account.DID {
		return nil, fmt.Errorf("%w: the key makes %s", ErrKeyMismatch, key.DID)
	}
	return &Opened{Document: *doc, DIDKey: key, PairwiseSecret: secret, CloudDID: doc.CloudDID}, nil
}

// decryptSecret checks the encryption parameters of a compact JWE, then
// decrypts it.
func decryptSecret(compact, passphrase string) ([]byte, error) {
	head, _, ok := strings.Cut(compact, ".")
	if !ok {
		return nil, fmt.Errorf("%w: not a compact JWE", ErrMalformed)
	}
	hb, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return nil, fmt.Errorf("%w: JWE header is not base64url", ErrMalformed)
	}
	if err := checkJSON(hb); err != nil {
		return nil, fmt.Errorf("JWE header: %w", err)
	}
	var hm map[string]json.RawMessage
	if err := json.Unmarshal(hb, &hm); err != nil {
		return nil, fmt.Errorf("%w: JWE header is not an object", ErrMalformed)
	}
	if err := exactKeys(hm, "alg", "enc", "p2c", "p2s"); err != nil {
		return nil, fmt.Errorf("%w: JWE header: %v", ErrMalformed, err)
	}
	var h struct {
		Alg string `json:"alg"`
		Enc string `json:"enc"`
		P2C int64  `json:"p2c"`
		P2S string `json:"p2s"`
	}
	if err := json.Unmarshal(hb, &h); err != nil {
		return nil, fmt.Errorf("%w: JWE header: %v", ErrMalformed, err)
	}
	if h.Alg != string(keyAlg) || h.Enc != string(encAlg) {
		return nil, fmt.Errorf("%w: JWE uses %s/%s, want %s/%s", ErrMalformed, h.Alg, h.Enc, keyAlg, encAlg)
	}
	if h.P2C < int64(minPBES2Count) {
		return nil, fmt.Errorf("%w: %d PBES2 iterations, at least %d required", ErrWeakEncryption, h.P2C, minPBES2Count)
	}
	if h.P2C > MaxPBES2Count {
		return nil, fmt.Errorf("%w: %d PBES2 iterations, at most %d accepted", ErrMalformed, h.P2C, MaxPBES2Count)
	}
	if salt, err := base64.RawURLEncoding.DecodeString(h.P2S); err != nil || len(salt) < 8 {
		return nil, fmt.Errorf("%w: PBES2 salt must be at least 8 bytes", ErrWeakEncryption)
	}
	obj, err := jose.ParseEncryptedCompact(compact, []jose.KeyAlgorithm{keyAlg}, []jose.ContentEncryption{encAlg})
	if err != nil {
		return nil, fmt.Errorf("%w: JWE: %v", ErrMalformed, err)
	}
	plain, err := obj.Decrypt([]byte(passphrase))
	if err != nil {
		return nil, ErrWrongPassphrase
	}
	return plain, nil
}

// exactKeys reports whether m has exactly the given keys.
func exactKeys[V any](m map[string]V, keys ...string) error {
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			return fmt.Errorf("missing %q", k)
		}
	}
	if len(m) != len(keys) {
		for k := range m {
			if !slices.Contains(keys, k) {
				return fmt.Errorf("unexpected member %q", truncate([]byte(k)))
			}
		}
	}
	return nil
}

// truncate shortens outside input quoted in an error message.
func truncate(b []byte) string {
	const n = 64
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
