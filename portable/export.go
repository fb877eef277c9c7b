package portable

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/cryptosigner"

	"github.com/onecommons/commonsid/access"
	"github.com/onecommons/commonsid/did"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/privacy"
)

// Encryption parameters of the secrets.
const (
	// DefaultPBES2Count is the PBES2 iteration count (p2c) written by
	// default, and the least one accepted.
	DefaultPBES2Count = 210000
	// MaxPBES2Count is the largest iteration count accepted, which bounds the
	// work a hostile file can ask of a reader.
	MaxPBES2Count = 1000000
	// MinPassphrase is the least number of characters of a passphrase.
	MinPassphrase = 12
	// saltSize is the size of the random PBES2 salt input (p2s).
	saltSize = 16
	// SecretSize is the size of the Ed25519 seed and of the pairwise secret.
	SecretSize = 32
)

const (
	keyAlg = jose.PBES2_HS512_A256KW
	encAlg = jose.A256GCM
)

// minPBES2Count is the least iteration count Export writes and Open accepts.
// Only this package's tests lower it, to keep them fast.
var minPBES2Count = DefaultPBES2Count

// ErrShortPassphrase reports a passphrase shorter than MinPassphrase
// characters.
var ErrShortPassphrase = fmt.Errorf("passphrase must have at least %d characters", MinPassphrase)

// Input is everything an export needs; the caller loads it from the stores.
type Input struct {
	Account *identity.Account // status, handle, profile, password hash
	// DIDKey is the custodial key (private): for a did:key account its
	// did:key, for a did:webvh account the key under the log's current DID
	// (KeyID its verification method there).
	DIDKey *did.Key
	// DIDLog and DIDWitness are, for a did:webvh account, its log
	// (did.jsonl) and its did-witness.json (nil when none); nil for a
	// did:key account.
	DIDLog, DIDWitness []byte
	PairwiseSecret     []byte
	Settings           *privacy.Settings // nil: the defaults
	Consents           []ConsentRecord   // privacy.Consent plus Issuer, FamilySector, Sector
	Passkeys           []identity.Passkey
	// PasskeyUserHandle is the account's WebAuthn user handle, if any.
	PasskeyUserHandle []byte
	Activity          []*privacy.Activity
	Access            *access.Grant // the contribution grant, nil when none
	IncludePassword   bool
	Passphrase        string        // at least MinPassphrase characters; refused otherwise
	Issuer            string        // the exporting cloud
	CloudKeyID        string        // the cloud's did:web DID URL for its signing key
	CloudKey          crypto.Signer // the cloud's signing key
	Now               time.Time     // zero: the current time

	// PBES2Count is the iteration count of the secrets' encryption; zero
	// means DefaultPBES2Count. Lower counts are refused.
	PBES2Count int
}

// Export builds, encrypts and signs the export file of an account.
func Export(in Input) ([]byte, error) {
	doc, err := buildDocument(in)
	if err != nil {
		return nil, err
	}
	payload, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("export: marshal document: %w", err)
	}
	file, err := sign(payload, in.DIDKey.Private, in.DIDKey.KeyID, in.CloudKey, in.CloudKeyID)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	return file, nil
}

