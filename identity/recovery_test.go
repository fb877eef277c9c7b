package identity_test

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cosmos/go-bip39"

	"github.com/onecommons/commonsid/did/webvh"
	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/internal/testdb"
	"github.com/onecommons/commonsid/keys"
)

// TestRecoveryKeyVectors pins the derivation phrase → BIP-39 seed (empty
// passphrase) → HKDF-SHA256 Ed25519 seed → multikey: changing any step
// would orphan every recovery kit handed out.
func TestRecoveryKeyVectors(t *testing.T) {
	for _, v := range []struct{ entropy, phrase, seed, edSeed, multikey string }{
		{
			"0000000000000000000000000000000000000000000000000000000000000000",
			"abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon art",
			"408b285c123836004f4b8842c89324c1f01382450c0d439af345ba7fc49acf705489c6fc77dbd4e3dc1dd8cc6bc9f043db8ada1e243c4a0eafb290d399480840",
			"48ee9a1f580f9e575d6a69fec725dd1c4255f41727d985b6751e4b26653c0a23",
			"z6MkpaBArs9AU63ytcSE7gonxtbJ8eGcadecMefDRpBaBsFk",
		},
		{
			"8080808080808080808080808080808080808080808080808080808080808080",
			"letter advice cage absurd amount doctor acoustic avoid letter advice cage absurd amount doctor acoustic avoid letter advice cage absurd amount doctor acoustic bless",
			"848bbe19cad445e46f35fd3d1a89463583ac2b60b5eb4cfcf955731775a5d9e17a81a71613fed83f1ae27b408478fdec2bbc75b5161d1937aa7cdf4ad686ef5f",
			"3c9a77a8608687e1ae5398975c46d26af51e02b33e7e8a7f72a33c6e0255fba6",
			"z6MkjmYmWNgR9sbfLpLMEfAQvJfdNYbTBh8v7vKvo8eXyhuM",
		},
	} {
		e, _ := hex.DecodeString(v.entropy)
		if m, _ := bip39.NewMnemonic(e); m != v.phrase {
			t.Fatalf("entropy %s gave phrase %q", v.entropy, m)
		}
		if s := hex.EncodeToString(bip39.NewSeed(v.phrase, "")); s != v.seed {
			t.Fatalf("BIP-39 seed %s, want %s", s, v.seed)
		}
		// Normalisation: case and white space do not matter.
		messy := "  " + strings.ToUpper(strings.ReplaceAll(v.phrase, " ", " \t\n ")) + "\n"
		for _, in := range []string{v.phrase, messy} {
			priv, err := identity.RecoveryKeyFromPhrase(in)
			if err != nil {
				t.Fatal(err)
			}
			if s := hex.EncodeToString(priv.Seed()); s != v.edSeed {
				t.Fatalf("Ed25519 seed %s, want %s", s, v.edSeed)
			}
			if mk := webvh.Multikey(priv.Public().(ed25519.PublicKey)); mk != v.multikey {
				t.Fatalf("multikey %s, want %s", mk, v.multikey)
			}
		}
	}
}

// TestRecoveryPhraseRefused: a phrase with a wrong checksum, the wrong
// number of words or a word off the list is refused with a message that
// says which, and never repeats the words.
func TestRecoveryPhraseRefused(t *testing.T) {
	good := strings.Repeat("abandon ", 23) + "art"
	for _, c := range []struct{ name, in, want string }{
		{"wrong checksum", strings.Repeat("abandon ", 23) + "abandon", "checksum is wrong"},
		{"23 words", strings.Repeat("abandon ", 22) + "art", "it has 23 words, a recovery phrase has 24"},
		{"25 words", good + " art", "it has 25 words"},
		{"unknown word", strings.Repeat("abandon ", 22) + "zzzzqq art", "word 23 is not in the recovery word list"},
		{"empty", "   ", "it has 0 words"},
		{"too long", strings.Repeat(" ", identity.MaxRecoveryPhrase) + good, "too long"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := identity.RecoveryKeyFromPhrase(c.in)
			if !errors.Is(err, identity.ErrRecoveryPhrase) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want ErrRecoveryPhrase saying %q", err, c.want)
			}
			if strings.Contains(err.Error(), "abandon") || strings.Contains(err.Error(), "zzzzqq") {
				t.Fatalf("the error repeats the phrase: %v", err)
			}
		})
	}
}

// TestNewRecoveryKit: 24 words from fresh entropy, whose derived key is the
// kit's.
func TestNewRecoveryKit(t *testing.T) {
	a, err := identity.NewRecoveryKit()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := identity.NewRecoveryKit()
	if len(a.Words) != 24 || a.Phrase() == b.Phrase() {
		t.Fatalf("kit words %d, distinct %v", len(a.Words), a.Phrase() != b.Phrase())
	}
	priv, err := identity.RecoveryKeyFromPhrase(a.Phrase())
	if err != nil {
		t.Fatal(err)
	}
	if !priv.Public().(ed25519.PublicKey).Equal(a.Public) || a.Multikey != webvh.Multikey(a.Public) {
		t.Fatal("the kit's key is not the phrase's")
	}
}

