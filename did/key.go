package did

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"

	"github.com/btcsuite/btcutil/base58"
	ariesdid "github.com/hyperledger/aries-framework-go/pkg/doc/did"
	"github.com/hyperledger/aries-framework-go/pkg/vdr/fingerprint"
)

// Key is a newly created did:key identity: the DID and its Ed25519 private key.
type Key struct {
	DID     string
	KeyID   string // DID URL of the verification method, did:key:z…#z…
	Private ed25519.PrivateKey
}

// NewKey creates a fresh Ed25519 did:key.
func NewKey() (*Key, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate Ed25519 key: %w", err)
	}
	d, kid := KeyDIDFromPublic(pub)
	return &Key{DID: d, KeyID: kid, Private: priv}, nil
}

// KeyFromPrivate rebuilds a Key from a stored Ed25519 private key.
func KeyFromPrivate(priv ed25519.PrivateKey) (*Key, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("ed25519 private key has %d bytes, want %d", len(priv), ed25519.PrivateKeySize)
	}
	d, kid := KeyDIDFromPublic(priv.Public().(ed25519.PublicKey))
	return &Key{DID: d, KeyID: kid, Private: priv}, nil
}

// KeyDIDFromPublic returns the did:key DID and verification method id of an
// Ed25519 public key.
func KeyDIDFromPublic(pub ed25519.PublicKey) (didKey, keyID string) {
	return fingerprint.CreateDIDKey(pub)
}

func ed25519FromBase58(typ, s string) (ed25519.PublicKey, error) {
	switch typ {
	case "Ed25519VerificationKey2018", "Ed25519VerificationKey2020":
	default:
		return nil, fmt.Errorf("unsupported base58 key type %q", typ)
	}
	b := base58.Decode(s)
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("ed25519 public key has %d bytes, want %d", len(b), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// fromAries converts a document resolved by the aries VDRs into ours.
func fromAries(doc *ariesdid.Doc) (*Document, error) {
	out := &Document{
		Context: []string{ContextV1},
		ID:      doc.ID,
	}
	out.AlsoKnownAs = append(out.AlsoKnownAs, doc.AlsoKnownAs...)
	for _, vm := range doc.VerificationMethod {
		v := VerificationMethod{ID: absID(doc.ID, vm.ID), Type: vm.Type, Controller: vm.Controller}
		if j := vm.JSONWebKey(); j != nil {
			k, err := jwkFromPublic(j.Key)
			if err != nil {
				return nil, fmt.Errorf("verification method %s: %w", vm.ID, err)
			}
			v.PublicKeyJWK = k
			v.key = j.Key
		} else {
			k, err := ed25519FromRaw(vm.Type, vm.Value)
			if err != nil {
				// Keys we cannot use (X25519 key agreement, BLS) are skipped.
				continue
			}
			v.PublicKeyBase58 = base58.Encode(k)
			v.key = k
		}
		if v.Controller == "" {
			v.Controller = doc.ID
		}
		out.VerificationMethod = append(out.VerificationMethod, v)
	}
	for _, a := range doc.Authentication {
		out.Authentication = append(out.Authentication, absID(doc.ID, a.VerificationMethod.ID))
	}
	for _, a := range doc.AssertionMethod {
		out.AssertionMethod = append(out.AssertionMethod, absID(doc.ID, a.VerificationMethod.ID))
	}
	for _, s := range doc.Service {
		ep, _ := s.ServiceEndpoint.URI()
		out.Service = append(out.Service, Service{ID: s.ID, Type: fmt.Sprint(s.Type), ServiceEndpoint: ep})
	}
	return out, nil
}

func ed25519FromRaw(typ string, b []byte) (ed25519.PublicKey, error) {
	switch typ {
	case "Ed25519VerificationKey2018", "Ed25519VerificationKey2020":
	default:
		return nil, fmt.Errorf("unsupported key type %q", typ)
	}
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("ed25519 public key has %d bytes", len(b))
	}
	return ed25519.PublicKey(b), nil
}

func absID(docID, id string) string {
	if len(id) > 0 && id[0] == '#' {
		return docID + id
	}
	return id
}
