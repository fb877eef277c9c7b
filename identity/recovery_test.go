package identity_test

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/cosmos/go-bip39"

	"github.com/onecommons/commonsid/did/webvh"
	"github.com/onecommons/commonsid/identity"
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
