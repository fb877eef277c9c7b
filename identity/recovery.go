package identity

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"

	"github.com/cosmos/go-bip39"

	"github.com/onecommons/commonsid/did/webvh"
	"github.com/onecommons/commonsid/store"
)

// Recovery kits: a key the person holds.
//
// A did:webvh account (DIDMethodWebVH) made with CreateWithRecoveryKit
// gets, besides the cloud's custodial key, a second update key in the
// genesis entry of its log: the public key of a recovery kit that only the
// person holds. The kit is a recovery phrase of 24 words of the BIP-39
// English word list, encoding 256 bits of entropy from crypto/rand and
// its 8-bit checksum.
//
// Rules:
//
//   - The phrase is shown once (the sign-up page, or the standard output
//     of `user create`) and never stored, logged or put in a URL. Only its
//     public key is kept, and only as an update key of the DID log: the
//     log is where it is read from (RecoveryKeys).
//   - Input is normalised before use: letters are lowered, and any run of
//     white space separates two words. A phrase that is not 24 words of
//     the list, or whose checksum is wrong, is refused with
//     ErrRecoveryPhrase and a message naming the problem (never the
//     words).
//   - Derivation (RecoveryKeyFromPhrase), fixed and versioned by its info
//     string:
//     seed = BIP-39 seed of the normalised phrase with an empty passphrase
//     (PBKDF2-HMAC-SHA512, 2048 rounds, salt "mnemonic", 64 bytes);
//     ed25519 seed = HKDF-SHA256(secret = seed, salt = empty,
//     info = RecoveryKeyInfo, 32 bytes); the key is the Ed25519 key of
//     that seed, and its public form is a did:key multikey ("z6Mk…"), as
//     did:webvh updateKeys hold them.
//   - The key is the person's key of rule 2 (didauthority.go): only it
//     may move the DID (recovery at another cloud, web/recover.go) or
//     change the person keys (a kit rotation, which replaces the kit's
//     key by a new kit's). CheckRecoveryPhrase only checks it.
//   - The account's pairwise secret is escrowed under the kit (below).
//
// Accounts with a did:key DID get no recovery kit.

// RecoveryKeyInfo is the HKDF info string of the recovery key derivation.
const RecoveryKeyInfo = "commonsid/recovery-key/ed25519/v1"

// RecoveryWords is the number of words of a recovery phrase.
const RecoveryWords = 24

// MaxRecoveryPhrase bounds the input of a phrase check (24 words of at
// most 8 letters, with generous room for spaces).
const MaxRecoveryPhrase = 1024

// ErrRecoveryPhrase reports a phrase that is not a valid recovery phrase.
var ErrRecoveryPhrase = errors.New("invalid recovery phrase")

// RecoveryKit is a new recovery phrase and its public key.
type RecoveryKit struct {
	// Words are the 24 words of the phrase, in order.
	Words []string
	// Public is the recovery key; Multikey its did:key multikey.
	Public   ed25519.PublicKey
	Multikey string
	seed     []byte
}

// Seed returns the kit's BIP-39 seed (RecoverySeed of its phrase), to seal
// an escrow under it.
func (k *RecoveryKit) Seed() []byte { return k.seed }

// Phrase returns the words joined by single spaces.
func (k *RecoveryKit) Phrase() string { return strings.Join(k.Words, " ") }

// NewRecoveryKit makes a recovery phrase from 256 random bits.
func NewRecoveryKit() (*RecoveryKit, error) {
	entropy := make([]byte, 32)
	if _, err := rand.Read(entropy); err != nil {
		return nil, fmt.Errorf("recovery phrase: %w", err)
	}
	phrase, err := bip39.NewMnemonic(entropy)
	if err != nil {
		return nil, fmt.Errorf("recovery phrase: %w", err)
	}
	seed := bip39.NewSeed(phrase, "")
	priv, err := RecoveryKeyFromSeed(seed)
	if err != nil {
		return nil, err
	}
	pub := priv.Public().(ed25519.PublicKey)
	return &RecoveryKit{Words: strings.Fields(phrase), Public: pub, Multikey: webvh.Multikey(pub), seed: seed}, nil
}