func buildDocument(in Input) (*Document, error) {
	if err := in.validate(); err != nil {
		return nil, err
	}
	count := in.PBES2Count
	if count == 0 {
		count = DefaultPBES2Count
	}
	now := in.Now
	if now.IsZero() {
		now = time.Now()
	}
	cloudDID, _ := did.WebDID(in.Issuer) // checked by validate
	a := in.Account
	var didDoc *did.Document
	var log *embeddedLog
	var err error
	if in.DIDLog != nil {
		if log, err = verifyEmbeddedLog(a.DID, in.DIDLog, in.DIDWitness); err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
		didDoc = log.doc
	} else if didDoc, err = (&did.Resolver{}).Resolve(context.Background(), a.DID); err != nil {
		return nil, fmt.Errorf("export: resolve account DID: %w", err)
	}
	settings := in.Settings
	if settings == nil {
		settings = privacy.DefaultSettings()
	}
	doc := &Document{
		Format:     Format,
		ExportedAt: now.UTC(),
		Issuer:     in.Issuer,
		CloudDID:   cloudDID,
		Account: Account{
			DID: a.DID, Handle: a.Handle, Name: a.Name, Email: a.Email, EmailVerified: a.EmailVerified,
			Status: a.Status, HomeIssuer: a.HomeIssuer, CreatedAt: a.CreatedAt.UTC(), UpdatedAt: a.UpdatedAt.UTC(),
		},
		DIDDocument:     didDoc,
		PrivacySettings: settings,
		Consents:        []Consent{},
		Passkeys:        []Passkey{},
		Activity:        []Activity{},
	}
	if len(in.PasskeyUserHandle) > 0 {
		doc.PasskeyUserHandle = in.PasskeyUserHandle
	}
	doc.Access = exportAccess(in.Access)
	if log != nil {
		if k := in.DIDKey; k.DID != log.res.DID {
			return nil, fmt.Errorf("export: the custodial key is under %s, the log's current DID is %s", k.DID, log.res.DID)
		}
		pub, err := didDoc.PublicKey(in.DIDKey.KeyID)
		if epub, ok := pub.(ed25519.PublicKey); err != nil || !ok || !epub.Equal(in.DIDKey.Private.Public()) {
			return nil, fmt.Errorf("export: %s is not the custodial key's verification method in the log's current document", in.DIDKey.KeyID)
		}
		doc.DIDLog, doc.DIDLogVersion = string(in.DIDLog), log.res.Metadata.VersionNumber
		if len(in.DIDWitness) > 0 {
			if !json.Valid(in.DIDWitness) {
				return nil, errors.New("export: the witness file is not JSON")
			}
			doc.DIDWitness = json.RawMessage(in.DIDWitness)
		}
	}
	if in.IncludePassword {
		doc.Account.PasswordHash = a.PasswordHash
	}
	for _, c := range in.Consents {
		doc.Consents = append(doc.Consents, Consent{
			Issuer: c.Issuer, ClientID: c.ClientID, FamilySector: c.FamilySector, Sector: c.Sector,
			SubjectSector: c.SubjectSector, Scopes: nonNil(c.Scopes), Claims: nonNil(c.Claims),
			GrantedAt: c.GrantedAt.UTC(), UpdatedAt: c.UpdatedAt.UTC(), ExpiresAt: utcPtr(c.ExpiresAt),
		})
	}
	for _, p := range in.Passkeys {
		doc.Passkeys = append(doc.Passkeys, Passkey{
			CredentialID: p.ID, Name: p.Name, PublicKey: p.PublicKey, AAGUID: nonNil(p.AAGUID),
			SignCount: p.SignCount, Transports: nonNil(p.Transports),
			AttestationType: p.AttestationType, AttestationFormat: p.AttestationFormat, Attachment: p.Attachment,
			UserVerified: p.UserVerified, BackupEligible: p.BackupEligible, BackupState: p.BackupState,
			CreatedAt: p.CreatedAt.UTC(), LastUsedAt: utcPtr(p.LastUsedAt),
		})
	}
	for _, e := range in.Activity {
		if e == nil {
			continue
		}
		doc.Activity = append(doc.Activity, Activity{
			ID: e.ID, At: e.At.UTC(), Kind: e.Kind, ClientID: e.ClientID, Detail: e.Detail,
			IP: e.IP, UserAgent: e.UserAgent,
		})
	}
	if doc.Secrets.DIDKey, err = encryptSecret(in.DIDKey.Private.Seed(), in.Passphrase, count); err != nil {
		return nil, fmt.Errorf("export: encrypt DID key: %w", err)
	}
	if doc.Secrets.PairwiseSecret, err = encryptSecret(in.PairwiseSecret, in.Passphrase, count); err != nil {
		return nil, fmt.Errorf("export: encrypt pairwise secret: %w", err)
	}
	return doc, nil
}

