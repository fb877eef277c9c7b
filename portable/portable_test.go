package portable

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/onecommons/commonsid/privacy"
)

// allErrors are the sentinels of Open.
var allErrors = []error{
	ErrTooLarge, ErrMalformed, ErrDuplicateKey, ErrUnknownVersion, ErrBadSignature, ErrWrongKey,
	ErrCloudSignature, ErrWeakEncryption, ErrWrongPassphrase, ErrKeyMismatch,
}

// TestRoundTrip exports with the production iteration count and reads back
// every field.
func TestRoundTrip(t *testing.T) {
	c := httpCloud(t)
	key := newAccountKey(t)
	in := testInput(t, c, key, 5)
	file, err := Export(in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Open(context.Background(), file, testPassphrase, VerifyOptions{Resolver: c.Resolver})
	if err != nil {
		t.Fatal(err)
	}
	d := &got.Document

	wantAccount := *in.Account
	if diff := cmp.Diff(&wantAccount, d.IdentityAccount()); diff != "" {
		t.Errorf("account (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(in.Settings, d.PrivacySettings); diff != "" {
		t.Errorf("settings (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(in.Consents, d.ConsentRecords()); diff != "" {
		t.Errorf("consents (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(in.Passkeys, d.IdentityPasskeys()); diff != "" {
		t.Errorf("passkeys (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(in.Activity, d.PrivacyActivity()); diff != "" {
		t.Errorf("activity (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(key, got.DIDKey); diff != "" {
		t.Errorf("DID key (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(in.PairwiseSecret, got.PairwiseSecret); diff != "" {
		t.Errorf("pairwise secret (-want +got):\n%s", diff)
	}
	if got.CloudDID != c.DID || d.CloudDID != c.DID || d.Issuer != c.Issuer || !d.ExportedAt.Equal(testNow) || d.Format != Format {
		t.Errorf("envelope = %q %q %q %v %q", got.CloudDID, d.CloudDID, d.Issuer, d.ExportedAt, d.Format)
	}
	if d.DIDDocument == nil || d.DIDDocument.ID != key.DID {
		t.Errorf("did_document = %+v", d.DIDDocument)
	}

	// The file is what the format says: two signatures, the account's
	// first, with the expected headers, and secrets with the default count.
	parts := splitFile(t, file)
	if len(parts.Signatures) != 2 {
		t.Fatalf("%d signatures", len(parts.Signatures))
	}
	for i, want := range []map[string]string{
		{"alg": "EdDSA", "kid": key.KeyID, "typ": SignatureType},
		{"alg": "ES256", "kid": c.KeyID, "typ": SignatureType},
	} {
		var sig struct{ Protected string }
		json.Unmarshal(parts.Signatures[i], &sig)
		var h map[string]string
		b, _ := base64.RawURLEncoding.DecodeString(sig.Protected)
		json.Unmarshal(b, &h)
		if diff := cmp.Diff(want, h); diff != "" {
			t.Errorf("signature %d header (-want +got):\n%s", i+1, diff)
		}
	}
	for _, jwe := range []string{d.Secrets.DIDKey, d.Secrets.PairwiseSecret} {
		var h map[string]any
		b, _ := base64.RawURLEncoding.DecodeString(strings.Split(jwe, ".")[0])
		json.Unmarshal(b, &h)
		if h["alg"] != "PBES2-HS512+A256KW" || h["enc"] != "A256GCM" || h["p2c"] != float64(DefaultPBES2Count) || h["p2s"] == "" {
			t.Errorf("JWE header = %v", h)
		}
	}
	if strings.Split(d.Secrets.DIDKey, ".")[0] == strings.Split(d.Secrets.PairwiseSecret, ".")[0] {
		t.Error("both secrets share a header: the salt is not fresh")
	}
}

func TestPasswordOnlyWhenChosen(t *testing.T) {
	fastKDF(t)
	c := httpCloud(t)
	key := newAccountKey(t)
	in := testInput(t, c, key, 0)
	in.PBES2Count = testPBES2Count
	in.IncludePassword = false
	file, err := Export(in)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(splitFile(t, file).Payload)
	if strings.Contains(string(payload), "password_hash") || strings.Contains(string(payload), "argon2id") {
		t.Fatalf("payload holds the password hash: %s", payload)
	}
	got, err := Open(context.Background(), file, testPassphrase, VerifyOptions{Resolver: c.Resolver})
	if err != nil {
		t.Fatal(err)
	}
	if got.Document.Account.PasswordHash != "" {
		t.Fatal("password hash came back")
	}
	if n := len(got.Document.Activity); n != 0 {
		t.Fatalf("%d activity entries", n)
	}
}

func TestOpenRefuses(t *testing.T) {
	fastKDF(t)
	c := httpCloud(t)
	fx := newFixture(t, c, newAccountKey(t))
	ctx := context.Background()
	if _, err := Open(ctx, fx.file, testPassphrase, VerifyOptions{Resolver: c.Resolver}); err != nil {
		t.Fatalf("the fixture itself does not open: %v", err)
	}
	for _, tc := range fx.badFiles(t) {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Open(ctx, tc.file, tc.passphrase, VerifyOptions{Resolver: c.Resolver, MaxSize: tc.maxSize})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			t.Log(err)
			if got != nil {
				t.Fatal("refused file returned a value")
			}
			for _, other := range allErrors {
				if other != tc.want && errors.Is(err, other) {
					t.Fatalf("err = %v also matches %v", err, other)
				}
			}
		})
	}
}

// TestPBES2Floor checks that without the tests' lowered floor a file with
// fewer iterations than DefaultPBES2Count is refused and none is written.
func TestPBES2Floor(t *testing.T) {
	c := httpCloud(t)
	key := newAccountKey(t)
	var file []byte
	func() {
		fastKDF(t)
		in := testInput(t, c, key, 1)
		in.PBES2Count = testPBES2Count
		var err error
		if file, err = Export(in); err != nil {
			t.Fatal(err)
		}
	}()
	minPBES2Count = DefaultPBES2Count // what fastKDF's cleanup will also restore
	_, err := Open(context.Background(), file, testPassphrase, VerifyOptions{Resolver: c.Resolver})
	if !errors.Is(err, ErrWeakEncryption) {
		t.Fatalf("err = %v, want ErrWeakEncryption", err)
	}
	in := testInput(t, c, key, 1)
	in.PBES2Count = DefaultPBES2Count - 1
	if _, err := Export(in); err == nil {
		t.Fatal("exported with too few iterations")
	}
}

func TestExportRefuses(t *testing.T) {
	fastKDF(t)
	c := httpCloud(t)
	key := newAccountKey(t)
	other := newAccountKey(t)
	cases := []struct {
		name string
		edit func(in *Input)
		want error
	}{
		{"short passphrase", func(in *Input) { in.Passphrase = "elevenchars" }, ErrShortPassphrase},
		{"short passphrase in characters", func(in *Input) { in.Passphrase = "ééééééééééé" }, ErrShortPassphrase},
		{"key of another account", func(in *Input) { in.DIDKey = other }, nil},
		{"no account", func(in *Input) { in.Account = nil }, nil},
		{"pairwise secret size", func(in *Input) { in.PairwiseSecret = []byte("short") }, nil},
		{"issuer not a URL", func(in *Input) { in.Issuer = "id.example.org" }, nil},
		{"cloud key id of another DID", func(in *Input) { in.CloudKeyID = "did:web:evil.example#k1" }, nil},
		{"cloud key id without fragment", func(in *Input) { in.CloudKeyID = c.DID }, nil},
		{"no cloud key", func(in *Input) { in.CloudKey = nil }, nil},
		{"too many iterations", func(in *Input) { in.PBES2Count = MaxPBES2Count + 1 }, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := testInput(t, c, key, 0)
			in.PBES2Count = testPBES2Count
			tc.edit(&in)
			file, err := Export(in)
			if err == nil || file != nil {
				t.Fatalf("Export = %d bytes, %v; want an error", len(file), err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	// A passphrase of exactly MinPassphrase characters is enough.
	in := testInput(t, c, key, 0)
	in.PBES2Count = testPBES2Count
	in.Passphrase = strings.Repeat("é", MinPassphrase)
	if _, err := Export(in); err != nil {
		t.Fatal(err)
	}
}

func TestCompare(t *testing.T) {
	fastKDF(t)
	c := httpCloud(t)
	fx := newFixture(t, c, newAccountKey(t))
	if d := Compare(*fx.doc, *fx.doc); len(d) != 0 {
		t.Fatalf("Compare(doc, doc) = %v", d)
	}
	// What an import then a re-export from another cloud changes.
	moved := fx.edited(t, func(d *Document) {
		d.ExportedAt = d.ExportedAt.Add(24 * 3600e9)
		d.Issuer, d.CloudDID = "https://new.example", "did:web:new.example"
		d.Secrets = Secrets{DIDKey: "x", PairwiseSecret: "y"}
		for i := range d.Activity {
			d.Activity[i].ID += 1000
		}
		d.Activity = append(d.Activity, Activity{ID: 9999, At: d.ExportedAt, Kind: ActivityImported})
	})
	if d := Compare(*fx.doc, *moved); len(d) != 0 {
		t.Fatalf("Compare(doc, moved) = %v, want nothing", d)
	}
	changed := fx.edited(t, func(d *Document) {
		d.Account.Handle = "bob"
		d.PrivacySettings.Discoverable = false
		d.Consents = d.Consents[:1]
		d.Passkeys[0].SignCount++
		d.Activity[0].Kind = privacy.ActivityLogout
		d.DIDDocument.AlsoKnownAs = []string{"x"}
		d.Format = "other"
	})
	want := []string{"format", "account", "did_document", "privacy_settings", "consents", "passkeys", "activity"}
	if diff := cmp.Diff(want, Compare(*fx.doc, *changed)); diff != "" {
		t.Fatalf("Compare (-want +got):\n%s", diff)
	}
}

// TestSchemaNamesEveryField checks that the JSON Schema declares every
// member an export writes, and requires the ones always written.
func TestSchemaNamesEveryField(t *testing.T) {
	fastKDF(t)
	raw, err := os.ReadFile("schema/export-v1.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := checkJSON(raw); err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Schema     string         `json:"$schema"`
		Required   []string       `json:"required"`
		Properties map[string]any `json:"properties"`
		Defs       map[string]struct {
			Required   []string       `json:"required"`
			Properties map[string]any `json:"properties"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	if schema.Schema != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("$schema = %q", schema.Schema)
	}
	fx := newFixture(t, httpCloud(t), newAccountKey(t))
	var doc map[string]any
	json.Unmarshal(mustJSON(t, fx.doc), &doc)
	check := func(where string, obj map[string]any, props map[string]any, required []string) {
		for k := range obj {
			if _, ok := props[k]; !ok {
				t.Errorf("%s: %q is not in the schema", where, k)
			}
		}
		for _, k := range required {
			if _, ok := obj[k]; !ok {
				t.Errorf("%s: required %q is not written", where, k)
			}
		}
	}
	check("document", doc, schema.Properties, schema.Required)
	for def, obj := range map[string]map[string]any{
		"account":          doc["account"].(map[string]any),
		"consent":          doc["consents"].([]any)[0].(map[string]any),
		"passkey":          doc["passkeys"].([]any)[0].(map[string]any),
		"activity":         doc["activity"].([]any)[0].(map[string]any),
		"secrets":          doc["secrets"].(map[string]any),
		"privacy_settings": doc["privacy_settings"].(map[string]any),
	} {
		d, ok := schema.Defs[def]
		if !ok {
			t.Errorf("$defs/%s missing", def)
			continue
		}
		check(def, obj, d.Properties, d.Required)
	}
}

func TestCheckJSON(t *testing.T) {
	cases := []struct {
		in   string
		want error
	}{
		{`{}`, nil},
		{`{"a":1,"b":{"a":2},"c":[{"a":1},{"a":1}]}`, nil},
		{`{"a":{"a":1,"b":[1,{"x":1,"y":2}]},"b":2}`, nil},
		{`[]`, nil},
		{`{"a":1,"a":2}`, ErrDuplicateKey},
		{`{"a":{"b":1,"b":1}}`, ErrDuplicateKey},
		{`[{"a":1},{"b":1,"b":2}]`, ErrDuplicateKey},
		{`{"a":[],"a":[]}`, ErrDuplicateKey},
		{`{"\u0061":1,"a":2}`, ErrDuplicateKey},
		{`{"a":1`, ErrMalformed},
		{`{} {}`, ErrMalformed},
		{``, ErrMalformed},
		{strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1), ErrMalformed},
		{strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth), nil},
	}
	for _, tc := range cases {
		err := checkJSON([]byte(tc.in))
		if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("checkJSON(%.40s) = %v, want %v", tc.in, err, tc.want)
		}
	}
}