// NormalizeRecoveryPhrase lowers the letters of s, separates its words by
// single spaces and checks that they are a recovery phrase: 24 words of
// the BIP-39 English list with a right checksum.
func NormalizeRecoveryPhrase(s string) (string, error) {
	if len(s) > MaxRecoveryPhrase {
		return "", fmt.Errorf("%w: it is too long", ErrRecoveryPhrase)
	}
	words := strings.Fields(strings.ToLower(s))
	if len(words) != RecoveryWords {
		return "", fmt.Errorf("%w: it has %d words, a recovery phrase has %d", ErrRecoveryPhrase, len(words), RecoveryWords)
	}
	for i, w := range words {
		if _, ok := bip39.ReverseWordMap[w]; !ok {
			return "", fmt.Errorf("%w: word %d is not in the recovery word list", ErrRecoveryPhrase, i+1)
		}
	}
	phrase := strings.Join(words, " ")
	if _, err := bip39.MnemonicToByteArray(phrase); err != nil {
		return "", fmt.Errorf("%w: its checksum is wrong (a word is mistyped or out of order)", ErrRecoveryPhrase)
	}
	return phrase, nil
}

// RecoveryKeyFromPhrase derives the recovery key of a phrase (see the
// rules above); the phrase is normalised and checked first.
func RecoveryKeyFromPhrase(s string) (ed25519.PrivateKey, error) {
	phrase, err := NormalizeRecoveryPhrase(s)
	if err != nil {
		return nil, err
	}
	return RecoveryKeyFromSeed(bip39.NewSeed(phrase, ""))
}

// RecoverySeed returns the BIP-39 seed of a phrase (normalised and checked
// first): the secret both the recovery key and the escrow key come from.
func RecoverySeed(s string) ([]byte, error) {
	phrase, err := NormalizeRecoveryPhrase(s)
	if err != nil {
		return nil, err
	}
	return bip39.NewSeed(phrase, ""), nil
}

// RecoveryKeyFromSeed derives the recovery key of a BIP-39 seed.
func RecoveryKeyFromSeed(seed []byte) (ed25519.PrivateKey, error) {
	k, err := hkdf.Key(sha256.New, seed, nil, RecoveryKeyInfo, ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("recovery key: %w", err)
	}
	return ed25519.NewKeyFromSeed(k), nil
}

// CreateWithRecoveryKit is Create for a person who will be shown a
// recovery kit: with DIDMethodWebVH the account's log lists the kit's key
// as an update key, and the kit is returned to be shown once. With did:key
// accounts it is Create, and the kit is nil.
func (s *Service) CreateWithRecoveryKit(ctx context.Context, p CreateParams) (*Account, *RecoveryKit, error) {
	if s.DIDMethod != DIDMethodWebVH {
		a, err := s.Create(ctx, p)
		return a, nil, err
	}
	kit, err := NewRecoveryKit()
	if err != nil {
		return nil, nil, err
	}
	p.RecoveryKey, p.RecoverySeed = kit.Public, kit.Seed()
	a, err := s.Create(ctx, p)
	if err != nil {
		return nil, nil, err
	}
	return a, kit, nil
}

