package portable

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/onecommons/commonsid/did"
	"github.com/onecommons/commonsid/did/webvh"
	"github.com/onecommons/commonsid/identity"
)

// webvhAccount is a did:webvh account as a home makes it: a genesis log
// signed by the custodial key, whose document lists that key as a
// Multikey method.
type webvhAccount struct {
	first string     // the account's DID (first DID)
	log   *webvh.Log // its log
	key   *did.Key   // the custodial key under the log's current DID
}

func newWebVHAccount(tb testing.TB, hostPath string, opts func(*webvh.CreateOptions)) *webvhAccount {
	tb.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	id := "did:webvh:{SCID}:" + hostPath + ":accounts:abcdefghijklmnopqrstuvwxyz"
	mk := webvh.Multikey(pub)
	doc := mustJSON(tb, map[string]any{
		"@context":           []string{did.ContextV1, "https://w3id.org/security/multikey/v1"},
		"id":                 id,
		"verificationMethod": []map[string]string{{"id": id + "#" + mk, "type": "Multikey", "controller": id, "publicKeyMultibase": mk}},
		"authentication":     []string{id + "#" + mk},
		"assertionMethod":    []string{id + "#" + mk},
	})
	o := webvh.CreateOptions{HostPath: hostPath + ":accounts:abcdefghijklmnopqrstuvwxyz", Document: doc,
		UpdateKeys: []ed25519.PublicKey{pub}, Portable: true, Time: time.Now().Add(-time.Hour), Signer: priv}
	if opts != nil {
		opts(&o)
	}
	l, err := webvh.Create(o)
	if err != nil {
		tb.Fatal(err)
	}
	res := l.Result()
	return &webvhAccount{first: res.DID, log: l, key: &did.Key{DID: res.DID, KeyID: res.DID + "#" + mk, Private: priv}}
}

// webvhInput is an export of the account from c.
func webvhInput(tb testing.TB, c *cloud, acct *webvhAccount, witness []byte) Input {
	tb.Helper()
	in := testInput(tb, c, newAccountKey(tb), 2)
	in.Account.DID = acct.first
	in.DIDKey, in.DIDLog, in.DIDWitness = acct.key, acct.log.Bytes(), witness
	in.PBES2Count = testPBES2Count
	return in
}

// signWebVH signs a document as the exporter does, with the account's
// custodial key under the log's current DID.
func signWebVH(tb testing.TB, c *cloud, acct *webvhAccount, d *Document) []byte {
	tb.Helper()
	return forge(tb, mustJSON(tb, d), acct.key.Private, acct.key.KeyID, c.Key, c.KeyID)
}

// downResolver is the resolver of a reader to whom the exporting cloud is
// unreachable.
func downResolver() *did.Resolver {
	return &did.Resolver{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
		return nil, errors.New("connection refused")
	})}
}

