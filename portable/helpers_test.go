package portable

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/onecommons/commonsid/did"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/privacy"
)

// testPBES2Count is the iteration count of most test files; the tests lower
// the floor to it with fastKDF.
const testPBES2Count = 1000

const testPassphrase = "correct horse battery staple"

var testNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// fastKDF lowers the PBES2 floor for one test.
func fastKDF(tb testing.TB) {
	old := minPBES2Count
	minPBES2Count = testPBES2Count
	tb.Cleanup(func() { minPBES2Count = old })
}

// cloud is an exporting cloud: its issuer, did:web, signing key and a
// resolver that reaches its DID document.
type cloud struct {
	Issuer   string
	DID      string
	KeyID    string
	Key      crypto.Signer
	Doc      *did.Document
	Resolver *did.Resolver
}

func newCloudKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// cloudDocument is the did:web document of a cloud with one ES256 key.
func cloudDocument(tb testing.TB, cloudDID, frag string, key *ecdsa.PrivateKey) *did.Document {
	tb.Helper()
	id := cloudDID + "#" + frag
	return &did.Document{
		Context: []string{did.ContextV1, did.ContextJWS2020}, ID: cloudDID,
		VerificationMethod: []did.VerificationMethod{{
			ID: id, Type: "JsonWebKey2020", Controller: cloudDID,
			PublicKeyJWK: &jose.JSONWebKey{Key: &key.PublicKey, KeyID: frag, Algorithm: "ES256", Use: "sig"},
		}},
		AssertionMethod: []string{id},
	}
}

// httpCloud serves a cloud's did:web document from an httptest.Server on
// 127.0.0.1, which the resolver reaches over plain HTTP.
func httpCloud(tb testing.TB) *cloud {
	tb.Helper()
	var docJSON []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/did.json" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/did+json")
		w.Write(docJSON)
	}))
	tb.Cleanup(srv.Close)
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		tb.Fatalf("test server at %s, want 127.0.0.1", srv.URL)
	}
	c := newCloud(tb, srv.URL, newCloudKey(tb))
	var err error
	if docJSON, err = json.Marshal(c.Doc); err != nil {
		tb.Fatal(err)
	}
	c.Resolver = &did.Resolver{Timeout: 5 * time.Second}
	return c
}

// memCloud is a cloud whose did:web document is served from memory, for
// the fuzz target and benchmarks: nothing goes to the network.
func memCloud(tb testing.TB, issuer string, key *ecdsa.PrivateKey) *cloud {
	tb.Helper()
	c := newCloud(tb, issuer, key)
	docJSON, err := json.Marshal(c.Doc)
	if err != nil {
		tb.Fatal(err)
	}
	c.Resolver = &did.Resolver{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
		body, status := docJSON, http.StatusOK
		if req.URL.Path != "/.well-known/did.json" {
			body, status = []byte("not found"), http.StatusNotFound
		}
		return &http.Response{StatusCode: status, Body: io.NopCloser(bytes.NewReader(body)),
			Header: http.Header{"Content-Type": {"application/did+json"}}, Request: req}, nil
	})}
	return c
}