// validate reports every problem of the input at once.
func (in *Input) validate() error {
	var errs []error
	if utf8.RuneCountInString(in.Passphrase) < MinPassphrase {
		errs = append(errs, ErrShortPassphrase)
	}
	if in.PBES2Count != 0 && (in.PBES2Count < minPBES2Count || in.PBES2Count > MaxPBES2Count) {
		errs = append(errs, fmt.Errorf("PBES2 count %d outside %d to %d", in.PBES2Count, minPBES2Count, MaxPBES2Count))
	}
	if in.Account == nil {
		errs = append(errs, errors.New("no account"))
	}
	if in.DIDKey == nil || len(in.DIDKey.Private) != ed25519.PrivateKeySize {
		errs = append(errs, errors.New("no Ed25519 DID key"))
	} else if in.DIDLog != nil {
		// A did:webvh account: the key is checked against its log
		// (buildDocument).
		if !strings.HasPrefix(in.DIDKey.KeyID, in.DIDKey.DID+"#") {
			errs = append(errs, fmt.Errorf("DID key id %q is not a DID URL of %s", in.DIDKey.KeyID, in.DIDKey.DID))
		}
	} else if k, err := did.KeyFromPrivate(in.DIDKey.Private); err != nil {
		errs = append(errs, fmt.Errorf("DID key: %w", err))
	} else {
		if in.Account != nil && k.DID != in.Account.DID {
			errs = append(errs, errors.New("the DID key does not belong to the account's DID"))
		}
		if in.DIDKey.KeyID != k.KeyID {
			errs = append(errs, fmt.Errorf("DID key id %q, want %q", in.DIDKey.KeyID, k.KeyID))
		}
	}
	if len(in.PairwiseSecret) != SecretSize {
		errs = append(errs, fmt.Errorf("pairwise secret has %d bytes, want %d", len(in.PairwiseSecret), SecretSize))
	}
	cloudDID, err := did.WebDID(in.Issuer)
	if err != nil {
		errs = append(errs, err)
	} else if d, _, _ := strings.Cut(in.CloudKeyID, "#"); d != cloudDID || !strings.Contains(in.CloudKeyID, "#") {
		errs = append(errs, fmt.Errorf("cloud key id %q is not a DID URL of %s", in.CloudKeyID, cloudDID))
	}
	if in.CloudKey == nil {
		errs = append(errs, errors.New("no cloud signing key"))
	} else if alg, err := did.AlgForKey(in.CloudKey.Public()); err != nil {
		errs = append(errs, fmt.Errorf("cloud key: %w", err))
	} else if !slices.Contains(signatureAlgs, alg) {
		errs = append(errs, fmt.Errorf("cloud key algorithm %s is not allowed", alg))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

// signatureAlgs are the JWS algorithms of an export file; never "none" or
// HMAC.
var signatureAlgs = []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256, jose.ES384, jose.RS256, jose.PS256}

// sign makes the JWS JSON General Serialization of payload with the account
// signature first and the cloud signature second.
func sign(payload []byte, accountKey crypto.Signer, accountKID string, cloudKey crypto.Signer, cloudKID string) ([]byte, error) {
	var keys []jose.SigningKey
	for _, k := range []struct {
		key crypto.Signer
		kid string
	}{{accountKey, accountKID}, {cloudKey, cloudKID}} {
		alg, err := did.AlgForKey(k.key.Public())
		if err != nil {
			return nil, err
		}
		keys = append(keys, jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: joseKey(k.key), KeyID: k.kid}})
	}
	s, err := jose.NewMultiSigner(keys, (&jose.SignerOptions{}).WithType(SignatureType))
	if err != nil {
		return nil, fmt.Errorf("signer: %w", err)
	}
	obj, err := s.Sign(payload)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return []byte(obj.FullSerialize()), nil
}

// joseKey passes the key types go-jose knows as they are and wraps any other
// signer (a hardware or remote key).
func joseKey(k crypto.Signer) any {
	switch k.(type) {
	case ed25519.PrivateKey, *ecdsa.PrivateKey, *rsa.PrivateKey:
		return k
	}
	return cryptosigner.Opaque(k)
}

// encryptSecret makes the compact JWE of secret under passphrase with a
// fresh random salt.
func encryptSecret(secret []byte, passphrase string, count int) (string, error) {
	salt := make([]byte, saltSize)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("salt: %w", err)
	}
	enc, err := jose.NewEncrypter(encAlg, jose.Recipient{
		Algorithm: keyAlg, Key: []byte(passphrase), PBES2Count: count, PBES2Salt: salt,
	}, nil)
	if err != nil {
		return "", fmt.Errorf("encrypter: %w", err)
	}
	obj, err := enc.Encrypt(secret)
	if err != nil {
		return "", fmt.Errorf("encrypt: %w", err)
	}
	return obj.CompactSerialize()
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