// TestWebVHExportRoundTrip: the export of a did:webvh account carries its
// log, is signed under the log's current DID, and opens without fetching
// the account's DID; after a move, under the new DID.
func TestWebVHExportRoundTrip(t *testing.T) {
	fastKDF(t)
	ctx := context.Background()
	c := memCloud(t, "https://cloud.example", newCloudKey(t))
	acct := newWebVHAccount(t, "cloud.example", nil)
	file, err := Export(webvhInput(t, c, acct, nil))
	if err != nil {
		t.Fatal(err)
	}
	op, err := Open(ctx, file, testPassphrase, VerifyOptions{Resolver: c.Resolver})
	if err != nil {
		t.Fatal(err)
	}
	d := op.Document
	if d.DIDLog != string(acct.log.Bytes()) || d.DIDLogVersion != 1 || d.Account.DID != acct.first || d.DIDDocument.ID != acct.first {
		t.Fatalf("document: log %d bytes, version %d, account %s, did_document %s", len(d.DIDLog), d.DIDLogVersion, d.Account.DID, d.DIDDocument.ID)
	}
	if op.Log == nil || op.Log.DID != acct.first || !op.LogWitnessed || op.CloudUnverified != "" {
		t.Fatalf("opened: log %v, witnessed %v, cloud %q", op.Log != nil, op.LogWitnessed, op.CloudUnverified)
	}
	if op.DIDKey.KeyID != acct.key.KeyID || !op.DIDKey.Private.Equal(acct.key.Private) {
		t.Fatalf("key %s", op.DIDKey.KeyID)
	}
	var h map[string]string
	sig := splitFile(t, file).Signatures[0]
	var s struct{ Protected string }
	json.Unmarshal(sig, &s)
	b, _ := base64.RawURLEncoding.DecodeString(s.Protected)
	json.Unmarshal(b, &h)
	if h["kid"] != acct.key.KeyID {
		t.Fatalf("account signature kid %q, want %q", h["kid"], acct.key.KeyID)
	}

	// Moved to another host (signed by the custodial key: no person key),
	// the export is signed under the new DID, its account still the first.
	newPub, newPriv, _ := ed25519.GenerateKey(rand.Reader)
	moved, err := identity.AppendMove(acct.log, "https://other.example", newPub, nil, acct.key.Private, time.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	res := moved.Result()
	mv := &webvhAccount{first: acct.first, log: moved, key: &did.Key{DID: res.DID, KeyID: res.DID + "#" + webvh.Multikey(newPub), Private: newPriv}}
	c2 := memCloud(t, "https://other.example", newCloudKey(t))
	file, err = Export(webvhInput(t, c2, mv, nil))
	if err != nil {
		t.Fatal(err)
	}
	op, err = Open(ctx, file, testPassphrase, VerifyOptions{Resolver: c2.Resolver})
	if err != nil {
		t.Fatal(err)
	}
	if op.Log.DID != res.DID || op.Document.Account.DID != acct.first || op.Document.DIDLogVersion != 2 || op.DIDKey.DID != res.DID {
		t.Fatalf("moved: log DID %s, account %s, version %d", op.Log.DID, op.Document.Account.DID, op.Document.DIDLogVersion)
	}
	// The old key no longer makes an export of the moved log.
	stale := webvhInput(t, c2, mv, nil)
	stale.DIDKey = &did.Key{DID: res.DID, KeyID: res.DID + "#" + webvh.Multikey(acct.key.Private.Public().(ed25519.PublicKey)), Private: acct.key.Private}
	if _, err := Export(stale); err == nil || !strings.Contains(err.Error(), "verification method") {
		t.Fatalf("export with a superseded key: %v", err)
	}
}

// TestWebVHOpenRefuses: a did:webvh export whose log, key or document was
// tampered with is refused, each with its error.
func TestWebVHOpenRefuses(t *testing.T) {
	fastKDF(t)
	ctx := context.Background()
	c := memCloud(t, "https://cloud.example", newCloudKey(t))
	acct := newWebVHAccount(t, "cloud.example", nil)
	in := webvhInput(t, c, acct, nil)
	base, err := buildDocument(in)
	if err != nil {
		t.Fatal(err)
	}
	edit := func(fn func(d *Document)) *Document {
		var d Document
		if err := json.Unmarshal(mustJSON(t, base), &d); err != nil {
			t.Fatal(err)
		}
		fn(&d)
		return &d
	}
	other := newWebVHAccount(t, "cloud.example", nil)
	cases := []struct {
		name string
		file []byte
		want error
	}{
		{"tampered log", signWebVH(t, c, acct, edit(func(d *Document) {
			i := strings.Index(d.DIDLog, `"versionTime":"20`) + len(`"versionTime":"20`)
			b := []byte(d.DIDLog)
			b[i] ^= 1
			d.DIDLog = string(b)
		})), ErrBadLog},
		{"truncated log", signWebVH(t, c, acct, edit(func(d *Document) { d.DIDLog = d.DIDLog[:len(d.DIDLog)/2] })), ErrBadLog},
		{"log of another account", signWebVH(t, c, acct, edit(func(d *Document) { d.DIDLog = string(other.log.Bytes()) })), ErrBadLog},
		{"account not the log's", signWebVH(t, c, acct, edit(func(d *Document) { d.Account.DID = other.first })), ErrBadLog},
		{"did:key account with a log", signWebVH(t, c, acct, edit(func(d *Document) { d.Account.DID = newAccountKey(t).DID })), ErrBadLog},
		{"wrong version", signWebVH(t, c, acct, edit(func(d *Document) { d.DIDLogVersion = 2 })), ErrBadLog},
		{"did:webvh without its log", signWebVH(t, c, acct, edit(func(d *Document) { d.DIDLog, d.DIDLogVersion = "", 0 })), ErrWrongKey},
		{"witness without a log", forge(t, mustJSON(t, edit(func(d *Document) {
			d.DIDLog, d.DIDWitness = "", json.RawMessage(`[]`)
		})), acct.key.Private, acct.key.KeyID, c.Key, c.KeyID), ErrMalformed},
		{"document not the log's", signWebVH(t, c, acct, edit(func(d *Document) { d.DIDDocument.AlsoKnownAs = []string{"https://evil.example"} })), ErrWrongKey},
		{"signed by a key not in the log", forge(t, mustJSON(t, base), other.key.Private, acct.key.KeyID, c.Key, c.KeyID), ErrBadSignature},
		{"kid of another DID", forge(t, mustJSON(t, base), other.key.Private, other.key.KeyID, c.Key, c.KeyID), ErrWrongKey},
		{"key in the file not the log's", signWebVH(t, c, acct, edit(func(d *Document) {
			jwe, err := encryptSecret(other.key.Private.Seed(), testPassphrase, testPBES2Count)
			if err != nil {
				t.Fatal(err)
			}
			d.Secrets.DIDKey = jwe
		})), ErrKeyMismatch},
		{"cloud signature by another key under its kid", forge(t, mustJSON(t, base), acct.key.Private, acct.key.KeyID, newCloudKey(t), c.KeyID), ErrBadSignature},
	}
	for _, tc := range cases {
		_, err := Open(ctx, tc.file, testPassphrase, VerifyOptions{Resolver: c.Resolver})
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
			continue
		}
		for _, e := range append(allErrors, ErrBadLog) {
			if e != tc.want && errors.Is(err, e) {
				t.Errorf("%s: %v is also %v", tc.name, err, e)
			}
		}
	}
	if _, err := Open(ctx, signWebVH(t, c, acct, base), testPassphrase, VerifyOptions{Resolver: c.Resolver}); err != nil {
		t.Fatalf("the untampered file: %v", err)
	}
}