// RecoveryKeys returns the person keys of the account's did:webvh log
// (identity.PersonKeys: the update keys after the custodial one), the
// recovery keys the person holds. An account without a log (did:key) has
// none.
func (s *Service) RecoveryKeys(ctx context.Context, accountDID string) ([]string, error) {
	if s.DIDLogs == nil {
		return nil, nil
	}
	l, err := s.DIDLogs.GetDIDLog(ctx, accountDID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	// Witness proofs aside: the keys in effect are those of the log as
	// held here, whose last entry may still await its proofs.
	lg, err := webvh.Open(l.Log, webvh.Options{Now: s.Now})
	if err != nil {
		return nil, fmt.Errorf("account DID log: %w", err)
	}
	res := lg.Result()
	if res.Metadata.SCID != l.SCID {
		return nil, fmt.Errorf("account DID log: SCID %s, not %s", res.Metadata.SCID, l.SCID)
	}
	return PersonKeys(res), nil
}

// CheckRecoveryPhrase reports whether phrase derives one of the account's
// recovery keys. A phrase that is not valid returns ErrRecoveryPhrase.
func (s *Service) CheckRecoveryPhrase(ctx context.Context, didID, phrase string) (bool, error) {
	priv, err := RecoveryKeyFromPhrase(phrase)
	if err != nil {
		return false, err
	}
	keys, err := s.RecoveryKeys(ctx, didID)
	if err != nil {
		return false, err
	}
	mk := webvh.Multikey(priv.Public().(ed25519.PublicKey))
	for _, k := range keys {
		if k == mk {
			return true, nil
		}
	}
	return false, nil
}

// Escrow: the pairwise secret sealed under the recovery kit.
//
// A did:webvh account's pairwise secret (every pairwise sub it has at a
// service comes from it) exists on its home only. So that the person can
// get the same subs back on another cloud when the home is gone, the home
// keeps beside the log (DIDLog.Escrow, which travels in did.log events to
// every peer) the secret sealed under a key only the kit gives:
//
//	key   = HKDF-SHA256(secret = BIP-39 seed of the phrase, salt = empty,
//	        info = EscrowInfo, 32 bytes)
//	blob  = 0x01 (version) || nonce (12 random bytes) ||
//	        AES-256-GCM(key, nonce, plaintext = pairwise secret,
//	                    additional data = the log's SCID)
//
// The SCID as additional data binds a blob to its account: an escrow copied
// into another account's log does not open. The blob is 61 bytes; OpenEscrow
// refuses anything else than version 1 of exactly that size, and any
// tampering (ErrEscrow). A new escrow is sealed at every kit rotation: the
// old phrase no longer opens the current one.

// EscrowInfo is the HKDF info string of the escrow key.
const EscrowInfo = "commonsid/recovery-escrow/v1"

// escrowVersion is the first byte of an escrow.
const escrowVersion = 1

// EscrowSize is the size of an escrow of a pairwise secret.
const EscrowSize = 1 + 12 + PairwiseSecretSize + 16

// ErrEscrow reports an escrow that does not open with the given phrase
// and SCID, or that is not an escrow.
var ErrEscrow = errors.New("the escrowed pairwise secret does not open with this recovery phrase")

func escrowAEAD(seed []byte) (cipher.AEAD, error) {
	if len(seed) < 32 {
		return nil, errors.New("escrow: the recovery seed is too short")
	}
	k, err := hkdf.Key(sha256.New, seed, nil, EscrowInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("escrow key: %w", err)
	}
	b, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// SealEscrow seals a pairwise secret under the recovery seed (RecoverySeed,
// RecoveryKit.Seed), bound to the SCID of the account's log.
func SealEscrow(seed []byte, scid string, secret []byte) ([]byte, error) {
	if len(secret) != PairwiseSecretSize {
		return nil, fmt.Errorf("escrow: a pairwise secret has %d bytes, not %d", PairwiseSecretSize, len(secret))
	}
	if scid == "" {
		return nil, errors.New("escrow: no SCID")
	}
	aead, err := escrowAEAD(seed)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1+aead.NonceSize(), EscrowSize)
	out[0] = escrowVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("escrow nonce: %w", err)
	}
	return aead.Seal(out, out[1:], secret, []byte(scid)), nil
}

// OpenEscrow opens an escrow sealed by SealEscrow with the same seed and
// SCID; anything else is ErrEscrow.
func OpenEscrow(seed []byte, scid string, blob []byte) ([]byte, error) {
	if len(blob) != EscrowSize || blob[0] != escrowVersion {
		return nil, fmt.Errorf("%w: it is not a version %d escrow of %d bytes", ErrEscrow, escrowVersion, EscrowSize)
	}
	aead, err := escrowAEAD(seed)
	if err != nil {
		return nil, err
	}
	n := 1 + aead.NonceSize()
	secret, err := aead.Open(nil, blob[1:n], blob[n:], []byte(scid))
	if err != nil {
		return nil, ErrEscrow
	}
	return secret, nil
}

// RecoveryCustodialInfo is the HKDF info prefix of the custodial key a
// recovery at another cloud gives the account (RecoveryCustodialKey).
const RecoveryCustodialInfo = "commonsid/recovery-custodial/v1"

// RecoveryCustodialKey derives the custodial key with which a recovery by
// the kit of seed moves the log of scid, after its entry prevVersionID, to
// issuer: HKDF-SHA256(secret = seed, salt = scid, info =
// RecoveryCustodialInfo "|" prevVersionID "|" issuer). Being derived, a
// retried recovery signs the very same move entry (with the same
// versionTime), so that witnesses which signed an attempt that fell short
// of the threshold see the same entry again, not a fork. The kit's holder
// can derive it too, which gives them nothing the kit does not: the kit
// key may make every change the custodial key may. The new home may
// replace it (user rotate-key).
func RecoveryCustodialKey(seed []byte, scid, prevVersionID, issuer string) (ed25519.PrivateKey, error) {
	if len(seed) < 32 || scid == "" || prevVersionID == "" || issuer == "" {
		return nil, errors.New("recovery custodial key: seed, SCID, version and issuer are required")
	}
	k, err := hkdf.Key(sha256.New, seed, []byte(scid), RecoveryCustodialInfo+"|"+prevVersionID+"|"+issuer, ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("recovery custodial key: %w", err)
	}
	return ed25519.NewKeyFromSeed(k), nil
}
