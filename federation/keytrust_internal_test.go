package federation

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/onecommons/commonsid/did"
)

type testKey struct {
	kid  string
	priv *ecdsa.PrivateKey
}

func newTestKey(t *testing.T, kid string) testKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{kid, k}
}

func (k testKey) public() jose.JSONWebKey {
	return jose.JSONWebKey{Key: &k.priv.PublicKey, KeyID: k.kid, Algorithm: string(jose.ES256), Use: "sig"}
}

func publicSet(ks ...testKey) jose.JSONWebKeySet {
	var set jose.JSONWebKeySet
	for _, k := range ks {
		set.Keys = append(set.Keys, k.public())
	}
	return set
}

// cloudDoc is a did:web document holding ks.
func cloudDoc(t *testing.T, issuer string, ks ...jose.JSONWebKey) *did.Document {
	t.Helper()
	id, err := did.WebDID(issuer)
	if err != nil {
		t.Fatal(err)
	}
	doc := &did.Document{ID: id}
	for i := range ks {
		doc.VerificationMethod = append(doc.VerificationMethod, did.VerificationMethod{ID: id + "#" + ks[i].KeyID,
			Type: "JsonWebKey2020", Controller: id, PublicKeyJWK: &ks[i]})
	}
	// As a follower reads it: parsed from JSON.
	raw, _ := json.Marshal(doc)
	var parsed did.Document
	if err := json.Unmarshal(raw, &parsed); err != nil {
		t.Fatal(err)
	}
	return &parsed
}

// statement signs payload with each of by, with typ.
func statement(t *testing.T, typ string, payload any, by ...testKey) []byte {
	t.Helper()
	raw, _ := json.Marshal(payload)
	var sks []jose.SigningKey
	for _, k := range by {
		sks = append(sks, jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: k.priv, KeyID: k.kid}})
	}
	s, err := jose.NewMultiSigner(sks, (&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
	if err != nil {
		t.Fatal(err)
	}
	obj, err := s.Sign(raw)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(obj.FullSerialize())
}

// TestVerifyKeySet: a key-set statement is accepted only when a key
// pinned for the peer signed it, with the right typ, issuer and a recent
// iat, and every key of it is in the peer's DID document with the same
// material; forged, unpinned, unlisted and oversized statements are
// refused.
func TestVerifyKeySet(t *testing.T) {
	const issuer = "https://a.example"
	now := time.Now()
	old, next, stranger := newTestKey(t, "old"), newTestKey(t, "next"), newTestKey(t, "stranger")
	imposter := newTestKey(t, "next") // same kid as next, other material
	p := &Peer{Issuer: issuer, JWKS: publicSet(old)}
	good := keySetPayload{Issuer: issuer, Keys: publicSet(old, next).Keys, IssuedAt: now.Unix()}
	doc := cloudDoc(t, issuer, old.public(), next.public())

	forged := func() []byte {
		raw := statement(t, KeySetType, good, old)
		var js map[string]any
		json.Unmarshal(raw, &js)
		sig := js // one signature: the flattened serialization
		if sigs, ok := js["signatures"].([]any); ok {
			sig = sigs[0].(map[string]any)
		}
		b := []byte(sig["signature"].(string))
		if b[5] == 'A' {
			b[5] = 'B'
		} else {
			b[5] = 'A'
		}
		sig["signature"] = string(b)
		out, _ := json.Marshal(js)
		return out
	}
	// A payload with another's keys swapped in, keeping the signature.
	swapped := func() []byte {
		raw := statement(t, KeySetType, good, old)
		var js map[string]any
		json.Unmarshal(raw, &js)
		other, _ := json.Marshal(keySetPayload{Issuer: issuer, Keys: publicSet(stranger).Keys, IssuedAt: now.Unix()})
		js["payload"] = base64.RawURLEncoding.EncodeToString(other)
		out, _ := json.Marshal(js)
		return out
	}
	compact := func() []byte {
		raw, _ := json.Marshal(good)
		s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: old.priv, KeyID: old.kid}},
			(&jose.SignerOptions{}).WithType(KeySetType))
		obj, _ := s.Sign(raw)
		c, _ := obj.CompactSerialize()
		return []byte(c)
	}
	manyKeys := good
	for i := range maxKeySetKeys {
		manyKeys.Keys = append(manyKeys.Keys, newTestKey(t, "k"+strings.Repeat("x", i)).public())
	}
	big := good
	big.Issuer = issuer + "/" + strings.Repeat("x", maxKeySet)

	for _, tc := range []struct {
		name string
		raw  []byte
		doc  *did.Document
		want string // "" accepts
	}{
		{"signed by the pinned key and the new one", statement(t, KeySetType, good, next, old), doc, ""},
		{"signed by the pinned key only", statement(t, KeySetType, good, old), doc, ""},
		{"forged signature", forged(), doc, "not signed by a key pinned here"},
		{"payload swapped under a good signature", swapped(), doc, "not signed by a key pinned here"},
		{"signed by an unpinned key only", statement(t, KeySetType, good, next), doc, "not signed by a key pinned here"},
		{"signed by a stranger claiming the pinned kid", statement(t, KeySetType, good, testKey{"old", stranger.priv}), doc, "not signed by a key pinned here"},
		{"a key not in the DID document", statement(t, KeySetType, good, old), cloudDoc(t, issuer, old.public()), "not in its DID document"},
		{"a key that differs from the DID document", statement(t, KeySetType, good, old), cloudDoc(t, issuer, old.public(), imposter.public()), "differs from the one in its DID document"},
		{"oversize", append(statement(t, KeySetType, good, old), make([]byte, maxKeySet)...), doc, "larger than"},
		{"oversize payload", statement(t, KeySetType, big, old), doc, "larger than"},
		{"too many keys", statement(t, KeySetType, manyKeys, old), doc, "keys (1 to"},
		{"wrong typ", statement(t, "JWT", good, old), doc, "typ"},
		{"another issuer", statement(t, KeySetType, keySetPayload{Issuer: "https://b.example", Keys: good.Keys, IssuedAt: now.Unix()}, old), doc, "for issuer"},
		{"stale", statement(t, KeySetType, keySetPayload{Issuer: issuer, Keys: good.Keys, IssuedAt: now.Add(-time.Hour).Unix()}, old), doc, "not recent"},
		{"from the future", statement(t, KeySetType, keySetPayload{Issuer: issuer, Keys: good.Keys, IssuedAt: now.Add(time.Hour).Unix()}, old), doc, "not recent"},
		{"no keys", statement(t, KeySetType, keySetPayload{Issuer: issuer, IssuedAt: now.Unix()}, old), doc, "keys (1 to"},
		{"compact serialization", compact(), doc, "JSON serialization"},
		{"not a JWS", []byte(`{"keys":[]}`), doc, "JSON serialization"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set, by, err := verifyKeySet(p, tc.raw, tc.doc, now)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if by != "old" || !sameKeys(set, &jose.JSONWebKeySet{Keys: good.Keys}) {
					t.Fatalf("vouched by %q: %v", by, kids(set))
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted (vouched by %q: %v), want %q", by, kids(set), tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want %q", err, tc.want)
			}
		})
	}
}