// TestWebVHCloudUnverifiable: when the exporting cloud cannot be reached
// or no longer lists its key, the export of a did:webvh account is still
// accepted, saying so; that of a did:key account is refused.
func TestWebVHCloudUnverifiable(t *testing.T) {
	fastKDF(t)
	ctx := context.Background()
	c := memCloud(t, "https://cloud.example", newCloudKey(t))
	acct := newWebVHAccount(t, "cloud.example", nil)
	file, err := Export(webvhInput(t, c, acct, nil))
	if err != nil {
		t.Fatal(err)
	}
	// The cloud unreachable, or its key retired (the document lists
	// another one).
	for name, r := range map[string]*did.Resolver{"cloud down": downResolver(), "key retired": retiredResolver(t, c)} {
		op, err := Open(ctx, file, testPassphrase, VerifyOptions{Resolver: r})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if op.CloudUnverified == "" || !strings.Contains(op.CloudUnverified, c.Issuer) {
			t.Fatalf("%s: CloudUnverified %q", name, op.CloudUnverified)
		}
	}
	fx := newFixture(t, c, newAccountKey(t))
	for name, r := range map[string]*did.Resolver{"cloud down": downResolver(), "key retired": retiredResolver(t, c)} {
		if _, err := Open(ctx, fx.file, testPassphrase, VerifyOptions{Resolver: r}); !errors.Is(err, ErrCloudSignature) {
			t.Fatalf("did:key export, %s: %v", name, err)
		}
	}
}