// TestEscrowVector pins the escrow format and key derivation: a blob made
// once from the "abandon … art" phrase opens to its secret. Changing the
// HKDF info, the cipher, the layout or the additional data would make
// every escrow handed out unreadable, and fails here.
func TestEscrowVector(t *testing.T) {
	const (
		phrase = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon art"
		scid   = "QmPdFvKPN4HXBE6qcEMEhmXbTNyhrx5hzemh1J7ADYv5Gm"
		blob   = "01a0a1a2a3a4a5a6a7a8a9aaab62023b1079c9e05d73dbfc91ced4cd3f1c0304b777f8c6ef8914c50995663a13e5aeaaef1f4f1ef3683f22908d92bd5a"
	)
	want := make([]byte, identity.PairwiseSecretSize)
	for i := range want {
		want[i] = byte(i)
	}
	seed, err := identity.RecoverySeed(strings.ToUpper(phrase))
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(seed) != "408b285c123836004f4b8842c89324c1f01382450c0d439af345ba7fc49acf705489c6fc77dbd4e3dc1dd8cc6bc9f043db8ada1e243c4a0eafb290d399480840" {
		t.Fatalf("RecoverySeed %x", seed)
	}
	b, _ := hex.DecodeString(blob)
	got, err := identity.OpenEscrow(seed, scid, b)
	if err != nil || hex.EncodeToString(got) != hex.EncodeToString(want) {
		t.Fatalf("OpenEscrow = %x, %v", got, err)
	}
	// Sealing is randomised (a fresh nonce) and round-trips.
	s1, err := identity.SealEscrow(seed, scid, want)
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := identity.SealEscrow(seed, scid, want)
	if len(s1) != identity.EscrowSize || s1[0] != 1 || hex.EncodeToString(s1) == hex.EncodeToString(s2) {
		t.Fatalf("escrows %x and %x", s1, s2)
	}
	if got, err := identity.OpenEscrow(seed, scid, s1); err != nil || hex.EncodeToString(got) != hex.EncodeToString(want) {
		t.Fatalf("round trip: %x, %v", got, err)
	}
}

