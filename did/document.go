package did

import (
	"crypto"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/go-jose/go-jose/v4"
)

// ContextV1 is the JSON-LD context of DID Core documents.
const ContextV1 = "https://www.w3.org/ns/did/v1"

// ContextJWS2020 is the JSON-LD context for JsonWebKey2020 verification methods.
const ContextJWS2020 = "https://w3id.org/security/suites/jws-2020/v1"

// Document is a DID document (W3C DID Core §5).
type Document struct {
	Context            []string             `json:"@context"`
	ID                 string               `json:"id"`
	AlsoKnownAs        []string             `json:"alsoKnownAs,omitempty"`
	Controller         string               `json:"controller,omitempty"`
	VerificationMethod []VerificationMethod `json:"verificationMethod"`
	Authentication     []string             `json:"authentication,omitempty"`
	AssertionMethod    []string             `json:"assertionMethod,omitempty"`
	Service            []Service            `json:"service,omitempty"`
}

// VerificationMethod is one public key of a DID document.
type VerificationMethod struct {
	ID              string           `json:"id"`
	Type            string           `json:"type"`
	Controller      string           `json:"controller"`
	PublicKeyJWK    *jose.JSONWebKey `json:"publicKeyJwk,omitempty"`
	PublicKeyBase58 string           `json:"publicKeyBase58,omitempty"`

	// key is the parsed public key.
	key crypto.PublicKey
}

// Service is a service endpoint of a DID document.
type Service struct {
	ID              string `json:"id"`
	Type            string `json:"type"`
	ServiceEndpoint string `json:"serviceEndpoint"`
}

// ErrNoVerificationMethod reports that a DID document has no usable key with
// the requested id.
var ErrNoVerificationMethod = errors.New("no such verification method in DID document")

// PublicKey returns the public key of the verification method id (a full DID
// URL, or a bare fragment such as "#key-1"). With id empty, the document must
// have exactly one verification method.
func (d *Document) PublicKey(id string) (crypto.PublicKey, error) {
	if id == "" {
		if len(d.VerificationMethod) != 1 {
			return nil, fmt.Errorf("%w: key id required, document %s has %d keys", ErrNoVerificationMethod, d.ID, len(d.VerificationMethod))
		}
		return d.VerificationMethod[0].PublicKey()
	}
	for i := range d.VerificationMethod {
		vm := &d.VerificationMethod[i]
		if vm.ID == id || (len(id) > 0 && id[0] == '#' && vm.ID == d.ID+id) {
			return vm.PublicKey()
		}
	}
	return nil, fmt.Errorf("%w: %s", ErrNoVerificationMethod, id)
}

// PublicKey returns the method's parsed public key.
func (vm *VerificationMethod) PublicKey() (crypto.PublicKey, error) {
	if vm.key != nil {
		return vm.key, nil
	}
	if vm.PublicKeyJWK != nil && vm.PublicKeyJWK.Key != nil {
		if !vm.PublicKeyJWK.IsPublic() {
			return nil, fmt.Errorf("verification method %s holds a private key", vm.ID)
		}
		return vm.PublicKeyJWK.Key, nil
	}
	if vm.PublicKeyBase58 != "" {
		k, err := ed25519FromBase58(vm.Type, vm.PublicKeyBase58)
		if err != nil {
			return nil, fmt.Errorf("verification method %s: %w", vm.ID, err)
		}
		return k, nil
	}
	return nil, fmt.Errorf("verification method %s has no supported public key", vm.ID)
}

// JSON returns the document's JSON form.
func (d *Document) JSON() ([]byte, error) {
	return json.MarshalIndent(d, "", "  ")
}