// retiredResolver serves c's did:web document with another key under
// another kid: the key that signed the file is gone.
func retiredResolver(tb testing.TB, c *cloud) *did.Resolver {
	tb.Helper()
	doc := mustJSON(tb, cloudDocument(tb, c.DID, "k2", newCloudKey(tb)))
	return &did.Resolver{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: http.StatusOK, Body: ioNopCloser(doc),
			Header: http.Header{"Content-Type": {"application/did+json"}}, Request: req}, nil
	})}
}

func ioNopCloser(b []byte) *nopCloser { return &nopCloser{bytes.NewReader(b)} }

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

// TestWebVHWitnessedLog: a log with witnesses opens witnessed with its
// witness file, and unwitnessed (still accepted) without it.
func TestWebVHWitnessedLog(t *testing.T) {
	fastKDF(t)
	ctx := context.Background()
	c := memCloud(t, "https://cloud.example", newCloudKey(t))
	_, wpriv, _ := ed25519.GenerateKey(rand.Reader)
	wid := "did:key:" + webvh.Multikey(wpriv.Public().(ed25519.PublicKey))
	acct := newWebVHAccount(t, "cloud.example", func(o *webvh.CreateOptions) {
		o.Witness = &webvh.Witness{Threshold: 1, Witnesses: []webvh.WitnessMember{{ID: wid}}}
	})
	vid := acct.log.Result().Metadata.VersionID
	proof, err := webvh.WitnessProof(wpriv, vid, time.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	witness := mustJSON(t, []webvh.WitnessProofs{{VersionID: vid, Proof: []json.RawMessage{proof}}})
	file, err := Export(webvhInput(t, c, acct, witness))
	if err != nil {
		t.Fatal(err)
	}
	op, err := Open(ctx, file, testPassphrase, VerifyOptions{Resolver: c.Resolver})
	if err != nil || !op.LogWitnessed {
		t.Fatalf("with the witness file: %v, witnessed %v", err, op != nil && op.LogWitnessed)
	}
	file, err = Export(webvhInput(t, c, acct, nil))
	if err != nil {
		t.Fatal(err)
	}
	op, err = Open(ctx, file, testPassphrase, VerifyOptions{Resolver: c.Resolver})
	if err != nil || op.LogWitnessed {
		t.Fatalf("without the witness file: %v, witnessed %v", err, op != nil && op.LogWitnessed)
	}
}

// TestSchemaNamesWebVHFields: the JSON Schema declares the members a
// did:webvh export adds.
func TestSchemaNamesWebVHFields(t *testing.T) {
	fastKDF(t)
	raw, err := os.ReadFile("schema/export-v1.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Properties map[string]any `json:"properties"`
	}
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	c := memCloud(t, "https://cloud.example", newCloudKey(t))
	_, wpriv, _ := ed25519.GenerateKey(rand.Reader)
	acct := newWebVHAccount(t, "cloud.example", func(o *webvh.CreateOptions) {
		o.Witness = &webvh.Witness{Threshold: 1, Witnesses: []webvh.WitnessMember{{ID: "did:key:" + webvh.Multikey(wpriv.Public().(ed25519.PublicKey))}}}
	})
	vid := acct.log.Result().Metadata.VersionID
	proof, _ := webvh.WitnessProof(wpriv, vid, time.Now().Add(-time.Minute))
	d, err := buildDocument(webvhInput(t, c, acct, mustJSON(t, []webvh.WitnessProofs{{VersionID: vid, Proof: []json.RawMessage{proof}}})))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	json.Unmarshal(mustJSON(t, d), &doc)
	for _, k := range []string{"did_log", "did_witness", "did_log_version"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("%q is not written", k)
		}
	}
	for k := range doc {
		if _, ok := schema.Properties[k]; !ok {
			t.Errorf("%q is not in the schema", k)
		}
	}
}