// TestEscrowRefused: a flipped bit anywhere, another SCID, another phrase,
// another version, a truncated or lengthened blob, all are ErrEscrow; a
// secret of the wrong size is not sealed.
func TestEscrowRefused(t *testing.T) {
	kit, err := identity.NewRecoveryKit()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := identity.NewRecoveryKit()
	seed, _ := identity.RecoverySeed(kit.Phrase())
	if hex.EncodeToString(seed) != hex.EncodeToString(kit.Seed()) {
		t.Fatal("the kit's seed is not its phrase's")
	}
	secret := make([]byte, identity.PairwiseSecretSize)
	secret[0] = 7
	const scid = "QmSCIDofAlice"
	blob, err := identity.SealEscrow(kit.Seed(), scid, secret)
	if err != nil {
		t.Fatal(err)
	}
	for i := range blob {
		for _, bit := range []byte{1, 0x80} {
			bad := append([]byte(nil), blob...)
			bad[i] ^= bit
			if _, err := identity.OpenEscrow(kit.Seed(), scid, bad); !errors.Is(err, identity.ErrEscrow) {
				t.Fatalf("byte %d flipped: %v", i, err)
			}
		}
	}
	for name, c := range map[string]struct {
		seed []byte
		scid string
		blob []byte
	}{
		"other SCID":   {kit.Seed(), "QmSCIDofBob", blob},
		"other phrase": {other.Seed(), scid, blob},
		"truncated":    {kit.Seed(), scid, blob[:len(blob)-1]},
		"lengthened":   {kit.Seed(), scid, append(append([]byte(nil), blob...), 0)},
		"empty":        {kit.Seed(), scid, nil},
		"huge":         {kit.Seed(), scid, make([]byte, 1<<20)},
	} {
		if _, err := identity.OpenEscrow(c.seed, c.scid, c.blob); !errors.Is(err, identity.ErrEscrow) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if _, err := identity.SealEscrow(kit.Seed(), scid, secret[:16]); err == nil {
		t.Fatal("a 16-byte secret was sealed")
	}
	if _, err := identity.SealEscrow(kit.Seed(), "", secret); err == nil {
		t.Fatal("an escrow without SCID was sealed")
	}
}

// TestSignUpEscrow: an account made with a recovery kit has its pairwise
// secret escrowed in its log's row, opening with the kit's phrase and the
// log's SCID; one made without a kit has no escrow.
func TestSignUpEscrow(t *testing.T) {
	db, _ := testdb.SQLite(t)
	kek, _ := keys.NewKEK(make([]byte, 32))
	s := identity.NewService(db, kek, "https://cloud.example")
	s.DIDMethod, s.DIDLogs = identity.DIDMethodWebVH, db
	ctx := context.Background()
	a, kit, err := s.CreateWithRecoveryKit(ctx, identity.CreateParams{Handle: "alice", Password: "correct horse"})
	if err != nil {
		t.Fatal(err)
	}
	l, err := db.GetDIDLog(ctx, a.DID)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := s.PairwiseSecret(a)
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := identity.RecoverySeed(kit.Phrase())
	got, err := identity.OpenEscrow(seed, l.SCID, l.Escrow)
	if err != nil || hex.EncodeToString(got) != hex.EncodeToString(secret) {
		t.Fatalf("the escrow opens to %x, %v; the secret is %x", got, err, secret)
	}
	b, err := s.Create(ctx, identity.CreateParams{Handle: "bob", Password: "correct horse"})
	if err != nil {
		t.Fatal(err)
	}
	if lb, err := db.GetDIDLog(ctx, b.DID); err != nil || len(lb.Escrow) != 0 {
		t.Fatalf("an account without a kit: escrow %x, %v", lb.Escrow, err)
	}
}

// TestRecoveryCustodialKey: the key a recovery moves the log with is the
// same for the same kit, SCID, last entry and issuer (a retry signs the
// same entry), and another for any other.
func TestRecoveryCustodialKey(t *testing.T) {
	kit, _ := identity.NewRecoveryKit()
	other, _ := identity.NewRecoveryKit()
	k := func(seed []byte, scid, v, iss string) string {
		t.Helper()
		priv, err := identity.RecoveryCustodialKey(seed, scid, v, iss)
		if err != nil {
			t.Fatal(err)
		}
		return hex.EncodeToString(priv.Seed())
	}
	base := k(kit.Seed(), "QmA", "3-Qm1", "https://b.example")
	if k(kit.Seed(), "QmA", "3-Qm1", "https://b.example") != base {
		t.Fatal("the derivation is not deterministic")
	}
	for name, got := range map[string]string{
		"other kit":     k(other.Seed(), "QmA", "3-Qm1", "https://b.example"),
		"other SCID":    k(kit.Seed(), "QmB", "3-Qm1", "https://b.example"),
		"other version": k(kit.Seed(), "QmA", "4-Qm2", "https://b.example"),
		"other issuer":  k(kit.Seed(), "QmA", "3-Qm1", "https://c.example"),
	} {
		if got == base {
			t.Fatalf("%s: the same key", name)
		}
	}
	if _, err := identity.RecoveryCustodialKey(kit.Seed(), "", "3-Qm1", "https://b.example"); err == nil {
		t.Fatal("a key without SCID")
	}
}

// TestLookupByEveryDID: after the account's log moves to another host
// (a new DID string, same SCID), the account is found by the new DID as
// by the first, and its signing key is named under the current DID, whose
// document lists it.
func TestLookupByEveryDID(t *testing.T) {
	db, _ := testdb.SQLite(t)
	kek, _ := keys.NewKEK(make([]byte, 32))
	s := identity.NewService(db, kek, "https://a.example")
	s.DIDMethod, s.DIDLogs = identity.DIDMethodWebVH, db
	ctx := context.Background()
	a, kit, err := s.CreateWithRecoveryKit(ctx, identity.CreateParams{Handle: "alice", Password: "correct horse"})
	if err != nil {
		t.Fatal(err)
	}
	row, err := db.GetDIDLog(ctx, a.DID)
	if err != nil {
		t.Fatal(err)
	}
	l, err := webvh.Open(row.Log, webvh.Options{})
	if err != nil {
		t.Fatal(err)
	}
	key, err := s.SigningKey(ctx, a)
	if err != nil || key.DID != a.DID {
		t.Fatalf("signing key before the move: %+v %v", key, err)
	}
	person, err := identity.RecoveryKeyFromPhrase(kit.Phrase())
	if err != nil {
		t.Fatal(err)
	}
	// The same custodial key under the new home (only the DID changes).
	moved, err := identity.AppendMove(l, "https://b.example", key.Private.Public().(ed25519.PublicKey), nil, person, time.Now().Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	res := moved.Result()
	next := *row
	next.Log, next.Version, next.CurrentDID = moved.Bytes(), res.Metadata.VersionNumber, res.DID
	if ok, err := db.PutDIDLog(ctx, &next, row.Version); err != nil || !ok {
		t.Fatalf("store the move: %v %v", ok, err)
	}
	if res.DID == a.DID {
		t.Fatal("the move kept the DID string")
	}
	got, err := s.Lookup(ctx, res.DID)
	if err != nil || got.DID != a.DID {
		t.Fatalf("lookup by the new DID: %+v %v", got, err)
	}
	if got, err := s.Lookup(ctx, a.DID); err != nil || got.DID != a.DID {
		t.Fatalf("lookup by the first DID: %+v %v", got, err)
	}
	key, err = s.SigningKey(ctx, a)
	if err != nil || key.DID != res.DID || !strings.HasPrefix(key.KeyID, res.DID+"#") {
		t.Fatalf("signing key after the move: %+v %v", key, err)
	}
	if !strings.Contains(string(res.Document), key.KeyID) {
		t.Fatalf("the current document does not list %s", key.KeyID)
	}
}