func newCloud(tb testing.TB, issuer string, key *ecdsa.PrivateKey) *cloud {
	tb.Helper()
	cloudDID, err := did.WebDID(issuer)
	if err != nil {
		tb.Fatal(err)
	}
	return &cloud{Issuer: issuer, DID: cloudDID, KeyID: cloudDID + "#k1", Key: key, Doc: cloudDocument(tb, cloudDID, "k1", key)}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func newAccountKey(tb testing.TB) *did.Key {
	tb.Helper()
	k, err := did.NewKey()
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func ptr[T any](v T) *T { return &v }

// testInput is an export of a full account from c.
func testInput(tb testing.TB, c *cloud, key *did.Key, activity int) Input {
	tb.Helper()
	t0 := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	secret := bytes.Repeat([]byte{7}, SecretSize)
	acct := &identity.Account{
		DID: key.DID, Handle: "alice", Email: "alice@example.org", EmailVerified: true, Name: "Alice Liddell",
		PasswordHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
		Status:       identity.StatusActive, HomeIssuer: c.Issuer, CreatedAt: t0, UpdatedAt: t0.Add(time.Hour),
	}
	settings := &privacy.Settings{
		Version: 3, SubjectMode: "pairwise", SubjectOverrides: map[string]string{"blog": "public"},
		ClaimPolicy: map[string]string{"email": privacy.PolicyAllow}, ForkPolicy: privacy.PolicyNever,
		ConsentLifetimeDays: 90, FederationSharing: "public_profile", ActivityRetentionDays: 730, Discoverable: true,
	}
	consents := []ConsentRecord{
		{
			Consent: privacy.Consent{AccountDID: key.DID, ClientID: "blog", Scopes: []string{"openid", "profile"},
				Claims: []string{"name"}, SubjectSector: "blog.example", GrantedAt: t0, UpdatedAt: t0.Add(time.Minute)},
			Issuer: c.Issuer, Sector: "blog.example",
		},
		{
			Consent: privacy.Consent{AccountDID: key.DID, ClientID: "blog-fork", Scopes: []string{"openid", "email"},
				Claims: []string{"email", "email_verified"}, SubjectSector: "blog.example", GrantedAt: t0,
				UpdatedAt: t0, ExpiresAt: ptr(t0.Add(90 * 24 * time.Hour))},
			Issuer: c.Issuer, FamilySector: "blog.example", Sector: "fork.example",
		},
	}
	passkeys := []identity.Passkey{{
		ID: []byte("credential-1"), AccountDID: key.DID, Name: "Laptop", PublicKey: []byte{0xa5, 1, 2, 3, 0x26},
		AttestationType: "none", AttestationFormat: "packed", AAGUID: bytes.Repeat([]byte{0xad}, 16), SignCount: 42,
		Transports: []string{"internal", "hybrid"}, Attachment: "platform", UserVerified: true,
		BackupEligible: true, BackupState: true, CreatedAt: t0, LastUsedAt: ptr(t0.Add(48 * time.Hour)),
	}}
	var log []*privacy.Activity
	for i := range activity {
		log = append(log, &privacy.Activity{
			ID: int64(i + 1), AccountDID: key.DID, At: t0.Add(time.Duration(i) * time.Minute), Kind: privacy.ActivityLogin,
			ClientID: "blog", Detail: map[string]any{"method": "passkey", "n": float64(i)},
			IP: "192.0.2.1", UserAgent: "Mozilla/5.0",
		})
	}
	return Input{
		Account: acct, DIDKey: key, PairwiseSecret: secret, Settings: settings, Consents: consents,
		Passkeys: passkeys, Activity: log, IncludePassword: true, Passphrase: testPassphrase,
		Issuer: c.Issuer, CloudKeyID: c.KeyID, CloudKey: c.Key, Now: testNow,
	}
}

// forge signs a payload with any keys, as an attacker or a buggy exporter
// could.
func forge(tb testing.TB, payload []byte, accountKey crypto.Signer, accountKID string, cloudKey crypto.Signer, cloudKID string) []byte {
	tb.Helper()
	f, err := sign(payload, accountKey, accountKID, cloudKey, cloudKID)
	if err != nil {
		tb.Fatal(err)
	}
	return f
}

func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// jwsParts splits an export file into its members for tampering.
type jwsParts struct {
	Payload    string            `json:"payload"`
	Signatures []json.RawMessage `json:"signatures"`
}

func splitFile(tb testing.TB, file []byte) jwsParts {
	tb.Helper()
	var p jwsParts
	if err := json.Unmarshal(file, &p); err != nil {
		tb.Fatal(err)
	}
	return p
}

// badCase is an export file that Open must refuse with want.
type badCase struct {
	name       string
	file       []byte
	passphrase string
	maxSize    int64
	want       error
}

// fixture is one account exported from one cloud, and what it takes to
// build bad files of it.
type fixture struct {
	cloud *cloud
	key   *did.Key
	in    Input
	doc   *Document // the payload of file
	file  []byte    // a valid export, with testPBES2Count iterations
}

// newFixture exports an account with the floor lowered (see fastKDF).
func newFixture(tb testing.TB, c *cloud, key *did.Key) *fixture {
	tb.Helper()
	in := testInput(tb, c, key, 3)
	in.PBES2Count = testPBES2Count
	doc, err := buildDocument(in)
	if err != nil {
		tb.Fatal(err)
	}
	fx := &fixture{cloud: c, key: key, in: in, doc: doc}
	fx.file = fx.signDoc(tb, doc)
	return fx
}

// signDoc signs a document with the right keys.
func (fx *fixture) signDoc(tb testing.TB, d *Document) []byte {
	tb.Helper()
	return forge(tb, mustJSON(tb, d), fx.key.Private, fx.key.KeyID, fx.cloud.Key, fx.cloud.KeyID)
}

// edited returns a copy of the fixture's document changed by fn.
func (fx *fixture) edited(tb testing.TB, fn func(d *Document)) *Document {
	tb.Helper()
	var d Document
	if err := json.Unmarshal(mustJSON(tb, fx.doc), &d); err != nil {
		tb.Fatal(err)
	}
	fn(&d)
	return &d
}

// badFiles lists a file for each way an export can be refused.
func (fx *fixture) badFiles(tb testing.TB) []badCase {
	tb.Helper()
	valid := fx.file
	parts := splitFile(tb, valid)
	rejoin := func(p jwsParts) []byte { return mustJSON(tb, p) }
	payload, err := base64.RawURLEncoding.DecodeString(parts.Payload)
	if err != nil {
		tb.Fatal(err)
	}
	other := newAccountKey(tb)
	otherCloud := newCloudKey(tb)
	var cases []badCase
	add := func(name string, file []byte, want error) {
		cases = append(cases, badCase{name: name, file: file, passphrase: testPassphrase, want: want})
	}

	cases = append(cases, badCase{name: "oversized", file: valid, passphrase: testPassphrase, maxSize: int64(len(valid) - 1), want: ErrTooLarge})
	add("truncated", valid[:len(valid)/2], ErrMalformed)
	add("not JSON", []byte("this is not an export file"), ErrMalformed)
	add("empty", nil, ErrMalformed)
	add("JSON array", []byte(`[1,2]`), ErrMalformed)
	add("trailing data", append(append([]byte{}, valid...), []byte(" {}")...), ErrMalformed)
	add("compact JWS", []byte(`"eyJhbGciOiJFZERTQSJ9.e30.c2ln"`), ErrMalformed)
	add("payload not base64url", rejoin(jwsParts{Payload: "***", Signatures: parts.Signatures}), ErrMalformed)
	add("duplicate key in JWS", append([]byte(`{"payload":"e30",`), valid[1:]...), ErrDuplicateKey)
	{
		dup := append([]byte(`{"issuer":"https://evil.example",`), payload[1:]...)
		add("duplicate key in payload", fx.forgePayload(tb, dup), ErrDuplicateKey)
	}
	{
		dup := bytes.Replace(payload, []byte(`"handle":"alice"`), []byte(`"handle":"alice","email":"x@example.org"`), 1)
		add("duplicate key in nested object", fx.forgePayload(tb, dup), ErrDuplicateKey)
	}
	add("unknown version", fx.signDoc(tb, fx.edited(tb, func(d *Document) { d.Format = "commonsid.export/v2" })), ErrUnknownVersion)
	add("no version", fx.forgePayload(tb, []byte(`{"account":{}}`)), ErrUnknownVersion)
	{
		t := bytes.Replace(payload, []byte(`"handle":"alice"`), []byte(`"handle":"alicf"`), 1)
		p := parts
		p.Payload = base64.RawURLEncoding.EncodeToString(t)
		add("tampered payload", rejoin(p), ErrBadSignature)
	}
	add("signature by another key", forge(tb, payload, other.Private, fx.key.KeyID, fx.cloud.Key, fx.cloud.KeyID), ErrBadSignature)
	add("cloud signature by another key under its kid", forge(tb, payload, fx.key.Private, fx.key.KeyID, otherCloud, fx.cloud.KeyID), ErrBadSignature)
	{
		p := parts
		p.Signatures = p.Signatures[:1]
		add("only one signature", rejoin(p), ErrBadSignature)
		p.Signatures = []json.RawMessage{parts.Signatures[0], parts.Signatures[1], parts.Signatures[1]}
		add("three signatures", rejoin(p), ErrBadSignature)
		p.Signatures = []json.RawMessage{parts.Signatures[1], parts.Signatures[0]}
		add("signatures swapped", rejoin(p), ErrWrongKey)
	}
	{
		p := parts
		p.Signatures = []json.RawMessage{hmacSignature(tb, parts.Payload, fx.key.KeyID), parts.Signatures[1]}
		add("HMAC signature", rejoin(p), ErrBadSignature)
		var sig map[string]any
		json.Unmarshal(parts.Signatures[0], &sig)
		sig["header"] = map[string]any{"kid": fx.key.KeyID}
		p.Signatures = []json.RawMessage{mustJSON(tb, sig), parts.Signatures[1]}
		add("unprotected header", rejoin(p), ErrBadSignature)
	}
	add("account kid of another DID", forge(tb, payload, other.Private, other.KeyID, fx.cloud.Key, fx.cloud.KeyID), ErrWrongKey)
	{
		d := fx.edited(tb, func(d *Document) { d.DIDDocument.AlsoKnownAs = []string{"https://evil.example"} })
		add("DID document does not match the DID", fx.signDoc(tb, d), ErrWrongKey)
		od, err := (&did.Resolver{}).Resolve(context.Background(), other.DID)
		if err != nil {
			tb.Fatal(err)
		}
		d = fx.edited(tb, func(d *Document) { d.DIDDocument = od })
		add("DID document of another DID", fx.signDoc(tb, d), ErrWrongKey)
	}
	add("account DID not a did:key", fx.signDoc(tb, fx.edited(tb, func(d *Document) { d.Account.DID = fx.cloud.DID })), ErrWrongKey)
	add("wrong cloud", forge(tb, payload, fx.key.Private, fx.key.KeyID, otherCloud, fx.cloud.DID+"#k2"), ErrCloudSignature)
	add("cloud kid of another DID", forge(tb, payload, fx.key.Private, fx.key.KeyID, otherCloud, "did:web:evil.example#k1"), ErrCloudSignature)
	add("cloud_did not the did:web of issuer", fx.signDoc(tb, fx.edited(tb, func(d *Document) { d.Issuer = "https://other.example" })), ErrCloudSignature)
	cases = append(cases, badCase{name: "wrong passphrase", file: valid, passphrase: "not the passphrase at all", want: ErrWrongPassphrase})
	{
		jwe, err := encryptSecret(other.Private.Seed(), testPassphrase, testPBES2Count)
		if err != nil {
			tb.Fatal(err)
		}
		add("key does not match the DID", fx.signDoc(tb, fx.edited(tb, func(d *Document) { d.Secrets.DIDKey = jwe })), ErrKeyMismatch)
		d := fx.edited(tb, func(d *Document) {
			d.Secrets.DIDKey, d.Secrets.PairwiseSecret = d.Secrets.PairwiseSecret, d.Secrets.DIDKey
		})
		add("secrets swapped", fx.signDoc(tb, d), ErrKeyMismatch)
	}
	{
		jwe, err := encryptSecret(fx.key.Private.Seed(), testPassphrase, testPBES2Count-1)
		if err != nil {
			tb.Fatal(err)
		}
		add("too few PBES2 iterations", fx.signDoc(tb, fx.edited(tb, func(d *Document) { d.Secrets.DIDKey = jwe })), ErrWeakEncryption)
	}
	return cases
}

// forgePayload signs raw payload bytes with the right keys.
func (fx *fixture) forgePayload(tb testing.TB, payload []byte) []byte {
	tb.Helper()
	return forge(tb, payload, fx.key.Private, fx.key.KeyID, fx.cloud.Key, fx.cloud.KeyID)
}

// hmacSignature is an HS256 signature of the payload, which no export may
// carry.
func hmacSignature(tb testing.TB, payloadB64, kid string) json.RawMessage {
	tb.Helper()
	prot := base64.RawURLEncoding.EncodeToString(mustJSON(tb, map[string]string{"alg": "HS256", "kid": kid, "typ": SignatureType}))
	m := hmac.New(sha256.New, bytes.Repeat([]byte{1}, 32))
	m.Write([]byte(prot + "." + payloadB64))
	return mustJSON(tb, map[string]string{"protected": prot, "signature": base64.RawURLEncoding.EncodeToString(m.Sum(nil))})
}
