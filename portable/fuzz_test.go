package portable

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/onecommons/commonsid/did"
)

var update = flag.Bool("update", false, "rewrite the committed fuzz seed corpus in testdata/fuzz/FuzzOpen")

const (
	seedDir      = "testdata/fuzz/FuzzOpen"
	fuzzIssuer   = "https://cloud.example"
	fuzzMaxSize  = 16 << 10
	otherPassphr = "another passphrase entirely"
)

// sentinelNames name Open's errors in seed file names.
var sentinelNames = map[string]error{
	"valid":            nil,
	"too-large":        ErrTooLarge,
	"malformed":        ErrMalformed,
	"duplicate-key":    ErrDuplicateKey,
	"unknown-version":  ErrUnknownVersion,
	"bad-signature":    ErrBadSignature,
	"wrong-key":        ErrWrongKey,
	"cloud-signature":  ErrCloudSignature,
	"weak-encryption":  ErrWeakEncryption,
	"wrong-passphrase": ErrWrongPassphrase,
	"key-mismatch":     ErrKeyMismatch,
}

// fuzzCloud and fuzzKey are fixed, so that the committed seeds stay valid.
func fuzzCloud(tb testing.TB) *cloud {
	tb.Helper()
	k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), bytes.Repeat([]byte{0x42}, 32))
	if err != nil {
		tb.Fatal(err)
	}
	return memCloud(tb, fuzzIssuer, k)
}

func fuzzKey(tb testing.TB) *did.Key {
	tb.Helper()
	k, err := did.KeyFromPrivate(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x17}, ed25519.SeedSize)))
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// seedFiles returns the seed corpus: the valid file and each bad file, by
// name "<expected error>.<case>".
func seedFiles(tb testing.TB) map[string][]byte {
	tb.Helper()
	fx := newFixture(tb, fuzzCloud(tb), fuzzKey(tb))
	out := map[string][]byte{"valid.export": fx.file}
	for _, bc := range fx.badFiles(tb) {
		file := bc.file
		switch {
		case bc.maxSize != 0:
			file = append(append([]byte{}, file...), bytes.Repeat([]byte(" "), fuzzMaxSize)...)
		case bc.passphrase != testPassphrase:
			// The fuzz target opens with testPassphrase: encrypt under
			// another one instead.
			d := fx.edited(tb, func(d *Document) {
				var err error
				if d.Secrets.DIDKey, err = encryptSecret(fx.key.Private.Seed(), otherPassphr, testPBES2Count); err != nil {
					tb.Fatal(err)
				}
			})
			file = fx.signDoc(tb, d)
		}
		name := ""
		for n, e := range sentinelNames {
			if e == bc.want {
				name = n
			}
		}
		out[name+"."+slug(bc.name)] = file
	}
	return out
}

func slug(s string) string {
	return strings.Map(func(r rune) rune {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			return r
		}
		return '-'
	}, strings.ToLower(s))
}

// TestFuzzSeeds checks that every committed seed is refused with the error
// its name gives (or opens, for valid ones). With -update it first writes
// the corpus anew.
func TestFuzzSeeds(t *testing.T) {
	fastKDF(t)
	if *update {
		if err := os.RemoveAll(seedDir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(seedDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, file := range seedFiles(t) {
			body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(file)) + ")\n"
			if err := os.WriteFile(filepath.Join(seedDir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	entries, err := os.ReadDir(seedDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) < 20 {
		t.Fatalf("%d seeds in %s; run go test -run TestFuzzSeeds -update ./portable", len(entries), seedDir)
	}
	c := fuzzCloud(t)
	for _, e := range entries {
		t.Run(e.Name(), func(t *testing.T) {
			kind, _, _ := strings.Cut(e.Name(), ".")
			want, ok := sentinelNames[kind]
			if !ok {
				t.Fatalf("seed name %q does not start with an error name", e.Name())
			}
			file := readSeed(t, filepath.Join(seedDir, e.Name()))
			_, err := Open(context.Background(), file, testPassphrase, VerifyOptions{Resolver: c.Resolver, MaxSize: fuzzMaxSize})
			if (want == nil) != (err == nil) || (want != nil && !errors.Is(err, want)) {
				t.Fatalf("err = %v, want %v", err, want)
			}
		})
	}
}

// readSeed decodes a seed file of the form go test fuzz v1 / []byte("…").
func readSeed(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	head, rest, _ := strings.Cut(string(b), "\n")
	rest = strings.TrimSpace(rest)
	if head != "go test fuzz v1" || !strings.HasPrefix(rest, "[]byte(") || !strings.HasSuffix(rest, ")") {
		tb.Fatalf("%s is not a go test fuzz v1 []byte seed", path)
	}
	s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(rest, "[]byte("), ")"))
	if err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	return []byte(s)
}

// FuzzOpen feeds arbitrary files to Open. Every failure must be one of the
// sentinel errors, and a file that opens must carry the key of its DID.
// The cloud's did:web document is served from memory.
func FuzzOpen(f *testing.F) {
	fastKDF(f)
	c := fuzzCloud(f)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, file []byte) {
		got, err := Open(ctx, file, testPassphrase, VerifyOptions{Resolver: c.Resolver, MaxSize: fuzzMaxSize})
		if err != nil {
			if got != nil {
				t.Fatal("refused file returned a value")
			}
			n := 0
			for _, s := range allErrors {
				if errors.Is(err, s) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("error matches %d sentinels: %v", n, err)
			}
			return
		}
		if got.DIDKey == nil || got.DIDKey.DID != got.Document.Account.DID || len(got.PairwiseSecret) != SecretSize {
			t.Fatalf("opened a file without its key: %+v", got)
		}
		if got.CloudDID != c.DID {
			t.Fatalf("opened a file of cloud %s", got.CloudDID)
		}
	})
}
